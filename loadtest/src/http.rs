//! The few plain-HTTP GETs a load test makes (`/metrics`, `/dev/token`): HTTP/1.0 over a tokio `TcpStream`, so
//! the reply is never chunked and no HTTP client crate is needed. `http://` only.

use std::fmt;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest a request may take, connect to last byte.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest reply accepted.
const MAX_REPLY: u64 = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("GET {url}: {source}")]
    Io {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("GET {url}: timed out after {TIMEOUT:?}")]
    Timeout { url: String },
    #[error("GET {url}: {reason}")]
    Reply { url: String, reason: String },
}

/// An `http://host:port/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// `host:port` as given (port 80 added when missing).
    pub authority: String,
    /// Starts with `/`; may carry a query.
    pub path: String,
}

impl HttpUrl {
    pub fn parse(url: &str) -> Result<HttpUrl, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url:?} is not an http:// URL"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains(['@', ' ']) {
            return Err(format!("{url:?} has no usable host"));
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.contains(']'))
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(HttpUrl {
            authority,
            path: path.to_owned(),
        })
    }

    /// The same server, another path (`path` starts with `/`).
    pub fn with_path(&self, path: &str) -> HttpUrl {
        HttpUrl {
            authority: self.authority.clone(),
            path: path.to_owned(),
        }
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority, self.path)
    }
}

/// GETs `url` and returns the body of a 200 reply.
pub async fn get(url: &HttpUrl) -> Result<String, HttpError> {
    match tokio::time::timeout(TIMEOUT, get_inner(url)).await {
        Ok(result) => result,
        Err(_) => Err(HttpError::Timeout {
            url: url.to_string(),
        }),
    }
}

async fn get_inner(url: &HttpUrl) -> Result<String, HttpError> {
    let io = |source| HttpError::Io {
        url: url.to_string(),
        source,
    };
    let mut stream = TcpStream::connect(&url.authority).await.map_err(io)?;
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.path, url.authority
    );
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let mut reply = Vec::new();
    stream
        .take(MAX_REPLY)
        .read_to_end(&mut reply)
        .await
        .map_err(io)?;
    let fail = |reason: String| HttpError::Reply {
        url: url.to_string(),
        reason,
    };
    let text = String::from_utf8(reply).map_err(|_| fail("reply is not UTF-8".into()))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| fail("truncated reply".into()))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(fail(format!("server answered {status:?}")));
    }
    Ok(body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_urls() {
        let u = HttpUrl::parse("http://127.0.0.1:7880/metrics").expect("valid");
        assert_eq!(
            (u.authority.as_str(), u.path.as_str()),
            ("127.0.0.1:7880", "/metrics")
        );
        assert_eq!(u.to_string(), "http://127.0.0.1:7880/metrics");
        let u = HttpUrl::parse("http://localhost").expect("valid");
        assert_eq!(
            (u.authority.as_str(), u.path.as_str()),
            ("localhost:80", "/")
        );
        let u = HttpUrl::parse("http://[::1]/x").expect("valid");
        assert_eq!(u.authority, "[::1]:80");
        let u = HttpUrl::parse("http://[::1]:9/x").expect("valid");
        assert_eq!(u.authority, "[::1]:9");
        assert!(HttpUrl::parse("https://x").is_err());
        assert!(HttpUrl::parse("http:///x").is_err());
    }

    #[tokio::test]
    async fn refused_connection_is_an_error() {
        // Port 9 (discard) on loopback is closed here; any error is fine, a panic is not.
        let u = HttpUrl::parse("http://127.0.0.1:9/metrics").expect("valid");
        assert!(get(&u).await.is_err());
    }
}
