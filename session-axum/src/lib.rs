//! The HTTP side of `session-core` for axum 0.8 / tower 0.5: a [`SessionLayer`]
//! that loads the session from a cookie (or a bearer token) and commits it
//! before the response leaves, and a [`CurrentSession`] extractor.
//!
//! Cookies default to `__Host-session; Secure; HttpOnly; SameSite=Lax; Path=/`
//! with no `Domain`; see [`TransportConfig`] for development mode and bearer
//! tokens.

mod config;
mod cookies;
mod extract;
mod layer;

pub use config::{TransportConfig, DEFAULT_COOKIE_NAME, DEV_COOKIE_NAME, TOKEN_HEADER};
pub use extract::CurrentSession;
pub use layer::{SessionLayer, SessionService};
