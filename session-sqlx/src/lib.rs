//! A PostgreSQL [`SessionStore`](session_core::SessionStore) on sqlx.
//!
//! See [`PostgresStore`] for the schema and the statements. Purge expired rows
//! in the background with [`session_core::PurgeTask`].

mod error;
mod exec;
mod names;
mod pooler;
mod schema;
mod sql;
mod store;

pub use pooler::Pooler;
pub use store::PostgresStore;
