//! The browser SDK and demo page, compiled into the binary so the server needs no files or build step.
//!
//! The SDK is the ES modules in `web/sdk/`, served side by side at `/sdk/<file>` (the entry point is
//! `/sdk/chorus.js`). Adding a module means adding one line to [`SDK_MODULES`].

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../../web/index.html");
const DEMO_JS: &str = include_str!("../../web/demo.js");
const DEMO_CSS: &str = include_str!("../../web/demo.css");

/// Every SDK module under `web/sdk/`, by file name.
const SDK_MODULES: &[(&str, &str)] = &[
    ("chat.js", include_str!("../../web/sdk/chat.js")),
    ("chorus.js", include_str!("../../web/sdk/chorus.js")),
    ("data.js", include_str!("../../web/sdk/data.js")),
    ("dispatch.js", include_str!("../../web/sdk/dispatch.js")),
    ("emitter.js", include_str!("../../web/sdk/emitter.js")),
    ("errors.js", include_str!("../../web/sdk/errors.js")),
    ("log.js", include_str!("../../web/sdk/log.js")),
    (
        "participants.js",
        include_str!("../../web/sdk/participants.js"),
    ),
    ("path.js", include_str!("../../web/sdk/path.js")),
    ("peer.js", include_str!("../../web/sdk/peer.js")),
    ("publisher.js", include_str!("../../web/sdk/publisher.js")),
    ("quality.js", include_str!("../../web/sdk/quality.js")),
    ("rejoin.js", include_str!("../../web/sdk/rejoin.js")),
    ("room.js", include_str!("../../web/sdk/room.js")),
    ("roster.js", include_str!("../../web/sdk/roster.js")),
    ("signaling.js", include_str!("../../web/sdk/signaling.js")),
    ("stats.js", include_str!("../../web/sdk/stats.js")),
    ("subscriber.js", include_str!("../../web/sdk/subscriber.js")),
];

const JS: &str = "text/javascript; charset=utf-8";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn demo_js() -> Response {
    asset(JS, DEMO_JS)
}

pub async fn demo_css() -> Response {
    asset("text/css; charset=utf-8", DEMO_CSS)
}

/// `/sdk/{file}`: the entry module or one of the modules it imports.
pub async fn sdk_module(Path(file): Path<String>) -> Response {
    match SDK_MODULES.iter().find(|(name, _)| *name == file) {
        Some((_, body)) => asset(JS, body),
        None => (StatusCode::NOT_FOUND, "no such SDK module").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::SDK_MODULES;

    #[test]
    fn every_sdk_module_on_disk_is_served() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/sdk");
        let entries = std::fs::read_dir(&dir).expect("web/sdk exists");
        for entry in entries {
            let name = entry.expect("dir entry").file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".js") {
                assert!(
                    SDK_MODULES.iter().any(|(served, _)| *served == name),
                    "web/sdk/{name} is not in SDK_MODULES: the served SDK would fail to load it"
                );
            }
        }
    }
}
