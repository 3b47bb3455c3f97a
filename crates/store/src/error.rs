/// Errors from the store. Callers treat all of them as internal failures except
/// [`StoreError::NotFound`] and [`StoreError::Conflict`], which they can explain to a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Opening the database file failed.
    #[error("opening database {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The database file's permissions could not be made owner-only.
    #[error("securing database file {path}: {source}")]
    Permissions {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The database was written by a newer Dockhand.
    #[error(
        "database schema version {found} is newer than this Dockhand knows ({known}); upgrade Dockhand"
    )]
    TooNew {
        /// Version in the file.
        found: usize,
        /// Newest version known.
        known: usize,
    },
    /// A query failed.
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored JSON value did not parse.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The row does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The row is in a state that does not allow the change.
    #[error("{0}")]
    Conflict(String),
    /// The group transaction holding this change failed to commit.
    #[error("committing to the database: {0}")]
    Commit(String),
    /// The writer thread has stopped; the store is unusable.
    #[error("the store's writer has stopped")]
    WriterGone,
    /// A lock was poisoned by a panic elsewhere.
    #[error("store lock poisoned")]
    Poisoned,
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}
