//! Shared set-up for the policy tests: a manager on a `MemoryStore` and a
//! `ManualClock`, with a pass-through wrapper that counts store calls.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use session_core::{
    ManualClock, MemoryStore, Record, Result, SessionConfig, SessionId, SessionKey, SessionManager,
    SessionStore, Timestamp,
};

/// Counts calls per method, then forwards them to a real `MemoryStore`.
#[derive(Debug)]
pub struct Counting {
    pub inner: MemoryStore,
    pub creates: AtomicU64,
    pub loads: AtomicU64,
    pub updates: AtomicU64,
    pub touches: AtomicU64,
    pub rotates: AtomicU64,
    pub deletes: AtomicU64,
    /// While set, `update` fails with a transient error (a store outage).
    pub fail_updates: std::sync::atomic::AtomicBool,
    /// While set, `delete` fails with a transient error.
    pub fail_deletes: std::sync::atomic::AtomicBool,
    /// `update` signals this when it starts, then waits for a read lock on
    /// `update_gate`: a test holding the write lock keeps writes in flight.
    pub update_entered: tokio::sync::Notify,
    pub update_gate: tokio::sync::RwLock<()>,
}

impl Counting {
    pub fn writes(&self) -> u64 {
        [
            &self.creates,
            &self.updates,
            &self.touches,
            &self.rotates,
            &self.deletes,
        ]
        .iter()
        .map(|c| c.load(Ordering::SeqCst))
        .sum()
    }

    pub fn count(c: &AtomicU64) -> u64 {
        c.load(Ordering::SeqCst)
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::SeqCst);
}

#[async_trait]
impl SessionStore for Counting {
    async fn create(&self, record: &Record) -> Result<()> {
        bump(&self.creates);
        self.inner.create(record).await
    }
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        bump(&self.loads);
        self.inner.load(key).await
    }
    async fn update(&self, record: &Record, expected_version: u64) -> Result<()> {
        bump(&self.updates);
        self.update_entered.notify_one();
        let _gate = self.update_gate.read().await;
        if self.fail_updates.load(Ordering::SeqCst) {
            return Err(session_core::Error::transient("memory", "injected outage"));
        }
        self.inner.update(record, expected_version).await
    }
    async fn touch(&self, key: &SessionKey, expires_at: Timestamp) -> Result<()> {
        bump(&self.touches);
        self.inner.touch(key, expires_at).await
    }
    async fn rotate(&self, old: &SessionKey, record: &Record, expected: u64) -> Result<()> {
        bump(&self.rotates);
        self.inner.rotate(old, record, expected).await
    }
    async fn delete(&self, key: &SessionKey) -> Result<bool> {
        bump(&self.deletes);
        if self.fail_deletes.load(Ordering::SeqCst) {
            return Err(session_core::Error::transient("memory", "injected outage"));
        }
        self.inner.delete(key).await
    }
    async fn delete_id(&self, user: &str, id: SessionId) -> Result<bool> {
        bump(&self.deletes);
        if self.fail_deletes.load(Ordering::SeqCst) {
            return Err(session_core::Error::transient("memory", "injected outage"));
        }
        self.inner.delete_id(user, id).await
    }
    async fn list_user(&self, user: &str) -> Result<Vec<Record>> {
        // A server round trip gives other requests a turn; so does this.
        tokio::task::yield_now().await;
        let listed = self.inner.list_user(user).await;
        tokio::task::yield_now().await;
        listed
    }
    async fn delete_user(&self, user: &str, keep: Option<&SessionKey>) -> Result<u64> {
        self.inner.delete_user(user, keep).await
    }
    async fn purge_expired(&self) -> Result<u64> {
        self.inner.purge_expired().await
    }
}

pub struct Fixture {
    pub manager: SessionManager,
    pub clock: ManualClock,
    pub store: Arc<Counting>,
}

pub const MIN: Duration = Duration::from_secs(60);

/// Idle 10 minutes, absolute 60 minutes, touch after half the idle window,
/// unless `config` says otherwise.
pub fn default_config() -> SessionConfig {
    SessionConfig::default()
        .idle_timeout(10 * MIN)
        .absolute_timeout(60 * MIN)
        .touch_after_fraction(0.5)
}

pub fn fixture(config: SessionConfig) -> Fixture {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let store = Arc::new(Counting {
        inner: MemoryStore::with_clock(Arc::new(clock.clone())),
        creates: AtomicU64::new(0),
        loads: AtomicU64::new(0),
        updates: AtomicU64::new(0),
        touches: AtomicU64::new(0),
        rotates: AtomicU64::new(0),
        deletes: AtomicU64::new(0),
        fail_updates: std::sync::atomic::AtomicBool::new(false),
        fail_deletes: std::sync::atomic::AtomicBool::new(false),
        update_entered: tokio::sync::Notify::new(),
        update_gate: tokio::sync::RwLock::new(()),
    });
    let manager = SessionManager::with_clock(store.clone(), config, Arc::new(clock.clone()))
        .expect("valid config");
    Fixture {
        manager,
        clock,
        store,
    }
}

/// Creates a stored session holding `n = 1` and returns its token text.
pub async fn stored_session(f: &Fixture) -> String {
    let s = f.manager.load(None).await.unwrap();
    s.insert("n", &1).unwrap();
    let action = s.commit().await.unwrap();
    action
        .token()
        .expect("a new session issues a token")
        .expose()
}

impl Counting {
    /// The raw stored record behind a token, bypassing the counters.
    pub async fn inner_record(&self, token: &str) -> Record {
        let token = session_core::SessionToken::parse(token).expect("valid token");
        self.inner
            .load(&token.key())
            .await
            .expect("load")
            .expect("record is stored")
    }
}
