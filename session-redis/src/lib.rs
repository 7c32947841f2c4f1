//! A Redis [`SessionStore`](session_core::SessionStore), for a standalone
//! server or a Redis Cluster, on the `redis` crate.
//!
//! See [`RedisStore`] for the key layout and the guarantees in each mode.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> session_core::Result<()> {
//! use std::sync::Arc;
//! use session_core::{SessionConfig, SessionManager};
//! use session_redis::{RedisOptions, RedisStore};
//!
//! // Standalone; `RedisStore::connect_cluster` takes a list of node URLs.
//! let store = RedisStore::connect("redis://127.0.0.1:6379", RedisOptions::default().prefix("app:")).await?;
//! let manager = SessionManager::new(Arc::new(store), SessionConfig::default())?;
//! let session = manager.load(None).await?;
//! session.insert("theme", &"dark")?;
//! session.commit().await?;
//! # Ok(()) }
//! ```

mod cache;
mod error;
mod scripts;
mod store;
mod tracking;
mod value;

pub use cache::{CacheStats, LocalCache};
pub use error::{connect_error, redis_error};
pub use store::{RedisOptions, RedisStore};
pub use tracking::TRACKING_CLIENT_NAME;
