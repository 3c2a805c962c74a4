//! Helpers shared by the server-API integration tests: a WebSocket participant and a small `/v1` client; nodes
//! of a cluster (`cluster.rs`); a webhook receiver (`hooks.rs`).

use std::time::Duration;

use chorus_protocol::{JoinedResponse, ServerMessage};
use chorus_signaling::testing::TestServer;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

pub mod cluster;
pub mod hooks;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const WAIT: Duration = Duration::from_secs(10);

pub async fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::Text(text.into())).await.expect("send");
}

/// The next server message; `None` when the connection closed.
pub async fn recv(ws: &mut Ws) -> Option<ServerMessage> {
    recv_within(ws, WAIT).await
}

pub async fn recv_within(ws: &mut Ws, limit: Duration) -> Option<ServerMessage> {
    loop {
        let frame = tokio::time::timeout(limit, ws.next())
            .await
            .expect("a frame within the timeout");
        match frame {
            Some(Ok(Message::Text(t))) => {
                return Some(serde_json::from_str(t.as_str()).expect("valid server JSON"))
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

/// Receive until a message matches `pred`, failing on close.
pub async fn recv_until(ws: &mut Ws, pred: impl Fn(&ServerMessage) -> bool) -> ServerMessage {
    loop {
        let msg = recv(ws).await.expect("connection still open");
        if pred(&msg) {
            return msg;
        }
    }
}

/// Joins with `token`; the server's first answer (joined, or an error).
pub async fn try_join(ts: &TestServer, token: &str) -> (Ws, ServerMessage) {
    let mut ws = connect_async(ts.ws_url())
        .await
        .expect("websocket connects")
        .0;
    send(&mut ws, &format!(r#"{{"type":"join","token":"{token}"}}"#)).await;
    let first = recv(&mut ws).await.expect("an answer to join");
    (ws, first)
}

pub async fn join_with(ts: &TestServer, token: &str) -> (Ws, JoinedResponse) {
    match try_join(ts, token).await {
        (ws, ServerMessage::Joined(j)) => (ws, j),
        (_, other) => panic!("expected joined, got {other:?}"),
    }
}

pub async fn join(ts: &TestServer, room: &str, identity: &str) -> (Ws, JoinedResponse) {
    join_with(ts, &ts.token(room, identity)).await
}

/// The `left` reason, reading until the server closes.
pub async fn left_reason(ws: &mut Ws) -> String {
    match recv_until(ws, |m| matches!(m, ServerMessage::Left { .. })).await {
        ServerMessage::Left { reason } => reason,
        _ => unreachable!(),
    }
}

/// The server's `/metrics` body.
pub async fn metrics(ts: &TestServer) -> String {
    reqwest::get(format!("{}/metrics", ts.http_url()))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body")
}

/// The value of an unlabelled sample in a Prometheus text body.
pub fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// A `/v1` client with a bearer token.
pub struct Api {
    http: reqwest::Client,
    base: String,
    pub token: Option<String>,
}

impl Api {
    /// With the server's full admin token.
    pub fn admin(ts: &TestServer) -> Api {
        Api::with_token(ts, Some(ts.admin_token()))
    }

    pub fn with_token(ts: &TestServer, token: Option<String>) -> Api {
        chorus_signaling::tls::install_crypto_provider();
        Api {
            http: reqwest::Client::new(),
            base: ts.http_url(),
            token,
        }
    }

    /// `method path` with an optional JSON body: the status and the JSON answer (`Null` when empty).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let resp = req.send().await.expect("HTTP request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("non-JSON answer {text:?}: {e}"))
        };
        (status, json)
    }

    /// Like `call`, asserting the status.
    pub async fn expect(
        &self,
        status: u16,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (got, json) = self.call(method, path, body).await;
        assert_eq!(got, status, "{method} {path}: {json}");
        json
    }

    /// A raw request (custom headers/body) for edge cases.
    pub fn raw(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }
}

/// A unique temporary directory, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("chorus-{tag}-{}-{unique}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
