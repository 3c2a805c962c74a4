//! The browser SDK and demo page, compiled into the binary so the server needs no files or build step.
//!
//! `/sdk/chorus.js` is the SDK's entry module; the modules it imports live in `web/sdk/` and are served at
//! `/sdk/<file>`. Adding a module means adding one line to [`SDK_MODULES`].

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../../web/index.html");
const DEMO_JS: &str = include_str!("../../web/demo.js");
const DEMO_CSS: &str = include_str!("../../web/demo.css");
const SDK_ENTRY: &str = include_str!("../../web/chorus.js");

/// Every SDK module under `web/sdk/`, by file name.
const SDK_MODULES: &[(&str, &str)] = &[];

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
    if file == "chorus.js" {
        return asset(JS, SDK_ENTRY);
    }
    match SDK_MODULES.iter().find(|(name, _)| *name == file) {
        Some((_, body)) => asset(JS, body),
        None => (StatusCode::NOT_FOUND, "no such SDK module").into_response(),
    }
}
