//! Starting the server: HTTP routes, the WebSocket endpoint, the server API (`api/`), the store, the SFU workers;
//! and stopping it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tokio::sync::watch;

use crate::assets;
use crate::auth::{Grants, KeyStore, TokenRequest};
use crate::cluster::{Cluster, NodeIdentity};
use crate::room::{ChatSettings, NoObserver, Registry, RoomSettings};
use crate::session::{self, RtcQuery};
use crate::store::Store;
use crate::webhooks::WebhookSettings;

/// Frames beyond this close the WebSocket outright; below it, `max_message_bytes` gives a protocol error.
const WS_HARD_LIMIT: usize = 1024 * 1024;

/// How much a WebSocket reads per call, and what its read buffer starts at. The library's default, 128 KiB, is
/// zero-filled on the first read and stays: half of what an idle participant cost the server. Signaling
/// messages are a few KiB (an SDP offer 2–10 KiB); a larger frame grows the buffer to its size as it comes.
const WS_READ_BUFFER: usize = 8 * 1024;

/// Lifetime of tokens handed out by the dev-only token endpoint.
const DEV_TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);

/// Everything the running server needs, already validated. Built from `config::Config` by the binary.
#[derive(Debug)]
pub struct ServerSettings {
    /// Where HTTP and WebSocket listen (port 0 picks a free port).
    pub http_addr: SocketAddr,
    pub keys: KeyStore,
    /// Dev mode: serves `GET /dev/token`. Never on when keys are configured.
    pub dev_mode: bool,
    pub sfu: chorus_sfu::SfuConfig,
    /// Largest accepted signaling frame.
    pub max_message_bytes: usize,
    /// How long a participant whose WebSocket dropped may resume.
    pub resume_window: Duration,
    /// Keepalive interval suggested to clients; three silent intervals count as a drop.
    pub ping_interval: Duration,
    /// Where the embedded store (SQLite) keeps its file; `None` keeps it in memory (tests).
    pub data_dir: Option<PathBuf>,
    /// How long a room stays open without participants (rooms created by a join; the API's default).
    pub room_empty_timeout: Duration,
    /// Webhook endpoints and delivery policy (no URLs: no webhooks).
    pub webhooks: WebhookSettings,
    /// Chat history size and limits.
    pub chat: ChatSettings,
    /// Embedded TURN and external TURN servers.
    pub turn: crate::turn::TurnSettings,
    /// Cluster membership (no Redis: this node on its own).
    pub cluster: crate::cluster::ClusterSettings,
}

pub struct AppInner {
    pub keys: KeyStore,
    pub registry: Registry,
    pub max_message_bytes: usize,
    pub ping_interval: Duration,
    pub dev_mode: bool,
    pub store: Store,
    pub room_empty_timeout: Duration,
    /// Webhook delivery outcomes since start (all zero without endpoints), for `/metrics`.
    pub webhook_counters: Arc<crate::webhooks::WebhookCounters>,
    /// The embedded TURN server, for `/metrics`.
    pub turn: Arc<crate::turn::RunningTurn>,
    /// The cluster this node is part of (a cluster of one without Redis).
    pub cluster: Arc<Cluster>,
    /// The HTTP client that forwards server-API calls to other nodes.
    pub forwarder: crate::api::Forwarder,
}

pub type AppState = Arc<AppInner>;

/// A started server. Dropping it does not stop it; call [`RunningServer::shutdown`].
pub struct RunningServer {
    pub http_addr: SocketAddr,
    /// The media address of each worker.
    pub media_addrs: Vec<SocketAddr>,
    /// The embedded TURN server's listeners (and the ICE servers handed out).
    pub turn: Arc<crate::turn::RunningTurn>,
    /// The app state (rooms, cluster), for draining and tests.
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    /// The cluster heartbeat (withdraws the node on shutdown).
    heartbeat: tokio::task::JoinHandle<()>,
    /// The HTTP server task; `None` once [`RunningServer::wait`] has seen it finish.
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _sfu: Arc<chorus_sfu::Sfu>,
}

impl RunningServer {
    /// Ask the server to stop accepting connections and finish.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// For tests of node failure: stops as if the process had died. The heartbeat stops without withdrawing the
    /// node or releasing its rooms (the cluster learns of it by the time to live), then the server shuts down.
    pub fn crash(&self) {
        self.heartbeat.abort();
        self.shutdown();
    }

    /// Wait until the HTTP server has stopped (after [`RunningServer::shutdown`], or on its own after a fatal
    /// error). Cancel-safe, so it can race other futures; returns at once if it already returned.
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        let Some(task) = self.task.as_mut() else {
            return Ok(());
        };
        let result = task.await;
        self.task = None;
        result??;
        Ok(())
    }
}

/// Bind every socket, start the media workers and serve.
pub async fn start(settings: ServerSettings) -> anyhow::Result<RunningServer> {
    crate::tls::install_crypto_provider();
    let store = open_store(&settings)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the store: {e}"))?;
    let (shutdown, mut shutdown_rx) = watch::channel(false);
    let webhook_counters = Arc::new(crate::webhooks::WebhookCounters::default());
    let observer: Arc<dyn crate::room::RoomObserver> = if settings.webhooks.urls.is_empty() {
        Arc::new(NoObserver)
    } else {
        let key = settings
            .keys
            .first()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("webhooks need an API key to sign with"))?;
        crate::webhooks::start(
            settings.webhooks.clone(),
            key,
            store.clone(),
            Arc::clone(&webhook_counters),
            shutdown_rx.clone(),
        )?
    };
    let sfu = Arc::new(chorus_sfu::Sfu::start(&settings.sfu)?);
    let media_addrs: Vec<SocketAddr> = sfu.workers().iter().map(|w| w.local_addr()).collect();
    let turn = Arc::new(crate::turn::RunningTurn::start(&settings.turn, &media_addrs).await?);
    let registry = Registry::new(
        sfu.clone(),
        RoomSettings {
            resume_window: settings.resume_window,
            ping_interval: settings.ping_interval,
            empty_timeout: settings.room_empty_timeout,
            chat: settings.chat,
            ice_servers: Arc::clone(&turn.ice_servers),
        },
        observer,
        store.chat.clone(),
    );
    let listener = tokio::net::TcpListener::bind(settings.http_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.http_addr))?;
    let http_addr = listener.local_addr()?;
    let cluster = Arc::new(start_cluster(&settings.cluster, http_addr).await?);
    let state: AppState = Arc::new(AppInner {
        keys: settings.keys,
        registry,
        max_message_bytes: settings.max_message_bytes,
        ping_interval: settings.ping_interval,
        dev_mode: settings.dev_mode,
        store,
        room_empty_timeout: settings.room_empty_timeout,
        webhook_counters,
        turn: Arc::clone(&turn),
        cluster: Arc::clone(&cluster),
        forwarder: crate::api::Forwarder::new()
            .map_err(|e| anyhow::anyhow!("cannot build the HTTP client for other nodes: {e}"))?,
    });
    let heartbeat = crate::cluster::spawn_heartbeat(
        cluster,
        crate::node::NodeLoadReporter::new(Arc::clone(&state)),
        shutdown_rx.clone(),
    );
    crate::node::spawn_event_listener(Arc::clone(&state), shutdown_rx.clone());
    let app = router(Arc::clone(&state));
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown_rx.wait_for(|stop| *stop).await;
            })
            .await
    });
    tracing::info!(%http_addr, "signaling listening");
    Ok(RunningServer {
        http_addr,
        media_addrs,
        turn,
        state,
        shutdown,
        heartbeat,
        task: Some(task),
        _sfu: sfu,
    })
}

/// SQLite in the data directory; in a cluster, identities, revocations and chat on the shared Redis instead (the
/// webhook queue stays in SQLite: each node delivers the events it produced).
async fn open_store(settings: &ServerSettings) -> Result<Store, crate::store::StoreError> {
    let Some(url) = &settings.cluster.redis_url else {
        return Store::open_sqlite(settings.data_dir.as_deref()).await;
    };
    let sqlite = match &settings.data_dir {
        Some(dir) => crate::store::SqliteStore::open(&dir.join(crate::store::DB_FILE)).await?,
        None => crate::store::SqliteStore::open_in_memory().await?,
    };
    Store::open_redis(url, sqlite).await
}

/// This node's cluster: on the Redis of `settings`, or on its own.
async fn start_cluster(
    settings: &crate::cluster::ClusterSettings,
    http_addr: SocketAddr,
) -> anyhow::Result<Cluster> {
    let node = NodeIdentity {
        id: settings.node_id.clone(),
        url: settings
            .node_url
            .clone()
            .unwrap_or_else(|| format!("http://{http_addr}")),
        capacity: settings.capacity,
    };
    match &settings.redis_url {
        None => Ok(Cluster::single(node)),
        Some(url) => {
            let cluster = Cluster::redis(node, url).await?;
            tracing::info!(node = %cluster.node.id, url = %cluster.node.url, redis = %crate::redis_conn::redact(url), "cluster node");
            Ok(cluster)
        }
    }
}

fn router(state: AppState) -> Router {
    let mut app = Router::new()
        .route("/", get(assets::index))
        .route("/demo.js", get(assets::demo_js))
        .route("/demo.css", get(assets::demo_css))
        .route("/sdk/{file}", get(assets::sdk_module))
        .route("/healthz", get(healthz))
        .route("/metrics", get(crate::metrics::handler))
        .route("/rtc", get(rtc))
        .merge(crate::api::router(&state));
    if state.dev_mode {
        app = app.route("/dev/token", get(dev_token));
    }
    app.with_state(state)
}

async fn healthz(State(state): State<AppState>) -> Response {
    Json(serde_json::json!({
        "status": "ok",
        "rooms": state.registry.len(),
        "node": state.cluster.node.id,
        "draining": state.cluster.is_draining(),
    }))
    .into_response()
}

async fn rtc(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    Query(query): Query<RtcQuery>,
) -> Response {
    ws.max_message_size(WS_HARD_LIMIT)
        .max_frame_size(WS_HARD_LIMIT)
        .read_buffer_size(WS_READ_BUFFER)
        .on_upgrade(move |socket| session::run(socket, state, query))
}

#[derive(Debug, Deserialize)]
struct DevTokenQuery {
    room: Option<String>,
    identity: Option<String>,
    name: Option<String>,
}

/// Dev mode only: a token for the demo page. Never routed when API keys are configured.
async fn dev_token(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Query(q): Query<DevTokenQuery>,
) -> Response {
    let room = q
        .room
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "demo".into());
    let identity = q
        .identity
        .filter(|i| !i.is_empty())
        .unwrap_or_else(|| format!("guest-{}", crate::ids::random_string(6)));
    let req = TokenRequest {
        api_key: None,
        identity: identity.clone(),
        name: q.name.filter(|n| !n.is_empty()),
        room: room.clone(),
        ttl: DEV_TOKEN_TTL,
        grants: Grants::default(),
        not_before: None,
    };
    match state.keys.issue(&req) {
        Ok(token) => {
            let host = headers
                .get(axum::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1:7880");
            Json(serde_json::json!({
                "token": token,
                "wsUrl": format!("ws://{host}/rtc"),
                "room": room,
                "identity": identity,
            }))
            .into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}
