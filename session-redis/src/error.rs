//! redis errors as `session_core::Error`, with the source kept.

use redis::{ErrorKind, RedisError, ServerErrorKind};
use session_core::Error;

pub(crate) const BACKEND: &str = "redis";

/// Connection problems, timeouts and cluster reconfiguration (MOVED storms,
/// TRYAGAIN, CLUSTERDOWN, a loading replica) are worth retrying; wrong types,
/// script errors and the like are not. A wrong type is a [`Error::Decode`].
pub(crate) fn redis_err(e: RedisError) -> Error {
    if e.code() == Some("WRONGTYPE") {
        // A key of ours holds another type (a record written by an older
        // layout, or by something else): what is stored does not decode.
        return Error::decode_with("redis value of another type", e);
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

/// A script answered something this client does not understand.
pub(crate) fn unexpected(what: &str, got: impl std::fmt::Debug) -> Error {
    Error::backend(BACKEND, format!("unexpected reply to {what}: {got:?}"))
}
