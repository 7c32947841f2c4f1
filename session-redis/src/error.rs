//! redis errors as `session_core::Error`, with the source kept.

use redis::{ErrorKind, RedisError, ServerErrorKind};
use session_core::Error;

pub(crate) const BACKEND: &str = "redis";

/// A redis error as a [`session_core::Error`], classified the way this
/// store classifies its own (for tools that run their own commands beside
/// the store, such as `sessionctl`).
///
/// Connection problems, timeouts, cluster reconfiguration (MOVED storms,
/// TRYAGAIN, CLUSTERDOWN, a loading replica), a replica's READONLY during a
/// failover and OOM under `maxmemory` are transient: worth retrying. A TLS
/// handshake that fails (an untrusted certificate), authentication, ACL
/// refusals, wrong types and script errors are not. A wrong type is a
/// [`Error::Decode`]. The source is kept whole.
pub fn redis_error(e: RedisError) -> Error {
    redis_err(e)
}

pub(crate) fn redis_err(e: RedisError) -> Error {
    if e.code() == Some("WRONGTYPE") {
        // A key of ours holds another type (a record written by an older
        // layout, or by something else): what is stored does not decode.
        return Error::decode_with("redis value of another type", e);
    }
    // OOM: `maxmemory` with `noeviction` refuses writes until memory is
    // freed (sessions expire, keys are deleted): the condition passes.
    // READONLY: a replica answering during a failover.
    if matches!(e.code(), Some("OOM" | "READONLY")) {
        return Error::transient(BACKEND, e);
    }
    if tls_failure(&e).is_some() {
        return Error::backend(BACKEND, e);
    }
    let transient = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_cluster_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::BusyLoading
                    | ServerErrorKind::MasterDown
            )
        );
    if transient {
        Error::transient(BACKEND, e)
    } else {
        Error::backend(BACKEND, e)
    }
}

/// The TLS error behind `e`, if the handshake failed (an untrusted or
/// mismatched certificate): a setting to fix, never worth a retry.
fn tls_failure(e: &RedisError) -> Option<&rustls::Error> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    /// `err` itself, or what it wraps without reporting it as its source
    /// (an `io::Error`'s payload, the error in redis' `Arc`).
    fn as_tls<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(shared) = err.downcast_ref::<Shared>() {
            let inner: &(dyn std::error::Error + 'static) = &**shared;
            return as_tls(inner);
        }
        err.downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| {
                let inner: &(dyn std::error::Error + 'static) = inner;
                as_tls(inner)
            })
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(tls) = as_tls(s) {
            return Some(tls);
        }
        source = s.source();
    }
    None
}

/// A script answered something this client does not understand.
pub(crate) fn unexpected(what: &str, got: impl std::fmt::Debug) -> Error {
    Error::backend(BACKEND, format!("unexpected reply to {what}: {got:?}"))
}

/// What went wrong while connecting, in words a person can act on, with the
/// server's own error kept as the source. Never holds a password: the redis
/// crate's errors do not quote the URL.
#[derive(Debug)]
pub(crate) struct ConnectError {
    message: String,
    source: RedisError,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A failure to connect (or of the first command after it) as `user` (the
/// URL's user name, `default` when it has none), as a
/// [`session_core::Error`]: a TLS handshake failure, a missing or wrong
/// password and an ACL refusal get one clear, permanent error that says
/// what to fix (and never the password); the rest are classified as by
/// [`redis_error`].
pub fn connect_error(e: RedisError, user: &str) -> Error {
    connect_err(e, user)
}

pub(crate) fn connect_err(e: RedisError, user: &str) -> Error {
    let wrong_password = e.kind() == ErrorKind::AuthenticationFailed
        || e.code() == Some("WRONGPASS")
        || e.to_string().contains("invalid username-password pair");
    let message = if tls_failure(&e).is_some() {
        "TLS with the Redis server failed: if its certificate comes from a private CA, \
         trust that CA (RedisOptions::tls_root_certificates, or the SSL_CERT_FILE \
         environment variable for sessionctl and the demo)"
            .to_owned()
    } else if e.code() == Some("NOAUTH") {
        "authentication required: the Redis server wants a password and the URL gives none \
         (redis://:PASSWORD@host:port, or redis://USER:PASSWORD@host:port for an ACL user)"
            .to_owned()
    } else if wrong_password {
        format!("wrong password for Redis user {user:?} (or no such user, or it is disabled)")
    } else if e.code() == Some("NOPERM") {
        format!("Redis user {user:?} may not run the commands this store needs")
    } else {
        return redis_err(e);
    };
    Error::backend(BACKEND, ConnectError { message, source: e })
}

/// The local cache's tracking connections could not be set up: a permanent
/// error naming what the cache needs, the server's own error kept as the
/// source.
pub(crate) fn tracking_err(e: RedisError, user: &str) -> Error {
    if e.code().is_some_and(|c| c != "ERR") || tls_failure(&e).is_some() {
        return connect_err(e, user);
    }
    let message = "the local cache could not start tracking: it needs Redis 6 or later \
                   (RESP3 and CLIENT TRACKING), and a user allowed CLIENT and, on a \
                   cluster, CLUSTER NODES"
        .to_owned();
    Error::backend(BACKEND, ConnectError { message, source: e })
}
