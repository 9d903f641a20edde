//! Why a store call failed, before it becomes the WIT `store-error`.

/// A failure of the SQLite layer. None of these means "absent": the guard reads absence as permission to run.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The database could not answer now (I/O, a lock held past SQLite's busy timeout, a dropped connection).
    #[error("sqlite unavailable: {0}")]
    Unavailable(String),
    /// The app is not set up to let this component reach the database: a configuration error, not a transient one.
    #[error(
        "sqlite access refused ({0}); grant it with inherit_configuration = [\"sqlite_databases\"] on the dependency and sqlite_databases = [\"default\"] on the component"
    )]
    NotPermitted(&'static str),
    /// The host no longer knows this instance's connection; the next call opens a new one.
    #[error("sqlite connection lost")]
    ConnectionLost,
    /// The database is full.
    #[error("sqlite database is full")]
    Full,
    /// A row came back in a shape this adapter did not write: foreign or damaged data in its table.
    #[error("unexpected row in the idem store table: {0}")]
    BadRow(&'static str),
    /// A write kept meeting a row that changed under it; each lost race means another writer made progress.
    #[error("store key stayed contended after {0} attempts")]
    Contended(u32),
}
