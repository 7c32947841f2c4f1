//! A PostgreSQL [`SessionStore`](session_core::SessionStore) on sqlx.
//!
//! See [`PostgresStore`] for the schema and the statements. Purge expired rows
//! in the background with [`session_core::PurgeTask`].

mod error;
mod names;
mod sql;
mod store;

pub use store::PostgresStore;
