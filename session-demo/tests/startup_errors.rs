//! A start-up error a person reads says why: the whole cause chain, a hint
//! where one is known, and no password.

mod process;

use std::time::Duration;

use process::{unique_secret, DemoProcess, PgServer, TempDir};
use session_test_suite::url_or_skip;

const POSTGRES_VAR: &str = "SESSION_TEST_POSTGRES_URL";

#[tokio::test]
async fn a_postgres_database_that_does_not_exist_is_named_in_the_start_up_error() {
    let Some(url) = url_or_skip(POSTGRES_VAR, "missing database in a start-up error") else {
        return;
    };
    let secret = unique_secret();
    let store = PgServer::of(&url).url(Some(&secret), "no_such_database_xyz");
    let out = DemoProcess::spawn(&store).wait_exit(Duration::from_secs(60));
    let all = out.all();
    assert!(
        out.status.is_some_and(|s| !s.success()),
        "the demo exits with an error:\n{all}"
    );
    assert!(
        out.stderr
            .iter()
            .any(|l| l.starts_with("session-demo: opening postgres://")
                && l.contains("postgres backend error: ")
                && l.contains("database \"no_such_database_xyz\" does not exist")),
        "stderr carries PostgreSQL's own words:\n{all}"
    );
    out.assert_never_says(&secret);
}

#[tokio::test]
async fn a_sled_folder_another_running_demo_holds_gets_the_still_running_hint() {
    let dir = TempDir::new("locked-sled");
    let store = format!("sled:{}", dir.0.join("data").display());
    let mut first = DemoProcess::spawn(&store);
    if let Err(out) = first.wait_serving().await {
        panic!("the first demo did not serve:\n{}", out.all());
    }
    let out = DemoProcess::spawn(&store).wait_exit(Duration::from_secs(60));
    first.stop();
    let all = out.all();
    assert!(
        out.status.is_some_and(|s| !s.success()),
        "the second demo exits with an error:\n{all}"
    );
    assert!(
        out.stderr
            .iter()
            .any(|l| l.starts_with("session-demo: opening sled:")
                && l.contains("could not acquire lock")
                && l.ends_with("is the app still running?)")),
        "stderr gives the cause and the hint:\n{all}"
    );
}
