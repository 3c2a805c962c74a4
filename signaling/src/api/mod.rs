//! The server API under `/v1`: identities, rooms and participants, the node (drain), and the OpenAPI document. Every call carries
//! `Authorization: Bearer <JWT>` signed with an API key and holding admin grants (`auth::AdminGrant`); errors are
//! JSON `{code, message, field?}` (`error.rs`).
//!
//! Owns HTTP concerns only: validation, status codes, JSON shapes. Room state changes go through the room actors
//! (`room::AdminMsg`), persistence through `store::Store`. [`routes`] is the one list of endpoints: the router is
//! built from it and a test checks `openapi.json` against it. In a cluster, calls about a room hosted by another
//! node are forwarded there (`forward.rs`): routes made with [`room_route`] get that layer.

use axum::http::Method;
use axum::routing::MethodRouter;
use axum::Router;

use crate::server::AppState;

mod error;
mod extract;
mod forward;
mod identities;
mod node;
mod openapi;
pub mod revocation;
mod room_data;
mod rooms;

pub use error::ApiError;
pub use extract::MAX_BODY_BYTES;
pub use forward::{Forwarder, FORWARDED_BY};

/// One endpoint of the API.
pub struct ApiRoute {
    pub method: Method,
    /// In axum syntax (`/v1/rooms/{room}`), which is also OpenAPI's.
    pub path: &'static str,
    handler: MethodRouter<AppState>,
    /// Acts on a live room: in a cluster, sent on to the node that hosts it (`forward::to_room_owner`).
    pub to_room_owner: bool,
}

fn route(method: Method, path: &'static str, handler: MethodRouter<AppState>) -> ApiRoute {
    ApiRoute {
        method,
        path,
        handler,
        to_room_owner: false,
    }
}

/// A `/v1/rooms/{room}...` endpoint that acts on the live room, so it is answered by the room's node.
fn room_route(method: Method, path: &'static str, handler: MethodRouter<AppState>) -> ApiRoute {
    ApiRoute {
        to_room_owner: true,
        ..route(method, path, handler)
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
        room_route(Method::GET, "/v1/rooms/{room}", get(rooms::get)),
        room_route(Method::DELETE, "/v1/rooms/{room}", delete(rooms::delete)),
        room_route(
            Method::GET,
            "/v1/rooms/{room}/participants",
            get(rooms::list_participants),
        ),
        room_route(
            Method::GET,
            "/v1/rooms/{room}/participants/{identity}",
            get(rooms::get_participant),
        ),
        room_route(
            Method::DELETE,
            "/v1/rooms/{room}/participants/{identity}",
            delete(rooms::remove_participant),
        ),
        room_route(
            Method::PATCH,
            "/v1/rooms/{room}/participants/{identity}",
            patch(rooms::update_participant),
        ),
        room_route(
            Method::GET,
            "/v1/rooms/{room}/participants/{identity}/stats",
            get(rooms::participant_stats),
        ),
        room_route(
            Method::POST,
            "/v1/rooms/{room}/participants/{identity}/tracks/{track}/mute",
            post(rooms::mute_track),
        ),
        route(
            Method::GET,
            "/v1/rooms/{room}/chat",
            get(rooms::chat_history),
        ),
        room_route(Method::POST, "/v1/rooms/{room}/data", post(room_data::send)),
        route(Method::GET, "/v1/node", get(node::get)),
        route(Method::POST, "/v1/node/drain", post(node::drain)),
    ]
}

/// The `/v1` router: every route of [`routes`] (those about a live room behind the forwarding layer), a body
/// limit, and JSON 404s for unknown `/v1` paths.
pub fn router(state: &AppState) -> Router<AppState> {
    let mut router = Router::new();
    for r in routes() {
        let handler = if r.to_room_owner {
            r.handler.route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                forward::to_room_owner,
            ))
        } else {
            r.handler
        };
        router = router.route(r.path, handler);
    }
    router
        .route("/v1", axum::routing::any(not_found))
        .route("/v1/{*rest}", axum::routing::any(not_found))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such API endpoint (see /v1/openapi.json)".into())
}

#[cfg(test)]
mod tests {
    /// Every endpoint about a live room is answered by the room's node; the chat history is in the shared store
    /// (and create and list are cluster-wide in their handlers).
    #[test]
    fn calls_about_a_live_room_go_to_its_node() {
        for r in super::routes() {
            let live_room =
                r.path.starts_with("/v1/rooms/{room}") && r.path != "/v1/rooms/{room}/chat";
            assert_eq!(r.to_room_owner, live_room, "{} {}", r.method, r.path);
        }
    }
}
