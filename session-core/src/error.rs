//! The one error type of the crate and of every store.

use std::error::Error as StdError;
use std::fmt;

/// Boxed source error of a backend.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms the conformance suite and callers can act on.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// No live record under that key (absent, expired, deleted or revoked).
    NotFound,
    /// `create` (or the target key of `rotate`) hit a live record.
    AlreadyExists,
    /// The stored version is not the expected one: someone else wrote first.
    Conflict,
    /// Stored bytes could not be decoded (corrupt, truncated, tampered, or sealed
    /// under a key this process does not hold).
    Decode {
        /// What could not be decoded.
        what: &'static str,
        /// The underlying error, when there is one.
        source: Option<BoxError>,
    },
    /// The caller broke the contract (a wrong version number, a bad name, …).
    InvalidInput(String),
    /// The call needs server-side state that this manager does not keep:
    /// client-side sessions (the data sealed in the cookie) cannot list a
    /// user's sessions or end another device's, and without a revocation
    /// list cannot end any session but the caller's own.
    Unsupported {
        /// What was asked for.
        what: &'static str,
        /// Why it cannot be done, and what would make it possible.
        why: &'static str,
    },
    /// A client-side session does not fit in the cookies it may use.
    /// Nothing was written; the client keeps its previous cookie.
    TooLarge {
        /// Bytes the session would need (cookie names and values).
        size: usize,
        /// Bytes it may use: the per-cookie limit times the chunks allowed.
        limit: usize,
    },
    /// The storage backend failed.
    Backend {
        /// Which backend, e.g. `"postgres"`.
        backend: &'static str,
        /// Whether retrying may succeed (connection lost, timeout, pool exhausted).
        transient: bool,
        /// The backend's own error, kept whole.
        source: BoxError,
    },
}

impl Error {
    /// A [`Error::Decode`] with no further source.
    pub fn decode(what: &'static str) -> Self {
        Self::Decode { what, source: None }
    }

    /// A [`Error::Decode`] that keeps its cause.
    pub fn decode_with(what: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Decode {
            what,
            source: Some(source.into()),
        }
    }

    /// A [`Error::Backend`] error that retrying will not fix.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            backend,
            transient: false,
            source: source.into(),
        }
    }

    /// A [`Error::Backend`] error that a retry may fix.
    pub fn transient(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Backend {
            backend,
            transient: true,
            source: source.into(),
        }
    }

    /// Whether the same call may succeed if retried later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Backend {
                transient: true,
                ..
            }
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => f.write_str("session not found"),
            Self::AlreadyExists => f.write_str("a session with this key already exists"),
            Self::Conflict => f.write_str("session was changed concurrently (version conflict)"),
            Self::Decode { what, .. } => write!(f, "could not decode {what}"),
            Self::InvalidInput(why) => write!(f, "invalid input: {why}"),
            Self::Unsupported { what, why } => write!(f, "{what} is not supported: {why}"),
            Self::TooLarge { size, limit } => write!(
                f,
                "the session needs {size} bytes of cookies, over the limit of {limit} bytes"
            ),
            Self::Backend {
                backend, transient, ..
            } => {
                let kind = if *transient { "transient " } else { "" };
                write!(f, "{kind}{backend} backend error")
            }
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Decode {
                source: Some(s), ..
            } => Some(s.as_ref()),
            Self::Backend { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// An error and all its sources, joined with `": "`, as a person should read
/// it: the `Display` of a backend error alone says only which backend failed.
///
/// A cause whose text the line already ends with is not repeated (many
/// errors print their source inside their own message). Neither this crate
/// nor the stores put a token or a password in an error, so the line is
/// safe to log.
///
/// ```
/// let io = std::io::Error::other("connection refused");
/// let e = session_core::Error::transient("redis", io);
/// assert_eq!(
///     session_core::error_chain(&e),
///     "transient redis backend error: connection refused"
/// );
/// ```
pub fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_error_keeps_its_source_chain_and_transience() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let e = Error::transient("redis", io);
        assert!(e.is_transient());
        assert_eq!(e.to_string(), "transient redis backend error");
        let src = e.source().expect("source kept");
        assert_eq!(src.to_string(), "reset by peer");
        assert!(!Error::backend("redis", "x").is_transient());
        assert!(!Error::Conflict.is_transient());
    }
}
