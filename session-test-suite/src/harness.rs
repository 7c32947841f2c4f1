//! Running one case against one freshly provisioned store.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_core::SessionStore;

/// The future a case returns.
pub type CaseFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A case, as a function pointer.
pub type CaseFn = fn(Arc<dyn SessionStore>) -> CaseFuture;

/// How long one case may run before it counts as hung.
const CASE_TIMEOUT: Duration = Duration::from_secs(180);

tokio::task_local! {
    /// Set while a case's own task runs: its panics are reported by the
    /// runner (with the case's name), not printed by the panic hook.
    static IN_CASE: ();
}

/// Installs, once, a panic hook that stays quiet for panics in a case's
/// own task (the runner reports them, naming the case) and passes every
/// other panic to the hook that was there before.
fn quiet_case_panics() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_CASE.try_with(|()| ()).is_err() {
                previous(info);
            }
        }));
    });
}

/// Runs `case` on its own task, its panics kept quiet for the runner.
fn spawn_case(case: CaseFn, store: Arc<dyn SessionStore>) -> tokio::task::JoinHandle<()> {
    quiet_case_panics();
    tokio::spawn(IN_CASE.scope((), case(store)))
}

/// Where a case is defined, from its function's path
/// (`session_test_suite::cases::touch::name` → `session-test-suite/src/cases/touch.rs`).
pub fn case_file(path: &str) -> String {
    let mut parts: Vec<&str> = path.split("::").collect();
    parts.pop();
    match parts.as_slice() {
        [_, "cases", module] => format!("session-test-suite/src/cases/{module}.rs"),
        _ => path.to_owned(),
    }
}

/// A store made for one test, with what must run after it.
pub struct TestStore {
    /// The store under test.
    pub store: Arc<dyn SessionStore>,
    cleanup: Option<Box<dyn FnOnce() -> CaseFuture + Send>>,
}

impl TestStore {
    /// A store that needs no clean-up.
    pub fn new(store: Arc<dyn SessionStore>) -> Self {
        Self {
            store,
            cleanup: None,
        }
    }

    /// Runs `cleanup` after the case, pass or fail (drop a schema, a key
    /// prefix, a folder).
    pub fn with_cleanup<F, Fut>(mut self, cleanup: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.cleanup = Some(Box::new(move || Box::pin(cleanup())));
        self
    }
}

impl std::fmt::Debug for TestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestStore")
            .field("store", &self.store)
            .field("cleanup", &self.cleanup.is_some())
            .finish()
    }
}

/// What a factory hands the harness.
#[derive(Debug)]
pub enum Provision {
    /// A store ready for one case.
    Ready(TestStore),
    /// The backend's server is not available; why, and what to set.
    Skip(String),
}

impl Provision {
    /// A ready store without clean-up.
    pub fn ready(store: impl SessionStore) -> Self {
        Self::Ready(TestStore::new(Arc::new(store)))
    }
}

impl From<TestStore> for Provision {
    fn from(store: TestStore) -> Self {
        Self::Ready(store)
    }
}

impl<S: SessionStore> From<S> for Provision {
    fn from(store: S) -> Self {
        Self::ready(store)
    }
}

/// The result of one case from [`run_case`].
#[derive(Debug, Clone)]
pub struct CaseOutcome {
    /// `None` when the case passed; the failure message otherwise.
    pub failure: Option<String>,
    /// Wall time the case took.
    pub elapsed: Duration,
}

/// Runs `case` against `store` on the current Tokio runtime and reports the
/// outcome instead of panicking. For runners such as `sessionctl check`.
pub async fn run_case(case: CaseFn, store: Arc<dyn SessionStore>) -> CaseOutcome {
    let started = Instant::now();
    let failure = match tokio::time::timeout(CASE_TIMEOUT, spawn_case(case, store)).await {
        Err(_) => Some(format!("timed out after {CASE_TIMEOUT:?}")),
        Ok(Ok(())) => None,
        Ok(Err(join)) if join.is_panic() => Some(panic_message(join.into_panic())),
        Ok(Err(join)) => Some(join.to_string()),
    };
    CaseOutcome {
        failure,
        elapsed: started.elapsed(),
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panicked".to_owned()
    }
}

/// The body of every generated `#[test]`: builds a multi-threaded Tokio
/// runtime, provisions a store, runs the case, cleans up, and re-raises a
/// failure. Not meant to be called by hand; use [`conformance_tests!`](crate::conformance_tests).
///
/// A skipped provision is reported by [`skip`](crate::skip): loudly, or as a
/// failure under [`ci_mode`](crate::ci_mode).
pub fn run_test<F, Fut, P>(name: &str, path: &str, factory: F, case: CaseFn)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = P>,
    P: Into<Provision>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build a Tokio runtime for the conformance case");
    runtime.block_on(async move {
        let test_store = match factory().await.into() {
            Provision::Ready(s) => s,
            Provision::Skip(why) => {
                crate::env::skip(&format!("conformance::{name}"), &why);
                return;
            }
        };
        let TestStore { store, cleanup } = test_store;
        let result = tokio::time::timeout(CASE_TIMEOUT, spawn_case(case, store)).await;
        if let Some(cleanup) = cleanup {
            // Clean-up must not hide the case's own failure.
            let _ = tokio::spawn(cleanup()).await;
        }
        match result {
            Err(_) => panic!("conformance::{name} timed out after {CASE_TIMEOUT:?}"),
            Ok(Ok(())) => {}
            Ok(Err(join)) if join.is_panic() => {
                // Named for the case and where it lives: the panic itself
                // points at whichever helper asserted.
                let message = panic_message(join.into_panic());
                let file = case_file(path);
                panic!("conformance case {name} ({file}) failed:\n  {message}")
            }
            Ok(Err(join)) => panic!("conformance::{name} was cancelled: {join}"),
        }
    });
}
