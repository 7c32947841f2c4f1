//! Short-lived signed access tokens (JSON Web Tokens) bound to server-side
//! sessions: the third family of session management, joined to the first.
//!
//! A live server-side session with a principal is the refresh credential
//! (its cookie for browsers, its bearer token for other clients). From it an
//! [`Issuer`] mints an access token: a JWS in compact form, signed with
//! EdDSA (Ed25519, the default) or ES256, carrying `iss`, `aud`, `sub` (the
//! principal), `sid` (the stable [`SessionId`](session_core::SessionId)),
//! `iat`, `nbf`, `exp` and `jti`, with the key id in the header. Any service
//! holding the published keys ([`KeySet::jwks`]) checks it with a
//! [`Verifier`], without a store round trip.
//!
//! Revocation has a bound the app chooses:
//! - Ending the session (logout, revoke, "log out everywhere", expiry) stops
//!   new tokens at once: issuing needs the live session.
//! - Tokens already issued end at their `exp` (5 minutes by default, never
//!   past the session's absolute deadline) under [`Verifier::verify`].
//! - Routes that must not wait use [`Verifier::verify_live`], which also
//!   confirms the session is still live: one store call.
//!
//! Signing and verification are `jsonwebtoken`'s (RustCrypto backend); key
//! material is `ed25519-dalek`'s and `p256`'s.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use session_core::{MemoryStore, SessionConfig, SessionManager};
//! use session_jwt::{Algorithm, Issuer, KeySet, SigningKey, VerifierConfig};
//!
//! let manager = SessionManager::new(Arc::new(MemoryStore::new()), SessionConfig::default())?;
//! let keys = KeySet::new(SigningKey::generate("2026-12", Algorithm::EdDSA));
//! let issuer = Issuer::new(keys.clone(), "https://app.example", "api");
//!
//! // A request with a live, logged-in session asks for an access token.
//! let session = manager.load(None).await?;
//! session.login("alice")?;
//! session.commit().await?;
//! let token = issuer.issue(&session).expect("a live session with a principal");
//!
//! // Any service verifies it with the published keys, no store involved.
//! let jwks = keys.jwks_json();
//! let verifier = session_jwt::Verifier::from_jwks(
//!     &jwks,
//!     VerifierConfig::new("https://app.example", "api"),
//! ).expect("a valid JWKS");
//! let claims = verifier.verify(token.as_str()).expect("valid");
//! assert_eq!(claims.sub, "alice");
//! assert_eq!(Some(claims.sid), session.id());
//! # Ok::<(), session_core::Error>(())
//! # }).unwrap();
//! ```

mod claims;
mod error;
mod issuer;
mod keys;
mod verifier;

pub use claims::{AccessClaims, AccessToken};
pub use error::Error;
pub use issuer::{Issuer, DEFAULT_LIFETIME};
pub use keys::{Algorithm, KeySet, SigningKey};
pub use verifier::{Verifier, VerifierConfig, MAX_LEEWAY, MAX_TOKEN_LEN};
