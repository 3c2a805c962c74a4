//! The server API under `/v1`: identities, rooms and participants, the node (drain), and the OpenAPI document. Every call carries
//! `Authorization: Bearer <JWT>` signed with an API key and holding admin grants (`auth::AdminGrant`); errors are
//! JSON `{code, message, field?}` (`error.rs`).
//!
//! Owns HTTP concerns only: validation, status codes, JSON shapes. Room state changes go through the room actors
//! (`room::AdminMsg`), persistence through `store::Store`. [`routes`] is the one list of endpoints: the router is
//! built from it and a test checks `openapi.json` against it.

use axum::http::Method;
use axum::routing::MethodRouter;
use axum::Router;

use crate::server::AppState;

mod error;
mod extract;
mod identities;
mod node;
mod openapi;
pub mod revocation;
mod room_data;
mod rooms;

pub use error::ApiError;
pub use extract::MAX_BODY_BYTES;

/// One endpoint of the API.
pub struct ApiRoute {
    pub method: Method,
    /// In axum syntax (`/v1/rooms/{room}`), which is also OpenAPI's.
    pub path: &'static str,
    handler: MethodRouter<AppState>,
}

fn route(method: Method, path: &'static str, handler: MethodRouter<AppState>) -> ApiRoute {
    ApiRoute {
        method,
        path,
        handler,
    }
}

/// Every `/v1` endpoint.
pub fn routes() -> Vec<ApiRoute> {
    use axum::routing::{delete, get, patch, post};
    vec![
        route(Method::GET, "/v1/openapi.json", get(openapi::document)),
        route(Method::POST, "/v1/identities", post(identities::create)),
        route(Method::GET, "/v1/identities/{id}", get(identities::get)),
        route(
            Method::DELETE,
            "/v1/identities/{id}",
            delete(identities::delete),
        ),
        route(
            Method::POST,
            "/v1/identities/{id}/tokens",
            post(identities::issue_token),
        ),
        route(
            Method::POST,
            "/v1/identities/{id}/revoke",
            post(identities::revoke),
        ),
        route(Method::POST, "/v1/rooms", post(rooms::create)),
        route(Method::GET, "/v1/rooms", get(rooms::list)),
        route(Method::GET, "/v1/rooms/{room}", get(rooms::get)),
        route(Method::DELETE, "/v1/rooms/{room}", delete(rooms::delete)),
        route(
            Method::GET,
            "/v1/rooms/{room}/participants",
            get(rooms::list_participants),
        ),
        route(
            Method::GET,
            "/v1/rooms/{room}/participants/{identity}",
            get(rooms::get_participant),
        ),
        route(
            Method::DELETE,
            "/v1/rooms/{room}/participants/{identity}",
            delete(rooms::remove_participant),
        ),
        route(
            Method::PATCH,
            "/v1/rooms/{room}/participants/{identity}",
            patch(rooms::update_participant),
        ),
        route(
            Method::GET,
            "/v1/rooms/{room}/participants/{identity}/stats",
            get(rooms::participant_stats),
        ),
        route(
            Method::POST,
            "/v1/rooms/{room}/participants/{identity}/tracks/{track}/mute",
            post(rooms::mute_track),
        ),
        route(
            Method::GET,
            "/v1/rooms/{room}/chat",
            get(rooms::chat_history),
        ),
        route(Method::POST, "/v1/rooms/{room}/data", post(room_data::send)),
        route(Method::GET, "/v1/node", get(node::get)),
        route(Method::POST, "/v1/node/drain", post(node::drain)),
    ]
}

/// The `/v1` router: every route of [`routes`], a body limit, and JSON 404s for unknown `/v1` paths.
pub fn router() -> Router<AppState> {
    let mut router = Router::new();
    for r in routes() {
        router = router.route(r.path, r.handler);
    }
    router
        .route("/v1", axum::routing::any(not_found))
        .route("/v1/{*rest}", axum::routing::any(not_found))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such API endpoint (see /v1/openapi.json)".into())
}
