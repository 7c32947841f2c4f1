//! Running the conformance suite against a live store, one fresh namespace
//! per case.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_test_suite::{run_case, Case};
use tokio::sync::mpsc;

use crate::connection::Connection;

/// How long removing one case's namespace may take.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(120);

/// The outcome of one case in [`check`].
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// The case's name, as in [`session_test_suite::CASES`].
    pub name: &'static str,
    /// `None` when the case passed (and its namespace was removed); what went
    /// wrong otherwise.
    pub failure: Option<String>,
    /// How long the case itself ran (without opening and removing its
    /// namespace).
    pub elapsed: Duration,
}

impl CaseResult {
    /// Whether the case passed.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// Runs `cases` against the store behind `conn`, each in a fresh namespace
/// from [`Connection::isolated`] that is removed after the case, pass or
/// fail, so cases never see each other's data or anybody else's. Up to `jobs`
/// cases run at a time (at least one).
///
/// `report` is called once per case, in the order of `cases`, as soon as
/// that case and every case before it have finished; the results are also
/// returned in that order. A case whose namespace could not be opened or
/// removed counts as failed.
pub async fn check(
    conn: &Connection,
    cases: &[Case],
    jobs: usize,
    mut report: impl FnMut(&CaseResult),
) -> Vec<CaseResult> {
    let total = cases.len();
    let cases: Arc<[Case]> = cases.into();
    let next = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    for _ in 0..jobs.clamp(1, total.max(1)) {
        let (conn, cases, next, tx) = (conn.clone(), cases.clone(), next.clone(), tx.clone());
        tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                let result = run_one(&conn, *case).await;
                if tx.send((i, result)).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);

    let mut slots: Vec<Option<CaseResult>> = (0..total).map(|_| None).collect();
    let mut reported = 0;
    while let Some((i, result)) = rx.recv().await {
        slots[i] = Some(result);
        while let Some(Some(done)) = slots.get(reported) {
            report(done);
            reported += 1;
        }
    }
    // Only a crashed runner task leaves a slot empty.
    let mut results = Vec::with_capacity(total);
    for (i, slot) in slots.into_iter().enumerate() {
        let result = slot.unwrap_or_else(|| CaseResult {
            name: cases[i].name,
            failure: Some("the runner stopped before this case finished".into()),
            elapsed: Duration::ZERO,
        });
        if i >= reported {
            report(&result);
        }
        results.push(result);
    }
    results
}

async fn run_one(conn: &Connection, case: Case) -> CaseResult {
    let isolated = match conn.isolated().await {
        Ok(isolated) => isolated,
        Err(e) => {
            return CaseResult {
                name: case.name,
                failure: Some(format!(
                    "could not open a fresh namespace: {}",
                    conn.url().explain_error(&e)
                )),
                elapsed: Duration::ZERO,
            }
        }
    };
    let namespace = isolated.namespace().to_owned();
    let outcome = run_case(case.run, isolated.store()).await;
    let started = Instant::now();
    let cleaned = match tokio::time::timeout(CLEANUP_TIMEOUT, isolated.cleanup()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(conn.url().explain_error(&e)),
        Err(_) => Some(format!(
            "timed out after {:?}",
            started.elapsed().max(CLEANUP_TIMEOUT)
        )),
    };
    let failure = match (outcome.failure, cleaned) {
        (failure, None) => failure,
        (None, Some(why)) => Some(format!(
            "the case passed, but removing its namespace {namespace} failed: {why}"
        )),
        (Some(failure), Some(why)) => Some(format!(
            "{failure}\n(and removing its namespace {namespace} failed: {why})"
        )),
    };
    CaseResult {
        name: case.name,
        failure: failure.map(|f| conn.url().redact_secrets(&f)),
        elapsed: outcome.elapsed,
    }
}
