//! A throwaway `redis-server` on loopback for cluster and store tests: a free port, no persistence, killed on
//! drop. CI installs Redis (`scripts/test.sh` runs `apt-get install redis-server`); without it, [`RedisServer::start`]
//! says what to install.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`, stopped when dropped.
pub struct RedisServer {
    /// `redis://127.0.0.1:<port>/0`
    pub url: String,
    pub port: u16,
    child: Child,
}

impl RedisServer {
    /// Starts `redis-server` on a free loopback port and waits until it answers.
    pub async fn start() -> anyhow::Result<RedisServer> {
        let port = free_tcp_port()?;
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot start redis-server ({e}); install it, e.g. `apt-get install -y redis-server` \
                     (scripts/test.sh does this as root)"
                )
            })?;
        let server = RedisServer {
            url: format!("redis://127.0.0.1:{port}/0"),
            port,
            child,
        };
        let client = redis::Client::open(server.url.as_str())?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match client.get_multiplexed_async_connection().await {
                Ok(mut conn) => {
                    let pong: redis::RedisResult<String> =
                        redis::cmd("PING").query_async(&mut conn).await;
                    if pong.is_ok() {
                        return Ok(server);
                    }
                }
                Err(e) if Instant::now() > deadline => {
                    anyhow::bail!("redis-server on port {port} did not answer: {e}")
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_tcp_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
