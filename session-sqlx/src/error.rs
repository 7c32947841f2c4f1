//! sqlx errors as `session_core::Error`, with the source kept.

use session_core::Error;

pub(crate) const BACKEND: &str = "postgres";

/// SQLSTATE classes and codes a retry can cure: connection exceptions (08),
/// serialization failure and deadlock (40001, 40P01), and the server shutting
/// down or being unavailable (57P01-57P03).
fn transient_sqlstate(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "40001" | "40P01" | "57P01" | "57P02" | "57P03")
}

pub(crate) fn db_err(e: sqlx::Error) -> Error {
    let transient = match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| transient_sqlstate(&c)),
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

/// Whether `e` is a unique-key violation (SQLSTATE 23505).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}
