//! The closing summary of `cargo test --workspace`: how many tests were
//! skipped for want of a server, and why. Server-backed tests that find no
//! server pass after a loud `*** SKIPPED … ***` line (under `CI` they fail
//! instead); without this summary, a run's "passed" counts would hide them.
//!
//! It runs last because cargo runs the test binaries of a workspace sorted
//! by package and then target name: `session-test-suite` sorts after every
//! other crate here, and `zz_` after its other tests.

use std::collections::BTreeMap;
use std::io::Write as _;

#[test]
fn summary_of_tests_skipped_in_this_run() {
    let skipped = session_test_suite::take_skipped();
    let mut err = std::io::stderr().lock();
    if skipped.is_empty() {
        let _ = writeln!(err, "\nsession tests: none skipped in this run\n");
        return;
    }
    let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, why) in &skipped {
        *by_reason.entry(why.as_str()).or_default() += 1;
    }
    let _ = writeln!(
        err,
        "\n==================== SKIPPED: {} tests did not run ====================",
        skipped.len()
    );
    for (why, n) in &by_reason {
        let _ = writeln!(err, "  {n:>4} x {why}");
    }
    let _ = writeln!(
        err,
        "They count as passed in cargo's totals above. Set the variables in the README's \
         \"Run the tests\", or run `bash .ci/run`, to run them.\n\
         ======================================================================\n"
    );
}
