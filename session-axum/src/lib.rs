//! The HTTP side of `session-core` for axum 0.8 / tower 0.5: a [`SessionLayer`]
//! that loads the session from a cookie (or a bearer token) and commits it
//! before the response leaves, and a [`CurrentSession`] extractor.
//!
//! Cookies default to `__Host-session; Secure; HttpOnly; SameSite=Lax; Path=/`
//! with no `Domain`; see [`TransportConfig`] for development mode and bearer
//! tokens.
//!
//! # Example
//!
//! A counter per visitor; add a store from `session-sled`, `session-sqlx` or
//! `session-redis` in place of [`MemoryStore`](session_core::MemoryStore):
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::{routing::post, Router};
//! use session_axum::{CurrentSession, SessionLayer, TransportConfig};
//! use session_core::{MemoryStore, SessionConfig, SessionManager};
//!
//! async fn count(session: CurrentSession) -> String {
//!     match session.modify("n", |n: Option<u64>| n.unwrap_or(0) + 1).await {
//!         Ok(n) => n.to_string(),
//!         Err(e) => format!("error: {e}"),
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let manager = SessionManager::new(Arc::new(MemoryStore::new()), SessionConfig::default())?;
//!     let app: Router = Router::new()
//!         .route("/count", post(count))
//!         .layer(SessionLayer::new(manager, TransportConfig::default()));
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     axum::serve(listener, app).await?;
//!     Ok(())
//! }
//! ```

#[cfg(feature = "jwt")]
mod access;
mod config;
mod cookies;
mod extract;
mod layer;

#[cfg(feature = "jwt")]
pub use access::{Access, AccessRejection, AccessTokenLayer, AccessTokenService, StrictAccess};
pub use config::{TransportConfig, DEFAULT_COOKIE_NAME, DEV_COOKIE_NAME, TOKEN_HEADER};
pub use extract::CurrentSession;
pub use layer::{SessionLayer, SessionService};
