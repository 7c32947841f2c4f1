//! A Redis [`SessionStore`](session_core::SessionStore), for a standalone
//! server or a Redis Cluster, on the `redis` crate.
//!
//! See [`RedisStore`] for the key layout and the guarantees in each mode.

mod error;
mod scripts;
mod store;
mod value;

pub use error::{connect_error, redis_error};
pub use store::{RedisOptions, RedisStore};
