//! The server API across the cluster: a call about a room that lives on another node is forwarded there over
//! HTTP, and the owner's answer is relayed back unchanged (status, `Content-Type`, body). Also asks every other
//! node for its rooms (`GET /v1/rooms`) and forwards a create to the node placement chose.
//!
//! Owns the hop between nodes and nothing else: deciding whether a call stays here (the directory, see
//! `cluster/`), the request to the other node (`Authorization`, `Content-Type`, body, and
//! [`FORWARDED_BY`]), and turning an unreachable node into `503 unavailable`. It never touches rooms (the
//! handlers do) and never checks grants (the node that acts does; this one only authenticates, so a bad token is
//! refused without a hop). A request that carries [`FORWARDED_BY`] is always answered where it lands, so a call
//! crosses at most one hop, even when two nodes disagree about the owner for a moment.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{FromRequest, RawPathParams, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error::{ApiError, ApiResult};
use super::extract::{Admin, MAX_BODY_BYTES};
use crate::cluster::{ClusterError, NodeInfo, Route};
use crate::server::AppState;

/// Set on every forwarded request, with the forwarding node's id. A node that receives it acts locally.
pub const FORWARDED_BY: HeaderName = HeaderName::from_static("x-chorus-forwarded-by");

/// The whole exchange with another node, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The HTTP client nodes use to reach each other (one per server, reused for every call).
pub struct Forwarder {
    http: reqwest::Client,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").finish_non_exhaustive()
    }
}

impl Forwarder {
    pub fn new() -> Result<Forwarder, reqwest::Error> {
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("chorus-node/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Forwarder { http })
    }
}

/// Whether another node forwarded this request (then it is answered here, whatever the directory says).
pub fn was_forwarded(headers: &HeaderMap) -> bool {
    headers.contains_key(FORWARDED_BY)
}

/// Route layer of the `/v1/rooms/{room}...` endpoints that act on a live room: authenticates, then, if the room
/// is not open here and a live other node owns it, forwards the request there; otherwise the handler runs here.
pub async fn to_room_owner(
    State(state): State<AppState>,
    _authenticated: Admin,
    params: Result<RawPathParams, RawPathParamsRejection>,
    req: Request,
    next: Next,
) -> Response {
    if was_forwarded(req.headers()) {
        return next.run(req).await;
    }
    let room = params.ok().and_then(|p| {
        p.iter()
            .find(|(name, _)| *name == "room")
            .map(|(_, value)| value.to_string())
    });
    let Some(room) = room else {
        // The handler's own extractor explains what is wrong with the path.
        return next.run(req).await;
    };
    match owner_elsewhere(&state, &room).await {
        Ok(None) => next.run(req).await,
        Ok(Some(node)) => relay_request(&state, &node, req)
            .await
            .unwrap_or_else(IntoResponse::into_response),
        Err(e) => e.into_response(),
    }
}

/// The live node other than this one that owns `room`, if the room is not open here. A room whose owner is dead
/// is not open anywhere: it is answered here (404).
async fn owner_elsewhere(state: &AppState, room: &str) -> ApiResult<Option<NodeInfo>> {
    let cluster = &state.cluster;
    if !cluster.shared || state.registry.get(room).is_some() {
        return Ok(None);
    }
    let owner = cluster
        .directory
        .owner(room)
        .await
        .map_err(directory_error)?;
    let Some(owner) = owner.filter(|id| *id != cluster.node.id) else {
        return Ok(None);
    };
    let nodes = cluster.registry.nodes().await.map_err(directory_error)?;
    Ok(nodes.into_iter().find(|n| n.id == owner))
}

/// Where a new room `room` goes, placed the way a join places it (claimed for the least-loaded live node if no
/// live node owns it): `None` for this node, else the node to forward the create to. A forwarded create is
/// answered here: the node that forwarded it placed it on this one.
pub async fn place(
    state: &AppState,
    headers: &HeaderMap,
    room: &str,
) -> ApiResult<Option<NodeInfo>> {
    if was_forwarded(headers) {
        return Ok(None);
    }
    let here = state.registry.get(room).is_some();
    match state.cluster.route(room, here).await {
        Ok(Route::Local) => Ok(None),
        Ok(Route::Remote(node)) => Ok(Some(node)),
        Err(ClusterError::NoNode) => Err(ApiError::Cluster(
            "no node accepts new rooms now (all are draining or full); try again shortly".into(),
        )),
        Err(e) => Err(directory_error(e)),
    }
}

/// Sends `body` (as JSON) to `path` on `node` with this request's token; relays the answer.
pub async fn relay_json(
    state: &AppState,
    node: &NodeInfo,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    body: &impl Serialize,
) -> ApiResult<Response> {
    let bytes = serde_json::to_vec(body).map_err(|e| {
        ApiError::Cluster(format!(
            "cannot encode the request for node {}: {e}",
            node.id
        ))
    })?;
    let json = HeaderValue::from_static("application/json");
    let answer = send(
        state,
        node,
        method,
        path,
        headers.get(AUTHORIZATION),
        Some(&json),
        Bytes::from(bytes),
    )
    .await?;
    Ok(answer.into_response())
}

/// The rooms of every other live node, as they list them (each asked with [`FORWARDED_BY`], so it answers with
/// its own rooms only). Empty on a node alone, or when this call was itself forwarded. Fails, naming the node,
/// if one cannot be reached: a silently partial list would look like closed rooms.
pub async fn rooms_elsewhere(
    state: &AppState,
    headers: &HeaderMap,
) -> ApiResult<Vec<serde_json::Value>> {
    if !state.cluster.shared || was_forwarded(headers) {
        return Ok(Vec::new());
    }
    let nodes = state
        .cluster
        .registry
        .nodes()
        .await
        .map_err(directory_error)?;
    let auth = headers.get(AUTHORIZATION);
    let asks = nodes
        .iter()
        .filter(|n| n.id != state.cluster.node.id)
        .map(|node| async move {
            let answer = send(
                state,
                node,
                Method::GET,
                "/v1/rooms",
                auth,
                None,
                Bytes::new(),
            )
            .await?;
            answer.rooms(node)
        });
    let lists = futures_util::future::try_join_all(asks).await?;
    Ok(lists.into_iter().flatten().collect())
}

/// What another node answered.
struct Answer {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: Bytes,
}

impl Answer {
    /// The `rooms` of a `GET /v1/rooms` answer.
    fn rooms(self, node: &NodeInfo) -> ApiResult<Vec<serde_json::Value>> {
        if self.status != StatusCode::OK {
            return Err(ApiError::Cluster(format!(
                "node {} answered the room list with HTTP {}: {}",
                node.id,
                self.status.as_u16(),
                String::from_utf8_lossy(&self.body[..self.body.len().min(200)])
            )));
        }
        #[derive(serde::Deserialize)]
        struct List {
            rooms: Vec<serde_json::Value>,
        }
        serde_json::from_slice::<List>(&self.body)
            .map(|l| l.rooms)
            .map_err(|e| {
                ApiError::Cluster(format!("node {} sent a malformed room list: {e}", node.id))
            })
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        if let Some(content_type) = self.content_type {
            response.headers_mut().insert(CONTENT_TYPE, content_type);
        }
        response
    }
}

/// Forwards `req` as it came (method, path and query, token, content type, body) and relays the answer.
async fn relay_request(state: &AppState, node: &NodeInfo, req: Request) -> ApiResult<Response> {
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.uri().path().to_string(), |p| p.as_str().to_string());
    let headers = req.headers().clone();
    // The same limit and errors as the handlers' own body extractor.
    let body = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(MAX_BODY_BYTES)
        } else {
            ApiError::BadJson(format!("cannot read the body: {rejection}"))
        }
    })?;
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::TooLarge(MAX_BODY_BYTES));
    }
    let answer = send(
        state,
        node,
        method,
        &path,
        headers.get(AUTHORIZATION),
        headers.get(CONTENT_TYPE),
        body,
    )
    .await?;
    Ok(answer.into_response())
}

/// `node`'s URL for `path` (which starts with `/`); a node URL may carry a path prefix.
fn target_url(node_url: &str, path: &str) -> String {
    format!("{}{path}", node_url.trim_end_matches('/'))
}

/// One request to another node, marked as forwarded by this one.
async fn send(
    state: &AppState,
    node: &NodeInfo,
    method: Method,
    path: &str,
    auth: Option<&HeaderValue>,
    content_type: Option<&HeaderValue>,
    body: Bytes,
) -> ApiResult<Answer> {
    let url = target_url(&node.url, path);
    let this_node = HeaderValue::from_str(&state.cluster.node.id)
        .unwrap_or_else(|_| HeaderValue::from_static("unnamed"));
    let mut request = state
        .forwarder
        .http
        .request(method.clone(), &url)
        .header(FORWARDED_BY, this_node)
        .body(body);
    if let Some(auth) = auth {
        request = request.header(AUTHORIZATION, auth.clone());
    }
    if let Some(content_type) = content_type {
        request = request.header(CONTENT_TYPE, content_type.clone());
    }
    let unreachable = |e: reqwest::Error| {
        tracing::warn!(node = %node.id, %url, error = %error_chain(&e), "cannot reach another node");
        ApiError::Cluster(format!(
            "node {} ({}) cannot be reached: {}",
            node.id,
            node.url,
            error_chain(&e)
        ))
    };
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    let content_type = response.headers().get(CONTENT_TYPE).cloned();
    let body = response.bytes().await.map_err(unreachable)?;
    tracing::debug!(node = %node.id, %method, path, status = status.as_u16(), "forwarded to the room's node");
    Ok(Answer {
        status,
        content_type,
        body,
    })
}

fn directory_error(e: ClusterError) -> ApiError {
    ApiError::Cluster(format!("cannot read the cluster directory: {e}"))
}

/// An error and its causes, `outer: inner: innermost` (reqwest's own message names only the URL).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_requests_are_recognised() {
        let mut headers = HeaderMap::new();
        assert!(!was_forwarded(&headers));
        headers.insert(FORWARDED_BY, HeaderValue::from_static("node-1"));
        assert!(was_forwarded(&headers));
    }

    #[test]
    fn the_target_keeps_the_node_prefix_and_the_query() {
        assert_eq!(
            target_url("http://10.0.0.5:7880", "/v1/rooms/a%20b?x=1"),
            "http://10.0.0.5:7880/v1/rooms/a%20b?x=1"
        );
        assert_eq!(
            target_url("https://h/chorus/", "/v1/rooms"),
            "https://h/chorus/v1/rooms"
        );
    }

    #[test]
    fn the_client_builds() {
        assert!(Forwarder::new().is_ok());
    }
}
