//! How server-backed tests find their server.

use crate::harness::Provision;

/// Whether we run under CI (`CI` set to anything but empty, `0` or `false`),
/// where a missing server is a failure and never a skip.
pub fn ci_mode() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// Reports that `test` cannot run and why: a failure (panic) under
/// [`ci_mode`], otherwise a loud line written straight to the process's
/// stderr (the test harness would swallow `eprintln!` from a passing test).
pub fn skip(test: &str, why: &str) {
    assert!(
        !ci_mode(),
        "{test}: cannot run under CI, which is a failure: {why}"
    );
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED {test}: {why} ***\n");
    record_skip(test, why);
}

/// The file where this run's skips are counted: one per `cargo test`
/// invocation (every test binary of a run is a child of the same cargo
/// process), in the system temp dir.
fn skip_ledger() -> std::path::PathBuf {
    #[cfg(unix)]
    let run = std::os::unix::process::parent_id();
    #[cfg(not(unix))]
    let run = 0;
    std::env::temp_dir().join(format!("session-test-skips-{run}.txt"))
}

/// Appends one line per skip (best effort: a ledger that cannot be written
/// only loses the closing summary, never a test).
fn record_skip(test: &str, why: &str) {
    use std::io::Write as _;
    let line = format!(
        "{}\t{}\n",
        test.replace(['\t', '\n'], " "),
        why.replace(['\t', '\n'], " ")
    );
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(skip_ledger())
    {
        let _ = file.write_all(line.as_bytes());
    }
}

/// The tests this `cargo test` run has skipped so far, as `(test, why)`,
/// and forgets them. `session-test-suite`'s last test prints them, so the
/// end of a run says plainly what did not run (cargo runs the test
/// binaries of a workspace by package name, and this package sorts last).
pub fn take_skipped() -> Vec<(String, String)> {
    let path = skip_ledger();
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let _ = std::fs::remove_file(&path);
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(t, w)| (t.to_owned(), w.to_owned()))
        .collect()
}

/// A loopback TCP port that was free a moment ago, for a server a test
/// starts itself (another process could take it first; tests accept that).
pub fn free_loopback_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// The server URL in `var` for a backend-specific test named `test`, or
/// `None` after [`skip`] (which fails under [`ci_mode`]).
pub fn url_or_skip(var: &str, test: &str) -> Option<String> {
    match server_url(var) {
        Ok(url) => Some(url),
        Err(_) => {
            skip(test, &format!("{var} is not set"));
            None
        }
    }
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

/// The kinds of server a backend test may need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// PostgreSQL.
    Postgres,
    /// Redis, standalone.
    Redis,
}

/// A server for one test: its URL, and the container keeping it alive when
/// it was started by the `testcontainers` fallback.
#[derive(Debug)]
pub struct Server {
    /// Where to connect.
    pub url: String,
    /// Keeps a fallback container running; dropping the server stops it.
    #[cfg(feature = "testcontainers")]
    pub container: Option<crate::docker::Container>,
}

/// The server for a test: the URL in `var` if set; otherwise, with the
/// `testcontainers` feature and a reachable Docker engine, a throw-away
/// container of `kind`; otherwise a [`Provision::Skip`] saying what to set.
pub async fn server(var: &str, kind: ServerKind) -> Result<Server, Provision> {
    let skip = match server_url(var) {
        Ok(url) => {
            return Ok(Server {
                url,
                #[cfg(feature = "testcontainers")]
                container: None,
            })
        }
        Err(skip) => skip,
    };
    #[cfg(feature = "testcontainers")]
    if crate::docker::docker_reachable() {
        return match crate::docker::start(kind).await {
            Ok((url, container)) => Ok(Server {
                url,
                container: Some(container),
            }),
            Err(why) => Err(Provision::Skip(why)),
        };
    }
    let _ = kind;
    Err(skip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_url_without_docker_is_a_skip_that_names_the_variable() {
        #[cfg(feature = "testcontainers")]
        if crate::docker::docker_reachable() {
            return; // this machine would start a container instead
        }
        match server("SESSION_TEST_SURELY_UNSET_URL", ServerKind::Postgres).await {
            Err(Provision::Skip(why)) => assert!(why.contains("SESSION_TEST_SURELY_UNSET_URL")),
            other => panic!("expected a skip, got {other:?}"),
        }
    }
}
