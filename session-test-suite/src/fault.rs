//! A stream of session operations to run while a server is stopped and
//! restarted: the driver for a backend's fault tests.
//!
//! [`OpStream::start`] spawns workers that create, load, update, rotate and
//! delete their own records in a loop, each call timed and classified. After
//! [`OpStream::finish`] the [`StreamReport`] checks what a fault test wants:
//! every error was transient and came back within a bound, calls succeeded
//! again after the restart, and (for a durable server) every write that was
//! acknowledged is still there, while a write whose outcome was lost to the
//! fault shows either its old or its new state and nothing else.
//!
//! [`outage`] runs the whole scenario around a backend's own stop and
//! restart steps and checks the parts every backend shares:
//!
//! ```ignore
//! let (server, outage) = fault::outage(
//!     store.clone(),
//!     Duration::from_secs(5), // down this long
//!     Duration::from_secs(8), // no call may take longer
//!     server.kill(),
//!     async { Server::start(port).await },
//! )
//! .await;
//! outage.report.assert_durable(store.as_ref()).await;
//! eprintln!("{}", outage.summary());
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use session_core::{Record, SessionKey, SessionStore};
use tokio::task::JoinHandle;

use crate::cases::{next_version, record_diff, record_expiring_in, rotated, XorShift};

/// How one call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded and its result was what the worker expected.
    Ok,
    /// A transient error ([`session_core::Error::is_transient`]).
    Transient(String),
    /// Any other error.
    Failed(String),
    /// It succeeded but returned something the contract rules out.
    Wrong(String),
}

/// One timed call.
#[derive(Debug, Clone)]
pub struct Call {
    /// `create`, `load`, `update`, `rotate` or `delete`.
    pub op: &'static str,
    /// When it started.
    pub started: Instant,
    /// How long it took.
    pub elapsed: Duration,
    /// How it ended.
    pub outcome: Outcome,
}

/// What the store must hold under a key once the stream is over.
#[derive(Debug, Clone)]
enum Expect {
    /// The last acknowledged write left this record (or `None`: deleted).
    Known(Option<Record>),
    /// A write failed, so its outcome is unknown: one of these states.
    EitherOf(Option<Record>, Option<Record>),
}

#[derive(Default)]
struct Shared {
    calls: Vec<Call>,
    expect: HashMap<SessionKey, Expect>,
}

/// Workers running session operations against one store.
pub struct OpStream {
    stop: Arc<AtomicBool>,
    shared: Arc<Mutex<Shared>>,
    workers: Vec<JoinHandle<()>>,
}

/// Everything an [`OpStream`] saw.
pub struct StreamReport {
    /// Every call in the order it ended.
    pub calls: Vec<Call>,
    expect: HashMap<SessionKey, Expect>,
}

impl OpStream {
    /// Starts `workers` tasks on the current Tokio runtime. Each owns up to
    /// eight live records of user `fault-<n>` with a ten-minute deadline.
    pub fn start(store: Arc<dyn SessionStore>, workers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Mutex::new(Shared::default()));
        let workers = (0..workers)
            .map(|n| {
                let worker = Worker {
                    store: store.clone(),
                    user: format!("fault-{n}"),
                    live: Vec::new(),
                    rng: XorShift::new(n as u64 + 1),
                    shared: shared.clone(),
                };
                tokio::spawn(worker.run(stop.clone()))
            })
            .collect();
        Self {
            stop,
            shared,
            workers,
        }
    }

    /// How many calls that started at or after `since` succeeded.
    pub fn ok_since(&self, since: Instant) -> usize {
        let shared = self.shared.lock().expect("stream state");
        shared
            .calls
            .iter()
            .filter(|c| c.started >= since && c.outcome == Outcome::Ok)
            .count()
    }

    /// Waits until `want` calls started at or after `since` have succeeded;
    /// false if `timeout` passes first.
    pub async fn wait_for_ok_after(&self, since: Instant, want: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.ok_since(since) >= want {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Stops the workers and returns what they saw. Panics if a worker
    /// panicked (a store must never panic on a fault).
    pub async fn finish(self) -> StreamReport {
        self.stop.store(true, Ordering::SeqCst);
        for w in self.workers {
            if let Err(e) = w.await {
                panic!("a worker of the operation stream panicked: {e}");
            }
        }
        let mut shared = self.shared.lock().expect("stream state");
        StreamReport {
            calls: std::mem::take(&mut shared.calls),
            expect: std::mem::take(&mut shared.expect),
        }
    }
}

impl StreamReport {
    /// Calls that ended in `[from, to)`.
    pub fn ended_between(&self, from: Instant, to: Instant) -> impl Iterator<Item = &Call> {
        self.calls.iter().filter(move |c| {
            let end = c.started + c.elapsed;
            end >= from && end < to
        })
    }

    /// `(ok, transient)` counts for calls that ended in `[from, to)`: a call
    /// that ended while the server was down must not have succeeded.
    pub fn counts(&self, from: Instant, to: Instant) -> (usize, usize) {
        let mut counts = (0, 0);
        for c in self.ended_between(from, to) {
            match c.outcome {
                Outcome::Ok => counts.0 += 1,
                Outcome::Transient(_) => counts.1 += 1,
                _ => {}
            }
        }
        counts
    }

    /// How long after `since` the first call that started then succeeded
    /// returned: the time to recover after a restart.
    pub fn first_ok_after(&self, since: Instant) -> Option<Duration> {
        self.calls
            .iter()
            .filter(|c| c.started >= since && c.outcome == Outcome::Ok)
            .map(|c| (c.started + c.elapsed).saturating_duration_since(since))
            .min()
    }

    /// The longest call.
    pub fn slowest(&self) -> Duration {
        self.calls
            .iter()
            .map(|c| c.elapsed)
            .max()
            .unwrap_or_default()
    }

    /// Panics unless every call either succeeded as expected or failed with
    /// a transient error, and every call returned within `bound`.
    pub fn assert_errors_transient_within(&self, bound: Duration) {
        for c in &self.calls {
            match &c.outcome {
                Outcome::Ok | Outcome::Transient(_) => {}
                Outcome::Failed(e) => panic!("{} failed with a non-transient error: {e}", c.op),
                Outcome::Wrong(e) => panic!("{} returned a wrong result: {e}", c.op),
            }
            assert!(
                c.elapsed <= bound,
                "{} took {:?}, more than the bound of {bound:?} ({:?})",
                c.op,
                c.elapsed,
                c.outcome
            );
        }
    }

    /// How many keys the durability check covers: `(known, uncertain)`.
    pub fn tracked_keys(&self) -> (usize, usize) {
        let uncertain = self
            .expect
            .values()
            .filter(|e| matches!(e, Expect::EitherOf(..)))
            .count();
        (self.expect.len() - uncertain, uncertain)
    }

    /// Panics unless `store` holds, under every key the stream wrote, the
    /// state of its last acknowledged write, or for a write whose outcome was
    /// lost, either the state before it or the state it would have made.
    pub async fn assert_durable(&self, store: &dyn SessionStore) {
        for (key, expect) in &self.expect {
            let got = store.load(key).await.expect("load after the restart");
            let matches = |want: &Option<Record>| match (&got, want) {
                (None, None) => true,
                (Some(g), Some(w)) => record_diff(g, w).is_none(),
                _ => false,
            };
            match expect {
                Expect::Known(want) => assert!(
                    matches(want),
                    "an acknowledged write was lost: want {:?}, store holds {:?}",
                    want.as_ref().map(|r| r.version),
                    got.as_ref().map(|r| r.version)
                ),
                Expect::EitherOf(a, b) => assert!(
                    matches(a) || matches(b),
                    "a write with a lost outcome left a third state: version {:?}, \
                     allowed {:?} or {:?}",
                    got.as_ref().map(|r| r.version),
                    a.as_ref().map(|r| r.version),
                    b.as_ref().map(|r| r.version)
                ),
            }
        }
    }
}

struct Worker {
    store: Arc<dyn SessionStore>,
    user: String,
    /// This worker's records whose stored state it knows.
    live: Vec<Record>,
    rng: XorShift,
    shared: Arc<Mutex<Shared>>,
}

impl Worker {
    async fn run(mut self, stop: Arc<AtomicBool>) {
        let mut step = 0u64;
        while !stop.load(Ordering::SeqCst) {
            step += 1;
            let failed = self.step(step).await;
            // Pace the loop, and back off a little after an error so a
            // refused connection does not spin.
            let pause = if failed { 50 } else { 2 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    fn data(&mut self) -> Vec<u8> {
        self.rng.bytes(64)
    }

    fn pick(&mut self) -> Option<usize> {
        if self.live.is_empty() {
            None
        } else {
            Some((self.rng.next_u64() % self.live.len() as u64) as usize)
        }
    }

    /// One operation; true if it failed.
    async fn step(&mut self, step: u64) -> bool {
        let op = match step % 8 {
            _ if self.live.len() < 2 => 0,
            _ if self.live.len() >= 8 => 4,
            0 | 5 => 0,
            1 | 3 | 6 => 1,
            2 | 7 => 2,
            _ => 3,
        };
        match (op, self.pick()) {
            (1, Some(i)) => self.load(i).await,
            (2, Some(i)) => self.update(i).await,
            (3, Some(i)) => self.rotate(i).await,
            (4, Some(i)) => self.delete(i).await,
            _ => self.create().await,
        }
    }

    fn log(&self, op: &'static str, started: Instant, outcome: Outcome) -> bool {
        let failed = outcome != Outcome::Ok;
        let call = Call {
            op,
            started,
            elapsed: started.elapsed(),
            outcome,
        };
        self.shared.lock().expect("stream state").calls.push(call);
        failed
    }

    fn expect(&self, key: SessionKey, e: Expect) {
        self.shared
            .lock()
            .expect("stream state")
            .expect
            .insert(key, e);
    }

    fn error(e: session_core::Error) -> Outcome {
        if e.is_transient() {
            Outcome::Transient(e.to_string())
        } else {
            Outcome::Failed(format!("{e:?}"))
        }
    }

    async fn create(&mut self) -> bool {
        let user = self.user.clone();
        let record = record_expiring_in(Some(&user), Duration::from_secs(600));
        let started = Instant::now();
        let outcome = match self.store.create(&record).await {
            Ok(()) => {
                self.expect(record.key, Expect::Known(Some(record.clone())));
                self.live.push(record);
                Outcome::Ok
            }
            Err(e) => {
                self.expect(record.key, Expect::EitherOf(None, Some(record)));
                Self::error(e)
            }
        };
        self.log("create", started, outcome)
    }

    async fn load(&mut self, i: usize) -> bool {
        let want = self.live[i].clone();
        let started = Instant::now();
        let outcome = match self.store.load(&want.key).await {
            Ok(Some(got)) => match record_diff(&got, &want) {
                None => Outcome::Ok,
                Some(diff) => Outcome::Wrong(format!("load returned another state: {diff}")),
            },
            Ok(None) => Outcome::Wrong("load lost an acknowledged record".into()),
            Err(e) => Self::error(e),
        };
        self.log("load", started, outcome)
    }

    async fn update(&mut self, i: usize) -> bool {
        let before = self.live[i].clone();
        let data = self.data();
        let next = next_version(&before, &data);
        let started = Instant::now();
        let outcome = match self.store.update(&next, before.version).await {
            Ok(()) => {
                self.expect(next.key, Expect::Known(Some(next.clone())));
                self.live[i] = next;
                Outcome::Ok
            }
            Err(e) => {
                self.expect(next.key, Expect::EitherOf(Some(before), Some(next)));
                self.live.swap_remove(i);
                Self::error(e)
            }
        };
        self.log("update", started, outcome)
    }

    async fn rotate(&mut self, i: usize) -> bool {
        let before = self.live[i].clone();
        let data = self.data();
        let next = rotated(&before, &data);
        let started = Instant::now();
        let outcome = match self.store.rotate(&before.key, &next, before.version).await {
            Ok(()) => {
                self.expect(before.key, Expect::Known(None));
                self.expect(next.key, Expect::Known(Some(next.clone())));
                self.live[i] = next;
                Outcome::Ok
            }
            Err(e) => {
                self.expect(before.key, Expect::EitherOf(Some(before.clone()), None));
                self.expect(next.key, Expect::EitherOf(None, Some(next)));
                self.live.swap_remove(i);
                Self::error(e)
            }
        };
        self.log("rotate", started, outcome)
    }

    async fn delete(&mut self, i: usize) -> bool {
        let before = self.live.swap_remove(i);
        let started = Instant::now();
        let outcome = match self.store.delete(&before.key).await {
            Ok(true) => {
                self.expect(before.key, Expect::Known(None));
                Outcome::Ok
            }
            Ok(false) => Outcome::Wrong("delete did not find an acknowledged record".into()),
            Err(e) => {
                self.expect(before.key, Expect::EitherOf(Some(before), None));
                Self::error(e)
            }
        };
        self.log("delete", started, outcome)
    }
}

/// What [`outage`] saw: the stream's report and when the server went down
/// and began its restart.
pub struct Outage {
    /// Every call of the stream.
    pub report: StreamReport,
    /// How long the server was down.
    pub down_for: Duration,
    /// When the stop step returned.
    pub down: Instant,
    /// When the restart step began.
    pub restart: Instant,
    /// When the restart step returned: the server is back.
    pub back: Instant,
}

/// Call times of a group of calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallTimes {
    /// How many calls.
    pub count: usize,
    /// The median.
    pub p50: Duration,
    /// The 99th percentile (nearest rank).
    pub p99: Duration,
    /// The slowest.
    pub max: Duration,
}

impl CallTimes {
    /// The figures of `times` (all zero when empty).
    pub fn of(mut times: Vec<Duration>) -> Self {
        if times.is_empty() {
            return Self::default();
        }
        times.sort();
        let rank =
            |q: f64| times[((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
        Self {
            count: times.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: times[times.len() - 1],
        }
    }
}

impl std::fmt::Display for CallTimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} calls, p50 {:?}, p99 {:?}, max {:?}",
            self.count, self.p50, self.p99, self.max
        )
    }
}

impl Outage {
    /// When the first call that failed after the stop returned: from then
    /// on the store has seen the outage.
    pub fn first_failure(&self) -> Option<Instant> {
        self.report
            .calls
            .iter()
            .filter(|c| c.outcome != Outcome::Ok)
            .map(|c| c.started + c.elapsed)
            .filter(|end| *end >= self.down)
            .min()
    }

    /// Times of the calls that started after the first failure and before
    /// the restart began: the calls of an outage the store knows about.
    pub fn during(&self) -> CallTimes {
        let Some(from) = self.first_failure() else {
            return CallTimes::default();
        };
        CallTimes::of(
            self.report
                .calls
                .iter()
                .filter(|c| c.started >= from && c.started < self.restart)
                .map(|c| c.elapsed)
                .collect(),
        )
    }

    /// How long after the server was back (the restart step returned) the
    /// first call succeeded; zero if one succeeded while the restart step
    /// still ran.
    pub fn recovery(&self) -> Option<Duration> {
        self.report
            .calls
            .iter()
            .filter(|c| c.outcome == Outcome::Ok)
            .map(|c| c.started + c.elapsed)
            .filter(|end| *end >= self.restart)
            .min()
            .map(|end| end.saturating_duration_since(self.back))
    }

    /// One line of figures: calls before, during and after the outage, the
    /// slowest call, the time to the first success after the restart, and
    /// how many keys the durability check covers.
    pub fn summary(&self) -> String {
        let r = &self.report;
        let (ok_before, _) = r.counts(self.down - Duration::from_secs(3600), self.down);
        let (ok_down, transient_down) = r.counts(self.down, self.restart);
        let (ok_after, _) = r.counts(self.restart, Instant::now() + Duration::from_secs(3600));
        let (known, uncertain) = r.tracked_keys();
        format!(
            "{} calls; ok before the stop {ok_before}, during the {:?} outage {ok_down} ok / \
             {transient_down} transient errors, ok after {ok_after}; slowest call {:?}; first \
             failure after the stop {:?} after it; during the outage after that: {}; restart \
             step {:?}, first success {:?} after the restart began, {:?} after the server was \
             back; durability covers {known} keys (+{uncertain} with a lost outcome)",
            r.calls.len(),
            self.down_for,
            r.slowest(),
            self.first_failure()
                .map(|t| t.saturating_duration_since(self.down)),
            self.during(),
            self.back.saturating_duration_since(self.restart),
            r.first_ok_after(self.restart),
            self.recovery(),
        )
    }
}

/// The fault scenario: four workers run an [`OpStream`] on `store` until 300
/// calls succeed, `stop` takes the server down, it stays down for
/// `down_for`, `restart` brings it back (its output is returned, say the new
/// server's handle), and the stream runs until 300 calls succeed again.
///
/// Panics unless the stream made progress before the stop and recovered
/// after the restart (the same store object), every error was transient and
/// every call returned within `call_bound`, and no call that ended while the
/// server was down succeeded while some reported errors. Durability is left
/// to the caller ([`StreamReport::assert_durable`]): only a durable server
/// promises it.
pub async fn outage<T>(
    store: Arc<dyn SessionStore>,
    down_for: Duration,
    call_bound: Duration,
    stop: impl Future<Output = ()>,
    restart: impl Future<Output = T>,
) -> (T, Outage) {
    let stream = OpStream::start(store, 4);
    assert!(
        stream
            .wait_for_ok_after(Instant::now(), 300, Duration::from_secs(30))
            .await,
        "the stream makes progress on a healthy server"
    );
    stop.await;
    let down = Instant::now();
    tokio::time::sleep(down_for).await;
    let restart_at = Instant::now();
    let restarted = restart.await;
    let back = Instant::now();
    assert!(
        stream
            .wait_for_ok_after(restart_at, 300, Duration::from_secs(60))
            .await,
        "the same store recovers after the restart"
    );
    let report = stream.finish().await;
    report.assert_errors_transient_within(call_bound);
    let (ok_down, transient_down) = report.counts(down, restart_at);
    assert_eq!(
        ok_down, 0,
        "no call ends in success while the server is down"
    );
    assert!(transient_down > 0, "calls during the outage report errors");
    (
        restarted,
        Outage {
            report,
            down_for,
            down,
            restart: restart_at,
            back,
        },
    )
}
