//! The store: SQLite in WAL mode, migrated at start-up.
//!
//! All writes go through one writer thread ([`writer`]), which groups the work of
//! many tasks into one transaction (group commit), gives each task's events their
//! own sequence numbers, and publishes committed events in order. Reads use a
//! small pool of read-only connections, which WAL lets run beside the writer.

mod checkpoints;
mod column;
mod conversation;
mod error;
mod events;
mod github;
mod schema;
mod sessions;
mod tasks;
mod time;
mod users;
mod workspaces;
mod writer;

use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;

use rusqlite::Connection;
use rusqlite::OpenFlags;

pub use checkpoints::CheckpointRow;
pub use checkpoints::NewCheckpoint;
pub use conversation::*;
pub use error::StoreError;
pub use events::Committed;
pub use events::Publish;
pub use github::UserIdentity;
pub use sessions::Refresh;
pub use sessions::SessionKind;
pub use tasks::*;
pub use time::now_ms;
pub use time::rfc3339;
pub use users::*;
pub use workspaces::EnvImageUse;
pub use writer::WriterStats;

/// Result alias for this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How hard SQLite works to survive a power cut.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    /// `synchronous=NORMAL`: a process crash loses nothing; a power cut may lose the last moments.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is fsynced.
    Full,
}

/// Store settings.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The database file.
    pub path: PathBuf,
    /// Durability level.
    pub synchronous: Synchronous,
    /// Read connections kept open.
    pub readers: usize,
    /// Write operations the writer queue holds before producers wait.
    pub queue_capacity: usize,
    /// Most operations committed in one transaction.
    pub max_batch: usize,
}

impl StoreOptions {
    /// Defaults for the database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreOptions {
            path: path.into(),
            synchronous: Synchronous::Normal,
            readers: 4,
            queue_capacity: 65_536,
            max_batch: 4_096,
        }
    }
}

/// Handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    readers: Mutex<Vec<Connection>>,
    writer: writer::Writer,
    _checkpointer: Checkpointer,
}

/// Creates the database file readable by its owner only, or makes an existing
/// one so. SQLite gives its `-wal` and `-shm` files the database file's mode.
fn owner_only(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::fs::PermissionsExt;
    let io = |e: std::io::Error| StoreError::Permissions {
        path: path.display().to_string(),
        source: e,
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
    }
    Ok(())
}

/// Runs WAL checkpoints on its own connection, once a second, so their fsyncs
/// never stall a commit (the writer's automatic checkpoints are off).
struct Checkpointer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path, sync: Synchronous) -> Result<Checkpointer> {
        let conn = open_conn(path, sync, false)?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("dockhand-store-checkpoint".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(std::time::Duration::from_secs(1))
                {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                    }
                }
            })
            .map_err(|e| StoreError::Commit(format!("starting the checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Store {
    /// Opens (creating if needed) and migrates the database, and starts the writer.
    /// `publish` sees every committed event batch, in commit order.
    pub fn open(opts: StoreOptions, publish: Arc<dyn Publish>) -> Result<Store> {
        owner_only(&opts.path)?;
        let mut conn = open_conn(&opts.path, opts.synchronous, false)?;
        schema::migrate(&mut conn)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let checkpointer = Checkpointer::start(&opts.path, opts.synchronous)?;
        let mut readers = Vec::with_capacity(opts.readers);
        for _ in 0..opts.readers.max(1) {
            readers.push(open_conn(&opts.path, opts.synchronous, true)?);
        }
        let writer = writer::Writer::start(conn, &opts, publish)?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: opts.path,
                readers: Mutex::new(readers),
                writer,
                _checkpointer: checkpointer,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Counters from the writer, for `/metrics`.
    pub fn writer_stats(&self) -> WriterStats {
        self.inner.writer.stats()
    }

    /// Waits until everything handed to the writer so far is committed and published.
    pub async fn flush(&self) -> Result<()> {
        self.transact(|_| Ok(())).await
    }

    /// Runs `f` on a read connection.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let conn = {
            let mut pool = self
                .inner
                .readers
                .lock()
                .map_err(|_| StoreError::Poisoned)?;
            pool.pop()
        };
        let conn = match conn {
            Some(c) => c,
            None => open_conn(&self.inner.path, Synchronous::Normal, true)?,
        };
        let out = f(&conn);
        if let Ok(mut pool) = self.inner.readers.lock() {
            pool.push(conn);
        }
        out
    }

    /// Records a token's use without waiting for the commit.
    pub(crate) fn touch_token(&self, token_id: i64, now: i64) -> Result<()> {
        self.inner.writer.submit(move |ctx| {
            ctx.conn().execute(
                "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1",
                rusqlite::params![token_id, now],
            )?;
            Ok(())
        })
    }

    /// Runs `f` inside the writer's next group transaction and resolves after commit.
    pub(crate) async fn transact<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut writer::JobCtx<'_>) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        self.inner.writer.transact(f).await
    }
}

fn open_conn(path: &Path, sync: Synchronous, read_only: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(|e| StoreError::Open {
        path: path.display().to_string(),
        source: e,
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
    }
    let level = match sync {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", level)?;
    Ok(conn)
}

#[cfg(test)]
mod stored_text_tests;
#[cfg(test)]
mod tests;
