//! [`Error`]: why a token was not issued or not accepted.

use std::fmt;

/// Why a token was not issued, not accepted, or a key not loaded.
///
/// The verification variants are what an HTTP layer maps to `401` with
/// `WWW-Authenticate: Bearer error="invalid_token"`; their `Display` is
/// safe to log (it never holds the token).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Issuing needs a stored session with a principal.
    NotLoggedIn,
    /// Issuing needs a server-side session: a client-side one cannot be
    /// checked live or revoked by id.
    ClientSideSession,
    /// The session has passed its absolute deadline.
    SessionExpired,
    /// No token was presented.
    Missing,
    /// The token is longer than the verifier accepts.
    Oversized {
        /// Its length in bytes.
        len: usize,
        /// The most the verifier accepts.
        max: usize,
    },
    /// Not a compact JWS with the claims this crate issues (truncated,
    /// damaged, a claim missing or of the wrong type).
    Malformed {
        /// What was wrong.
        what: &'static str,
        /// The JWT library's error, when there is one.
        source: Option<jsonwebtoken::errors::Error>,
    },
    /// The header names an algorithm this verifier is not configured for
    /// (`none`, an HMAC algorithm, RSA, …), or one that does not match the
    /// key it names.
    UnsupportedAlgorithm(String),
    /// The header names no key id, or one the verifier does not hold.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `aud` is not the verifier's audience.
    WrongAudience,
    /// `iss` is not the verifier's issuer.
    WrongIssuer,
    /// `exp` has passed (beyond the leeway).
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    NotYetValid,
    /// The strict check found the token's session ended (logout, revoked,
    /// expired).
    SessionEnded,
    /// The strict check could not ask the store.
    Store(session_core::Error),
    /// A key or key set could not be built or read (the message says why).
    InvalidKey(String),
    /// Signing failed.
    Signing(jsonwebtoken::errors::Error),
}

impl Error {
    pub(crate) fn malformed(what: &'static str, source: jsonwebtoken::errors::Error) -> Self {
        Self::Malformed {
            what,
            source: Some(source),
        }
    }

    /// Whether the token was refused (as opposed to issuing failing, a key
    /// failing to load, or the store failing).
    pub fn is_invalid_token(&self) -> bool {
        matches!(
            self,
            Self::Missing
                | Self::Oversized { .. }
                | Self::Malformed { .. }
                | Self::UnsupportedAlgorithm(_)
                | Self::UnknownKey
                | Self::BadSignature
                | Self::WrongAudience
                | Self::WrongIssuer
                | Self::Expired
                | Self::NotYetValid
                | Self::SessionEnded
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotLoggedIn => f.write_str("no logged-in session to issue an access token for"),
            Self::ClientSideSession => f.write_str(
                "access tokens are bound to server-side sessions; this session is client-side",
            ),
            Self::SessionExpired => f.write_str("the session has passed its absolute deadline"),
            Self::Missing => f.write_str("no access token"),
            Self::Oversized { len, max } => {
                write!(f, "access token of {len} bytes, over the limit of {max}")
            }
            Self::Malformed { what, .. } => write!(f, "malformed access token: {what}"),
            Self::UnsupportedAlgorithm(alg) => {
                write!(f, "access token algorithm {alg:?} is not accepted")
            }
            Self::UnknownKey => f.write_str("access token signed with an unknown key"),
            Self::BadSignature => f.write_str("access token signature does not verify"),
            Self::WrongAudience => f.write_str("access token for another audience"),
            Self::WrongIssuer => f.write_str("access token from another issuer"),
            Self::Expired => f.write_str("access token expired"),
            Self::NotYetValid => f.write_str("access token not yet valid"),
            Self::SessionEnded => f.write_str("the access token's session has ended"),
            Self::Store(_) => f.write_str("could not check the access token's session"),
            Self::InvalidKey(why) => write!(f, "invalid key: {why}"),
            Self::Signing(_) => f.write_str("signing the access token failed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Malformed {
                source: Some(s), ..
            } => Some(s),
            Self::Store(e) => Some(e),
            Self::Signing(e) => Some(e),
            _ => None,
        }
    }
}
