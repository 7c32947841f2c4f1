//! Bounded waits: every store call has a deadline (the call timeout), and a
//! breaker makes calls fail at once while PostgreSQL is unreachable.
//!
//! The breaker is cheap while the server is up: a call loads one atomic flag,
//! arms one timer (which it needs for its deadline anyway) and registers for
//! the breaker's wake-up. Only a suspicion (a connection-level error, a call
//! that timed out, or a call still running after [`SUSPECT_AFTER`]) starts
//! the one background probe, which connects on its own and runs `SELECT 1`.
//! Only a probe that gets no answer marks the store down, so a query-level
//! error, a slow statement or one that waits on a lock never does while the
//! server answers. While down, calls return a transient error at once
//! without touching the pool, and the probe repeats every [`PROBE_EVERY`]
//! until the server answers.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use session_core::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::{ConnectOptions as _, Connection as _};
use tokio::sync::Notify;

use crate::error::{is_connection_level, BACKEND};

/// The call timeout unless the store is told otherwise.
pub(crate) const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the probe tries while the server is unreachable.
const PROBE_EVERY: Duration = Duration::from_millis(100);
/// A call still running after this, and again after each further such
/// span, makes the breaker check the server (at most once per
/// [`SLOW_PROBE_GAP`] for the whole store): the pool retries a refused
/// connection silently until its acquire timeout, so without this the first
/// calls of an outage would wait their whole timeout.
const SUSPECT_AFTER: Duration = Duration::from_millis(50);
/// The least time between two probes started by slow calls: on a server
/// that answers but is slow, at most four probe connections a second.
const SLOW_PROBE_GAP: Duration = Duration::from_millis(250);

type Cause = Arc<dyn std::error::Error + Send + Sync>;

/// A call's deadline and the breaker it shares with the store's clones.
#[derive(Clone)]
pub(crate) struct Guard {
    pub call_timeout: Duration,
    breaker: Arc<Breaker>,
}

struct Breaker {
    /// The fast path: set while the server is unreachable.
    down: AtomicBool,
    /// Set while a probe task runs.
    probing: AtomicBool,
    /// Wakes the calls in flight when the server is found unreachable.
    tripped: Notify,
    /// Since when, and the last reason.
    state: Mutex<Option<(Instant, Cause)>>,
    /// When a slow call last started a probe, in ms since `epoch`.
    last_slow_probe: AtomicU64,
    epoch: Instant,
}

/// The source of a call's error when it got no answer in time.
#[derive(Debug)]
pub(crate) struct NoAnswer {
    within: Duration,
}

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no answer within {:?} from PostgreSQL (the store's call timeout)",
            self.within
        )
    }
}

impl std::error::Error for NoAnswer {}

/// The source of a call's error while the breaker is open; its own source
/// is what the probe last saw.
#[derive(Debug)]
pub(crate) struct Unreachable {
    since: Duration,
    cause: Option<Cause>,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PostgreSQL unreachable since {:.1?}; retrying in the background",
            self.since
        )
    }
}

impl std::error::Error for Unreachable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl Guard {
    pub fn new() -> Self {
        Self {
            call_timeout: DEFAULT_CALL_TIMEOUT,
            breaker: Arc::new(Breaker {
                down: AtomicBool::new(false),
                probing: AtomicBool::new(false),
                tripped: Notify::new(),
                state: Mutex::new(None),
                last_slow_probe: AtomicU64::new(0),
                epoch: Instant::now(),
            }),
        }
    }

    /// Whether the breaker holds the server for unreachable.
    pub fn is_down(&self) -> bool {
        self.breaker.down.load(Ordering::Acquire)
    }

    /// Runs `call` within the call timeout; at once a transient error while
    /// the server is unreachable, or when it is found so during the call.
    pub async fn run<T>(&self, pool: &PgPool, call: impl Future<Output = Result<T>>) -> Result<T> {
        let breaker = &self.breaker;
        // Registered before the flag is read, so a trip in between still
        // wakes this call.
        let tripped = breaker.tripped.notified();
        if breaker.down.load(Ordering::Acquire) {
            return Err(breaker.unreachable());
        }
        let started = tokio::time::Instant::now();
        let deadline = started + self.call_timeout;
        // One timer: it fires every SUSPECT_AFTER while the call runs, and
        // at the deadline.
        let timer = tokio::time::sleep_until((started + SUSPECT_AFTER).min(deadline));
        tokio::pin!(call, tripped, timer);
        loop {
            tokio::select! {
                biased;
                done = &mut call => return done,
                () = &mut tripped => return Err(breaker.unreachable()),
                () = &mut timer => {
                    let now = tokio::time::Instant::now();
                    if now >= deadline {
                        self.suspect(pool);
                        return Err(Error::transient(
                            BACKEND,
                            NoAnswer { within: self.call_timeout },
                        ));
                    }
                    self.suspect_slow(pool);
                    timer.as_mut().reset((now + SUSPECT_AFTER).min(deadline));
                }
            }
        }
    }

    /// Called with every sqlx error a statement returns: a connection-level
    /// one makes the breaker check the server.
    pub fn saw(&self, pool: &PgPool, e: &sqlx::Error) {
        if is_connection_level(e) {
            self.suspect(pool);
        }
    }

    /// A call is slow: check the server, unless a slow call did so lately.
    fn suspect_slow(&self, pool: &PgPool) {
        let b = &self.breaker;
        let now = u64::try_from(b.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = b.last_slow_probe.load(Ordering::Relaxed);
        let gap = SLOW_PROBE_GAP.as_millis() as u64;
        if last != 0 && now.saturating_sub(last) < gap {
            return;
        }
        if b.last_slow_probe
            .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.suspect(pool);
        }
    }

    /// Starts the probe task unless one runs.
    fn suspect(&self, pool: &PgPool) {
        let b = &self.breaker;
        if b.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            b.probing.store(false, Ordering::Release);
            return;
        };
        runtime.spawn(watch(
            Arc::downgrade(b),
            pool.connect_options(),
            self.call_timeout,
        ));
    }
}

impl Breaker {
    fn unreachable(&self) -> Error {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (since, cause) = match &*state {
            Some((at, cause)) => (at.elapsed(), Some(cause.clone())),
            None => (Duration::ZERO, None),
        };
        Error::transient(BACKEND, Unreachable { since, cause })
    }

    fn mark_down(&self, cause: Cause) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let since = state.as_ref().map_or_else(Instant::now, |(at, _)| *at);
        *state = Some((since, cause));
        self.down.store(true, Ordering::Release);
        drop(state);
        self.tripped.notify_waiters();
    }

    fn mark_up(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *state = None;
        self.down.store(false, Ordering::Release);
    }
}

/// The probe: until the server answers, or the store is dropped.
async fn watch(breaker: Weak<Breaker>, options: Arc<PgConnectOptions>, within: Duration) {
    loop {
        let outcome = probe(&options, within).await;
        let Some(b) = breaker.upgrade() else { return };
        match outcome {
            Ok(()) => {
                b.mark_up();
                b.probing.store(false, Ordering::Release);
                return;
            }
            Err(cause) => b.mark_down(cause),
        }
        drop(b);
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// A connection of its own and `SELECT 1`. Only no answer is a failure: a
/// server that refuses the login or has no connection slot left answered.
async fn probe(options: &PgConnectOptions, within: Duration) -> std::result::Result<(), Cause> {
    let attempt = async {
        let mut conn = options.connect().await?;
        sqlx::raw_sql("SELECT 1").execute(&mut conn).await?;
        conn.close().await
    };
    match tokio::time::timeout(within, attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if is_connection_level(&e) => Err(Arc::new(e)),
        Ok(Err(_)) => Ok(()),
        Err(_) => Err(Arc::new(NoAnswer { within })),
    }
}
