//! Session types, the [`SessionStore`] contract, session policy
//! ([`SessionManager`], [`Session`]) and an in-memory store ([`MemoryStore`]).
//!
//! Backends (`session-sled`, `session-sqlx`, `session-redis`) implement
//! [`SessionStore`] and nothing else; every rule about tokens, timeouts,
//! rotation, concurrency and encryption lives here.

mod clock;
mod error;
mod memory;
mod record;
mod store;
mod token;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{BoxError, Error, Result};
pub use memory::MemoryStore;
pub use record::{Record, Timestamp};
pub use store::SessionStore;
pub use token::{SessionId, SessionKey, SessionToken, TOKEN_BYTES, TOKEN_LEN};
