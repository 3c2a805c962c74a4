//! Access tokens for the load test's participants: signed here with an API key (given, or the server's dev keys
//! file), or fetched from a dev-mode server's `/dev/token`.

use std::time::Duration;

use chorus_signaling::auth::{ApiKey, KeyStore, TokenRequest};

use crate::config::TokenSource;
use crate::http::{self, HttpUrl};

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot sign tokens: {0}")]
    Sign(String),
    #[error(
        "no way to get tokens: pass --api-key/--api-secret, point --data-dir at the server's data directory \
         (dev-keys.json), or run the server in dev mode ({0})"
    )]
    NoSource(String),
    #[error("dev token endpoint: {0}")]
    Endpoint(String),
}

/// Makes one token per participant.
pub enum Tokens {
    Sign {
        keys: KeyStore,
        ttl: Duration,
    },
    /// A dev-mode server's `/dev/token` (base URL).
    Endpoint(HttpUrl),
}

impl Tokens {
    /// Picks the source: explicit key; else a dev-mode server's `/dev/token` if it answers; else the dev
    /// keys file. Tokens live for `ttl`.
    pub async fn new(
        source: &TokenSource,
        http: Option<&HttpUrl>,
        ttl: Duration,
    ) -> Result<Tokens, TokenError> {
        let sign = |key: ApiKey| {
            KeyStore::new(vec![key])
                .map(|keys| Tokens::Sign { keys, ttl })
                .map_err(|e| TokenError::Sign(e.to_string()))
        };
        match source {
            TokenSource::Key { key, secret } => sign(ApiKey {
                key: key.clone(),
                secret: secret.clone(),
            }),
            TokenSource::DevKeys(dir) => {
                let mut why = String::from("the URL is not ws://");
                if let Some(base) = http {
                    let probe = dev_token_url(base, "probe", "probe");
                    match http::get(&probe).await {
                        Ok(_) => return Ok(Tokens::Endpoint(base.clone())),
                        Err(e) => why = e.to_string(),
                    }
                }
                match chorus_signaling::dev_keys::load(dir) {
                    Ok(Some(dev)) => sign(dev.api_key),
                    Ok(None) => Err(TokenError::NoSource(format!(
                        "{why}; no dev keys in {}",
                        dir.display()
                    ))),
                    Err(e) => Err(TokenError::NoSource(format!("{why}; {e}"))),
                }
            }
        }
    }

    /// A token for `identity` in `room`, allowed to publish and subscribe.
    pub async fn token(&self, room: &str, identity: &str) -> Result<String, TokenError> {
        match self {
            Tokens::Sign { keys, ttl } => {
                let mut req = TokenRequest::new(identity, room);
                req.ttl = *ttl;
                keys.issue(&req)
                    .map_err(|e| TokenError::Sign(e.to_string()))
            }
            Tokens::Endpoint(base) => {
                let body = http::get(&dev_token_url(base, room, identity))
                    .await
                    .map_err(|e| TokenError::Endpoint(e.to_string()))?;
                let reply: serde_json::Value = serde_json::from_str(&body)
                    .map_err(|e| TokenError::Endpoint(format!("bad JSON: {e}")))?;
                reply
                    .get("token")
                    .and_then(|t| t.as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| TokenError::Endpoint("reply has no token".into()))
            }
        }
    }
}

/// Room names and identities here are generated (`[a-z0-9-]`), so no escaping is needed.
fn dev_token_url(base: &HttpUrl, room: &str, identity: &str) -> HttpUrl {
    base.with_path(&format!("/dev/token?room={room}&identity={identity}"))
}
