//! sqlx errors as `session_core::Error`, with the source kept.

use std::fmt;

use session_core::Error;

pub(crate) const BACKEND: &str = "postgres";

/// SQLSTATE classes and codes a retry can cure: connection exceptions (08),
/// serialization failure and deadlock (40001, 40P01), and the server shutting
/// down or being unavailable (57P01-57P03).
fn transient_sqlstate(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "40001" | "40P01" | "57P01" | "57P02" | "57P03")
}

/// SQLSTATEs no retry cures even where their class says otherwise: invalid
/// authorization (28xxx: authentication failed, no such role) and
/// insufficient privilege (42501).
fn permanent_sqlstate(code: &str) -> bool {
    code.starts_with("28") || code == "42501"
}

/// Server messages that no retry cures, whatever SQLSTATE they come with
/// (pgbouncer reports most of its own errors as 08P01, a connection error).
const PERMANENT_MESSAGES: &[&str] = &[
    "unsupported startup parameter",
    "authentication failed",
    "permission denied",
];

/// Server messages that show a transaction-mode pooler between the store
/// and PostgreSQL: a statement prepared on one server connection was used
/// on another.
const POOLER_MESSAGES: &[&str] = &[
    "prepared statement \"sqlx_s_",
    "unnamed prepared statement does not exist",
    "bind message supplies",
    "unsupported startup parameter: extra_float_digits",
];

/// A failure that says a transaction-mode pooler is in between, with what
/// to set; the sqlx error is its source.
#[derive(Debug)]
pub(crate) struct PoolerError {
    source: sqlx::Error,
}

impl fmt::Display for PoolerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a connection pooler in transaction mode (pgbouncer pool_mode = transaction?) \
             is between this store and PostgreSQL: set pooler=transaction in the store URL \
             (postgres://…?pooler=transaction), or open the store with \
             PostgresStore::connect_with(options, Pooler::Transaction)",
        )
    }
}

impl std::error::Error for PoolerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

pub(crate) fn db_err(e: sqlx::Error) -> Error {
    let (code, message) = match &e {
        sqlx::Error::Database(db) => (db.code().map(|c| c.into_owned()), db.message().to_owned()),
        _ => (None, String::new()),
    };
    if POOLER_MESSAGES.iter().any(|m| message.contains(m)) {
        return Error::backend(BACKEND, PoolerError { source: e });
    }
    let permanent = code.as_deref().is_some_and(permanent_sqlstate)
        || PERMANENT_MESSAGES.iter().any(|m| message.contains(m));
    let transient = !permanent
        && match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(_) => code.as_deref().is_some_and(transient_sqlstate),
            _ => false,
        };
    let e: Box<dyn std::error::Error + Send + Sync> = match e {
        sqlx::Error::Database(_) => Box::new(ServerError(e)),
        e => Box::new(e),
    };
    if transient {
        Error::transient(BACKEND, e)
    } else {
        Error::backend(BACKEND, e)
    }
}

/// An error the server reported, shown as `message (SQLSTATE code)`.
///
/// sqlx's own text adds ` at line N`: the line of PostgreSQL's C source that
/// raised it, which means nothing to the person reading. The server's error is
/// the root cause (it has no source of its own), so nothing of the chain is
/// lost; `Debug` still shows everything sqlx knows, for logs.
#[derive(Debug)]
struct ServerError(sqlx::Error);

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            sqlx::Error::Database(db) => {
                f.write_str(db.message())?;
                if let Some(code) = db.code() {
                    write!(f, " (SQLSTATE {code})")?;
                }
                Ok(())
            }
            other => other.fmt(f),
        }
    }
}

impl std::error::Error for ServerError {}

/// Whether `e` says the server cannot be reached or the connection broke
/// (I/O, TLS, protocol, no connection in time, SQLSTATE class 08, the server
/// shutting down), rather than that a statement failed.
pub(crate) fn is_connection_level(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

/// Whether `e` is a unique-key violation (SQLSTATE 23505).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}
