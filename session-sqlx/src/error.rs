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
    if transient {
        Error::transient(BACKEND, e)
    } else {
        Error::backend(BACKEND, e)
    }
}

/// Whether `e` is a unique-key violation (SQLSTATE 23505).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}
