//! SQLite implementation of the store traits: one connection owned by a dedicated thread, so blocking SQLite
//! calls never run on the async runtime. Callers send closures to the thread and await the answer.
//!
//! Files: `migrations.rs` (schema versions), `identities.rs` (identities and revocations), `webhooks.rs` (the
//! webhook queue and dead letters), `chat.rs` (chat history).

use std::path::Path;
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::StoreError;

mod chat;
mod identities;
mod migrations;
mod webhooks;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A handle to the SQLite thread. The thread exits when the last handle is dropped.
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let path = path.to_path_buf();
        Self::start(move || {
            let conn = Connection::open(&path)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            Ok(conn)
        })
        .await
    }

    /// A private in-memory database (for tests).
    pub async fn open_in_memory() -> Result<SqliteStore, StoreError> {
        Self::start(Connection::open_in_memory).await
    }

    async fn start(
        open: impl FnOnce() -> Result<Connection, rusqlite::Error> + Send + 'static,
    ) -> Result<SqliteStore, StoreError> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("chorus-sqlite".into())
            .spawn(move || {
                let opened = open().map_err(StoreError::from).and_then(|mut conn| {
                    conn.busy_timeout(std::time::Duration::from_secs(5))?;
                    migrations::migrate(&mut conn)?;
                    Ok(conn)
                });
                let mut conn = match opened {
                    Ok(conn) => {
                        let _ = ready_tx.send(Ok(()));
                        conn
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    job(&mut conn);
                }
            })
            .map_err(|source| StoreError::DataDir {
                path: "(sqlite thread)".into(),
                source,
            })?;
        ready_rx.await.map_err(|_| StoreError::Closed)??;
        Ok(SqliteStore { jobs })
    }

    /// Runs `f` on the SQLite thread and returns its result.
    pub(super) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        Ok(rx.await.map_err(|_| StoreError::Closed)??)
    }
}

/// SQLite stores integers as i64; our timestamps and counts fit.
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
