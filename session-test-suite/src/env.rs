//! How server-backed tests find their server.

use crate::harness::Provision;

/// Whether we run under CI (`CI` set to anything but empty, `0` or `false`),
/// where a missing server is a failure and never a skip.
pub fn ci_mode() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The server URL in environment variable `var` (for example
/// `SESSION_TEST_POSTGRES_URL`), or a [`Provision::Skip`] that says which
/// variable to set.
///
/// ```
/// let url = session_test_suite::server_url("SESSION_TEST_NO_SUCH_SERVER_URL");
/// assert!(url.is_err());
/// ```
pub fn server_url(var: &str) -> Result<String, Provision> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Ok(url),
        _ => Err(Provision::Skip(format!(
            "{var} is not set; point it at a test server to run these cases"
        ))),
    }
}
