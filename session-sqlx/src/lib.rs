//! A PostgreSQL [`SessionStore`](session_core::SessionStore) on sqlx.
//!
//! See [`PostgresStore`] for the schema and the statements. Purge expired rows
//! in the background with [`session_core::PurgeTask`].
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> session_core::Result<()> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use session_core::{PurgeTask, SessionConfig, SessionManager};
//! use session_sqlx::PostgresStore;
//!
//! let store = PostgresStore::connect("postgres://app@localhost/app").await?;
//! store.migrate().await?; // idempotent: run it at every start
//! let store = Arc::new(store);
//! let purge = PurgeTask::spawn(store.clone(), Duration::from_secs(60));
//! let manager = SessionManager::new(store, SessionConfig::default())?;
//! // … hand `manager` to the HTTP layer; at shutdown:
//! purge.shutdown().await;
//! # drop(manager); Ok(()) }
//! ```

mod error;
mod exec;
mod guard;
mod names;
mod pooler;
mod schema;
mod sql;
mod store;

pub use pooler::Pooler;
pub use store::PostgresStore;
