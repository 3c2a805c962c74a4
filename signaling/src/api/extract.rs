//! Request extractors of the `/v1` API: [`Admin`] (the verified `Authorization: Bearer` token) and [`ApiJson`] (a
//! size-limited JSON body whose errors name the field). Handlers take `Admin` first so a request without a valid
//! token gets 401 before its body is looked at.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::auth::{AdminGrant, AdminToken, AuthError};
use crate::server::AppState;

/// Largest request body accepted by the API.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request's verified server-API token.
#[derive(Debug)]
pub struct Admin(pub AdminToken);

impl Admin {
    /// Fails with 403 unless the token holds `grant` (for `room`, when the grant is about one room).
    pub fn require(&self, grant: AdminGrant, room: Option<&str>) -> Result<(), ApiError> {
        if self.0.allows(grant, room) {
            return Ok(());
        }
        let scope = match (&self.0.room, room) {
            (Some(own), _) => format!(" (this token is limited to room `{own}`)"),
            _ => String::new(),
        };
        Err(ApiError::Forbidden(format!(
            "this call needs the `{}` grant{scope}",
            grant.name()
        )))
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::Unauthorized("missing `Authorization: Bearer <token>` header".into())
        })?;
        let value = header
            .to_str()
            .map_err(|_| ApiError::Unauthorized("the Authorization header is not text".into()))?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => {
                return Err(ApiError::Unauthorized(
                    "the Authorization header must be `Bearer <token>`".into(),
                ))
            }
        };
        match state.keys.verify_admin(token) {
            Ok(admin) => Ok(Admin(admin)),
            Err(AuthError::Expired) => Err(ApiError::TokenExpired),
            Err(e) => Err(ApiError::Unauthorized(e.to_string())),
        }
    }
}

/// A JSON request body of at most [`MAX_BODY_BYTES`]. An empty body counts as `{}`, so calls whose fields are
/// all optional work without one.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let mime = v.split(';').next().unwrap_or("").trim();
                mime.eq_ignore_ascii_case("application/json")
            });
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge(MAX_BODY_BYTES)
            } else {
                ApiError::BadJson(format!("cannot read the body: {rejection}"))
            }
        })?;
        if bytes.len() > MAX_BODY_BYTES {
            return Err(ApiError::TooLarge(MAX_BODY_BYTES));
        }
        let body: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            if json_type == Some(false) {
                return Err(ApiError::UnsupportedMediaType);
            }
            &bytes
        };
        parse(body).map(ApiJson)
    }
}

/// Parses `body`, naming the offending field on a type or value error.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(value) => {
            de.end()
                .map_err(|e| ApiError::BadJson(format!("invalid JSON: {e}")))?;
            Ok(value)
        }
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return Err(ApiError::BadJson(format!("invalid JSON: {inner}")));
            }
            let message = strip_position(&inner.to_string());
            // A missing field is reported at its parent; name it from the message.
            let field = match (path.as_str(), quoted_field(&message, "missing field `")) {
                (".", Some(name)) => name.to_string(),
                (parent, Some(name)) => format!("{parent}.{name}"),
                (".", None) => quoted_field(&message, "unknown field `")
                    .unwrap_or("body")
                    .to_string(),
                (path, None) => path.to_string(),
            };
            Err(ApiError::invalid(field, message))
        }
    }
}

/// The field named in a serde message starting with `prefix` ("missing field `x`…").
fn quoted_field<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    message.strip_prefix(prefix)?.split('`').next()
}

/// serde_json appends " at line L column C"; the field name says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Inner {
        max_count: u32,
    }

    fn field_of(body: &str) -> String {
        match parse::<Body>(body.as_bytes()) {
            Err(ApiError::Invalid { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of(r#"{}"#), "name");
        assert_eq!(field_of(r#"{"name": 5}"#), "name");
        assert_eq!(field_of(r#"{"name": "a", "inner": {}}"#), "inner.maxCount");
        assert_eq!(
            field_of(r#"{"name": "a", "inner": {"maxCount": -1}}"#),
            "inner.maxCount"
        );
        assert!(matches!(
            parse::<Body>(b"{not json"),
            Err(ApiError::BadJson(_))
        ));
        assert!(matches!(
            parse::<Body>(br#"{"name":"a"} trailing"#),
            Err(ApiError::BadJson(_))
        ));
        assert_eq!(field_of(r#"{"name": "a", "colour": 1}"#), "colour");
        assert!(parse::<Body>(br#"{"name":"a"}"#).is_ok());
    }
}
