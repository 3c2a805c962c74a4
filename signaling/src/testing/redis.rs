//! A throwaway `redis-server` on loopback for cluster and store tests: a free port, no persistence unless asked
//! for, killed on drop; it can be stopped and restarted on the same port to test an outage. CI installs Redis
//! (`scripts/test.sh` runs `apt-get install redis-server`); without it, [`RedisServer::start`] says what to
//! install.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server`, stopped when dropped.
pub struct RedisServer {
    /// `redis://127.0.0.1:<port>/0`
    pub url: String,
    pub port: u16,
    child: Option<Child>,
    /// With persistence: where the append-only file lives (removed on drop).
    dir: Option<PathBuf>,
}

impl RedisServer {
    /// Starts `redis-server` on a free loopback port, without persistence, and waits until it answers.
    pub async fn start() -> anyhow::Result<RedisServer> {
        Self::launch(None).await
    }

    /// Like [`RedisServer::start`], with an append-only file synced on every write in a fresh directory, so that
    /// [`RedisServer::restart`] keeps the data, as a production Redis configured like `deploy/` does.
    pub async fn start_durable() -> anyhow::Result<RedisServer> {
        let dir = std::env::temp_dir().join(format!(
            "chorus-redis-{}-{}",
            std::process::id(),
            crate::ids::random_string(6)
        ));
        std::fs::create_dir_all(&dir)?;
        Self::launch(Some(dir)).await
    }

    async fn launch(dir: Option<PathBuf>) -> anyhow::Result<RedisServer> {
        let port = free_tcp_port()?;
        let mut server = RedisServer {
            url: format!("redis://127.0.0.1:{port}/0"),
            port,
            child: None,
            dir,
        };
        server.restart().await?;
        Ok(server)
    }

    /// Kills the server at once (SIGKILL), as a crash or a lost host would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after [`RedisServer::stop`]) and waits until it answers.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--protected-mode", "no"]);
        match &self.dir {
            Some(dir) => cmd
                .args(["--appendonly", "yes", "--appendfsync", "always", "--dir"])
                .arg(dir),
            None => cmd.args(["--appendonly", "no"]),
        };
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot start redis-server ({e}); install it, e.g. `apt-get install -y redis-server` \
                     (scripts/test.sh does this as root)"
                )
            })?;
        self.child = Some(child);
        self.wait_ready().await
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let client = redis::Client::open(self.url.as_str())?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match client.get_multiplexed_async_connection().await {
                Ok(mut conn) => {
                    let pong: redis::RedisResult<String> =
                        redis::cmd("PING").query_async(&mut conn).await;
                    if pong.is_ok() {
                        return Ok(());
                    }
                }
                Err(e) if Instant::now() > deadline => {
                    anyhow::bail!("redis-server on port {} did not answer: {e}", self.port)
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn free_tcp_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
