//! `sessionctl check` through a pgbouncer of the test's own in transaction
//! mode with a server pool of five, the smallest pooler the issue names.

use std::process::Command;
use std::time::{Duration, Instant};

use session_cli::StoreUrl;
use session_test_suite::pgbouncer::PgBouncer;
use session_test_suite::CASES;

const POSTGRES_VAR: &str = "SESSION_TEST_POSTGRES_URL";

#[test]
fn check_passes_every_case_through_pgbouncer_in_transaction_mode_with_a_server_pool_of_five() {
    let test = "check_passes_every_case_through_pgbouncer_in_transaction_mode_with_a_server_pool";
    let Some(server) = session_test_suite::url_or_skip(POSTGRES_VAR, test) else {
        return;
    };
    let bouncer = match PgBouncer::start(&server, 5, "") {
        Ok(bouncer) => bouncer,
        Err(why) => {
            session_test_suite::skip(test, &why);
            return;
        }
    };
    let url = format!("{}?pooler=transaction", bouncer.url);
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_sessionctl"))
        .args(["check", &url])
        .output()
        .expect("run sessionctl");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("sessionctl check through pgbouncer (pool size 5) took {took:?}");
    assert!(
        output.status.success(),
        "sessionctl check {url} failed ({:?})\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n\
         --- pgbouncer log\n{}",
        output.status,
        bouncer.log()
    );
    let summary = format!("{} passed, 0 failed", CASES.len());
    assert_eq!(
        stdout.lines().last(),
        Some(summary.as_str()),
        "\n{stdout}\n{stderr}"
    );
}

#[test]
fn the_call_timeout_of_a_store_url_reaches_the_store() {
    let test = "the_call_timeout_of_a_store_url_reaches_the_store";
    let Some(server) = session_test_suite::url_or_skip(POSTGRES_VAR, test) else {
        return;
    };
    let url = StoreUrl::parse(&format!("{server}?call_timeout=750ms")).unwrap();
    let store = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(url.postgres_store())
        .unwrap()
        .expect("a PostgreSQL store");
    assert_eq!(store.call_timeout(), Duration::from_millis(750));
    assert_eq!(
        store.pool().options().get_acquire_timeout(),
        Duration::from_millis(750)
    );
}
