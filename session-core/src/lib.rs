//! Session types, the [`SessionStore`] contract, session policy
//! ([`SessionManager`], [`Session`]) and an in-memory store ([`MemoryStore`]).
//!
//! Backends (`session-sled`, `session-sqlx`, `session-redis`) implement
//! [`SessionStore`] and nothing else; every rule about tokens, timeouts,
//! rotation, concurrency and encryption lives here.
//!
//! - Identity: [`SessionToken`] (the secret, 32 random bytes), [`SessionKey`]
//!   (its SHA-256, the only thing stores see), [`SessionId`] (stable uuid).
//! - Storage: [`Record`], [`SessionStore`], [`MemoryStore`].
//! - Policy: [`SessionManager`], [`Session`], [`SessionConfig`], [`KeyRing`].

mod clock;
mod codec;
mod config;
mod error;
mod expiry;
mod manager;
mod memory;
mod purge;
mod record;
mod seal;
mod session;
mod store;
mod token;
mod values;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::SessionConfig;
pub use error::{BoxError, Error, Result};
pub use manager::{SessionInfo, SessionManager};
pub use memory::MemoryStore;
pub use purge::PurgeTask;
pub use record::{check_user_name, newest_per_session, Record, Timestamp, MAX_USER_LEN};
pub use seal::KeyRing;
pub use session::{Session, TokenAction};
pub use store::SessionStore;
pub use token::{SessionId, SessionKey, SessionToken, TOKEN_BYTES, TOKEN_LEN};
