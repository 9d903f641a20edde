//! One SQLite connection per component instance, opened on first use, with the schema ensured once.
//!
//! The exports are synchronous, so they use the synchronous `spin:sqlite` functions; an instance never runs two
//! of them at once, which keeps `changes()` tied to the statement just executed on this connection.

use std::cell::RefCell;

use crate::bindings::spin::sqlite::sqlite::{Connection, Error, QueryResult, Value};
use crate::error::AdapterError;
use crate::sql;

/// Spin's name for the app's default database, the one `sqlite_databases = ["default"]` grants.
const DATABASE: &str = "default";

thread_local! {
    static CONNECTION: RefCell<Option<Connection>> = const { RefCell::new(None) };
}

/// Runs `f` with this instance's connection, opening it (and creating the table if needed) on first use. A
/// failed open is not remembered, and a connection the host no longer knows is dropped, so the next call
/// starts afresh.
pub fn with<T>(f: impl FnOnce(&Db) -> Result<T, AdapterError>) -> Result<T, AdapterError> {
    CONNECTION.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let conn = Connection::open(DATABASE).map_err(map_error)?;
            for statement in sql::SCHEMA {
                conn.execute(statement, &[]).map_err(map_error)?;
            }
            *slot = Some(conn);
        }
        let Some(conn) = slot.as_ref() else {
            unreachable!("filled just above")
        };
        let result = f(&Db { conn });
        if matches!(result, Err(AdapterError::ConnectionLost)) {
            *slot = None;
        }
        result
    })
}

pub struct Db<'c> {
    conn: &'c Connection,
}

impl Db<'_> {
    pub fn execute(&self, statement: &str, params: &[Value]) -> Result<QueryResult, AdapterError> {
        self.conn.execute(statement, params).map_err(map_error)
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE on this connection.
    pub fn changes(&self) -> u64 {
        self.conn.changes()
    }
}

fn map_error(e: Error) -> AdapterError {
    match e {
        Error::NoSuchDatabase => AdapterError::NotPermitted("no such database"),
        Error::AccessDenied => AdapterError::NotPermitted("access denied"),
        Error::DatabaseFull => AdapterError::Full,
        Error::InvalidConnection => AdapterError::ConnectionLost,
        Error::Io(message) => AdapterError::Unavailable(message),
    }
}
