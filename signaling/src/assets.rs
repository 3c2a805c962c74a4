//! The browser SDK and demo page, compiled into the binary so the server needs no files or build step.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../../web/index.html");
const DEMO_JS: &str = include_str!("../../web/demo.js");
const DEMO_CSS: &str = include_str!("../../web/demo.css");
const SDK_JS: &str = include_str!("../../web/chorus.js");

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
    asset("text/javascript; charset=utf-8", DEMO_JS)
}

pub async fn demo_css() -> Response {
    asset("text/css; charset=utf-8", DEMO_CSS)
}

pub async fn sdk_js() -> Response {
    asset("text/javascript; charset=utf-8", SDK_JS)
}
