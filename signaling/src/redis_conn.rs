//! Connecting to the Redis a cluster shares (`--redis-url`): one place for the timeouts, the reconnect policy and
//! keeping the URL's password out of messages. The store (`store/redis/`) and the cluster (`cluster/redis.rs`) both
//! connect through [`connect`]; each maps the error text into its own error type.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long connecting (and each later command) may take before it fails.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to `url`: the client (for pub/sub connections) and a multiplexed connection that reconnects by itself.
/// A refused or wrong connection fails at once, a Redis that never answers within [`TIMEOUT`]. After a lost
/// connection, the next command reconnects: up to 3 more attempts, at most about 1 s apart, so a restarting Redis
/// is ridden out and a gone one fails commands within seconds. The error never contains the password.
pub async fn connect(url: &str) -> Result<(redis::Client, ConnectionManager), String> {
    let shown = redact(url);
    let client =
        redis::Client::open(url).map_err(|e| format!("invalid URL {shown}: {}", scrub(url, &e)))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(TIMEOUT)
        .set_response_timeout(TIMEOUT)
        .set_factor(2)
        .set_max_delay(1000)
        .set_number_of_retries(3);
    let connect = async {
        // One plain attempt first, so that a refused or wrong connection fails at once, not after the retries.
        let probe_config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(TIMEOUT)
            .set_response_timeout(TIMEOUT);
        let mut probe = client
            .get_multiplexed_async_connection_with_config(&probe_config)
            .await?;
        redis::cmd("PING").query_async::<String>(&mut probe).await?;
        ConnectionManager::new_with_config(client.clone(), config).await
    };
    match tokio::time::timeout(TIMEOUT, connect).await {
        Ok(Ok(conn)) => Ok((client, conn)),
        Ok(Err(e)) => Err(format!("cannot connect to {shown}: {}", scrub(url, &e))),
        Err(_) => Err(format!(
            "no answer from {shown} within {} s",
            TIMEOUT.as_secs()
        )),
    }
}

/// `url` with its password replaced, fit for logs and errors.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "(an unparsable URL)".to_owned(),
    }
}

/// `e` as text, without the password of `url` should the error quote it.
fn scrub(url: &str, e: &redis::RedisError) -> String {
    let text = e.to_string();
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_owned))
    {
        Some(password) if !password.is_empty() => text.replace(&password, "***"),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(
            redact("redis://user:s3cret@example.com:6379/0"),
            "redis://user:***@example.com:6379/0"
        );
        assert_eq!(
            redact("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(redact("not a url s3cret"), "(an unparsable URL)");
    }
}
