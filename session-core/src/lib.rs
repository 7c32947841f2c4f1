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
//!
//! # Example
//!
//! One request that counts and signs in, then the next request that presents
//! the token the first one issued (an HTTP layer such as `session-axum` does
//! the loading and committing for you):
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use session_core::{MemoryStore, SessionConfig, SessionManager, TokenAction};
//!
//! let manager = SessionManager::new(Arc::new(MemoryStore::new()), SessionConfig::default())?;
//!
//! // First request: no token yet.
//! let session = manager.load(None).await?;
//! let visits = session.modify("visits", |n: Option<u64>| n.unwrap_or(0) + 1).await?;
//! assert_eq!(visits, 1);
//! session.login("alice")?; // a new token at commit: no session fixation
//! let token = match session.commit().await? {
//!     TokenAction::Issue { token, .. } => token.expose(), // into the cookie
//!     other => panic!("a new session issues a token, got {other:?}"),
//! };
//!
//! // Next request: the cookie's value.
//! let session = manager.load(Some(&token)).await?;
//! assert_eq!(session.user().as_deref(), Some("alice"));
//! assert_eq!(session.get::<u64>("visits")?, Some(1));
//! # Ok::<(), session_core::Error>(())
//! # }).unwrap();
//! ```

pub mod client;
mod clock;
mod codec;
mod config;
mod error;
mod expiry;
mod manager;
mod memory;
mod purge;
mod record;
mod revocation;
mod seal;
mod session;
mod store;
mod token;
mod values;

pub use client::{ClientSide, SealedCookie};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::SessionConfig;
pub use error::{error_chain, BoxError, Error, Result};
pub use manager::{SessionInfo, SessionManager};
pub use memory::MemoryStore;
pub use purge::PurgeTask;
pub use record::{check_user_name, newest_per_session, Record, Timestamp, MAX_USER_LEN};
pub use seal::KeyRing;
pub use session::{Session, TokenAction};
pub use store::SessionStore;
pub use token::{KeyHash, KeyHasher, SessionId, SessionKey, SessionToken, TOKEN_BYTES, TOKEN_LEN};
