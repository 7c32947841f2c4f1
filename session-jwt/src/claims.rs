//! [`AccessClaims`]: what an access token says; [`AccessToken`]: an issued one.

use std::fmt;

use serde::{Deserialize, Serialize};
use session_core::{SessionId, Timestamp};

/// The claims of an access token, as a verifier accepted them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessClaims {
    /// `iss`: who issued it.
    pub iss: String,
    /// `aud`: who it is for.
    pub aud: String,
    /// `sub`: the session's principal.
    pub sub: String,
    /// `sid`: the stable id of the session it was issued from.
    pub sid: SessionId,
    /// `iat`: when it was issued (whole seconds).
    pub iat: Timestamp,
    /// `nbf`: not valid before (whole seconds; the issue time).
    pub nbf: Timestamp,
    /// `exp`: not valid from (whole seconds).
    pub exp: Timestamp,
    /// `jti`: a unique id for this token.
    pub jti: String,
}

/// The claims on the wire (RFC 7519 names, seconds since the epoch).
#[derive(Serialize, Deserialize)]
pub(crate) struct Wire {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub sid: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
}

impl Wire {
    pub(crate) fn from_claims(c: &AccessClaims) -> Self {
        Self {
            iss: c.iss.clone(),
            aud: c.aud.clone(),
            sub: c.sub.clone(),
            sid: c.sid.to_string(),
            iat: c.iat.as_millis() / 1000,
            nbf: c.nbf.as_millis() / 1000,
            exp: c.exp.as_millis() / 1000,
            jti: c.jti.clone(),
        }
    }

    /// `None` if `sid` is not a session id or a time is out of range.
    pub(crate) fn into_claims(self) -> Option<AccessClaims> {
        let secs = |s: i64| s.checked_mul(1000).map(Timestamp::from_millis);
        Some(AccessClaims {
            iss: self.iss,
            aud: self.aud,
            sub: self.sub,
            sid: self.sid.parse().ok()?,
            iat: secs(self.iat)?,
            nbf: secs(self.nbf)?,
            exp: secs(self.exp)?,
            jti: self.jti,
        })
    }
}

/// An issued access token: the compact JWS and its claims. `Debug` shows
/// the claims, never the token.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub(crate) token: String,
    pub(crate) claims: AccessClaims,
}

impl AccessToken {
    /// The token, for an `Authorization: Bearer` header. Never log it.
    pub fn as_str(&self) -> &str {
        &self.token
    }

    /// What it says.
    pub fn claims(&self) -> &AccessClaims {
        &self.claims
    }

    /// Seconds from `now` until it expires (for an OAuth-style `expires_in`).
    pub fn expires_in(&self, now: Timestamp) -> u64 {
        self.claims.exp.since(now).as_secs()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}
