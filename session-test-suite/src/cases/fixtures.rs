//! Helpers shared by the cases: record builders, time margins, comparisons,
//! pseudo-random bytes and a start gate for concurrent tasks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use session_core::{Record, SessionId, SessionKey, SessionStore, SessionToken, Timestamp};

/// A deadline comfortably in the future, for records that must stay live.
pub const LIVE_FOR: Duration = Duration::from_secs(3600);

/// A live record for `user` with a small payload, version 1.
pub fn new_record(user: Option<&str>) -> Record {
    record_at(user, Timestamp::now(), LIVE_FOR)
}

/// A record for `user` created at `now` (from an injected clock, say) that
/// expires `ttl` later, with a small payload, version 1.
pub fn record_at(user: Option<&str>, now: Timestamp, ttl: Duration) -> Record {
    Record {
        key: SessionToken::generate().key(),
        id: SessionId::generate(),
        user: user.map(str::to_owned),
        created_at: now,
        expires_at: now.saturating_add(ttl),
        version: 1,
        data: b"{\"k\":1}".to_vec(),
    }
}

/// A record whose deadline passed an hour ago.
pub fn expired_record(user: Option<&str>) -> Record {
    let mut r = new_record(user);
    r.created_at = Timestamp::now().saturating_sub(2 * LIVE_FOR);
    r.expires_at = Timestamp::now().saturating_sub(LIVE_FOR);
    r
}

/// A live record for `user` whose deadline is `ttl` from now (for real short
/// deadlines).
pub fn record_expiring_in(user: Option<&str>, ttl: Duration) -> Record {
    let mut r = new_record(user);
    r.expires_at = Timestamp::now().saturating_add(ttl);
    r
}

/// `record` with the next version and `data` replaced.
pub fn next_version(record: &Record, data: &[u8]) -> Record {
    let mut r = record.clone();
    r.version += 1;
    r.data = data.to_vec();
    r
}

/// `record` moved to a fresh key with the next version and `data` replaced, as
/// `rotate` wants it.
pub fn rotated(record: &Record, data: &[u8]) -> Record {
    let mut r = next_version(record, data);
    r.key = fresh_key();
    r
}

/// A key no record holds.
pub fn fresh_key() -> SessionKey {
    SessionToken::generate().key()
}

/// A deadline `d` from now on the wall clock.
pub fn in_from_now(d: Duration) -> Timestamp {
    Timestamp::now().saturating_add(d)
}

/// The keys of `records`, sorted.
pub fn sorted_keys(records: &[Record]) -> Vec<SessionKey> {
    let mut keys: Vec<SessionKey> = records.iter().map(|r| r.key).collect();
    keys.sort();
    keys
}

/// `records` sorted by key (list order is unspecified).
pub fn sorted_by_key(mut records: Vec<Record>) -> Vec<Record> {
    records.sort_by_key(|r| r.key);
    records
}

/// Describes how two records differ, field by field, without dumping large
/// payloads; `None` when they are equal.
pub fn record_diff(got: &Record, want: &Record) -> Option<String> {
    let mut diffs = Vec::new();
    if got.key != want.key {
        diffs.push(format!("key {:?} != {:?}", got.key, want.key));
    }
    if got.id != want.id {
        diffs.push(format!("id {} != {}", got.id, want.id));
    }
    if got.user != want.user {
        diffs.push(format!("user {:?} != {:?}", got.user, want.user));
    }
    if got.created_at != want.created_at {
        diffs.push(format!(
            "created_at {:?} != {:?}",
            got.created_at, want.created_at
        ));
    }
    if got.expires_at != want.expires_at {
        diffs.push(format!(
            "expires_at {:?} != {:?}",
            got.expires_at, want.expires_at
        ));
    }
    if got.version != want.version {
        diffs.push(format!("version {} != {}", got.version, want.version));
    }
    if got.data != want.data {
        let first = got
            .data
            .iter()
            .zip(&want.data)
            .position(|(a, b)| a != b)
            .unwrap_or(got.data.len().min(want.data.len()));
        diffs.push(format!(
            "data differs ({} bytes vs {} expected, first difference at byte {first})",
            got.data.len(),
            want.data.len()
        ));
    }
    if diffs.is_empty() {
        None
    } else {
        Some(diffs.join("; "))
    }
}

/// Panics with `context` unless `got` is `Some` record equal to `want`.
#[track_caller]
pub fn assert_record(got: Option<&Record>, want: &Record, context: &str) {
    match got {
        None => panic!(
            "{context}: expected the record under {:?}, got None",
            want.key
        ),
        Some(got) => {
            if let Some(diff) = record_diff(got, want) {
                panic!("{context}: the record differs (got != expected): {diff}");
            }
        }
    }
}

/// Loads `want.key` and panics with `context` unless it is exactly `want`.
pub async fn assert_loads(store: &dyn SessionStore, want: &Record, context: &str) {
    let got = store
        .load(&want.key)
        .await
        .unwrap_or_else(|e| panic!("{context}: load failed: {e:?}"));
    assert_record(got.as_ref(), want, context);
}

/// Loads `key` and panics with `context` unless nothing live is there.
pub async fn assert_absent(store: &dyn SessionStore, key: &SessionKey, context: &str) {
    let got = store
        .load(key)
        .await
        .unwrap_or_else(|e| panic!("{context}: load failed: {e:?}"));
    assert!(
        got.is_none(),
        "{context}: expected no live record under {key:?}, got {got:?}"
    );
}

/// Lists `user`'s records sorted by key, panicking with `context` on error.
pub async fn listed(store: &dyn SessionStore, user: &str, context: &str) -> Vec<Record> {
    let list = store
        .list_user(user)
        .await
        .unwrap_or_else(|e| panic!("{context}: list_user({user:?}) failed: {e:?}"));
    sorted_by_key(list)
}

/// Panics with `context` unless `user`'s live records are exactly `want`
/// (compared field by field, in any order).
pub async fn assert_listed(store: &dyn SessionStore, user: &str, want: &[Record], context: &str) {
    let got = listed(store, user, context).await;
    let want = sorted_by_key(want.to_vec());
    assert_eq!(
        sorted_keys(&got),
        sorted_keys(&want),
        "{context}: list_user({user:?}) returned other keys than expected"
    );
    for (g, w) in got.iter().zip(&want) {
        if let Some(diff) = record_diff(g, w) {
            panic!("{context}: list_user({user:?}) returned a record that differs: {diff}");
        }
    }
}

/// A tiny xorshift64* generator: deterministic pseudo-random test bytes (not
/// for cryptography).
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (any value; zero is remapped).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next pseudo-random word.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// `len` pseudo-random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// `len` pseudo-random bytes from `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    XorShift::new(seed).bytes(len)
}

/// A start line for concurrent tasks: they wait on it so that they all begin
/// their racing call at about the same moment.
#[derive(Debug, Clone, Default)]
pub struct StartGate(Arc<AtomicBool>);

impl StartGate {
    /// A closed gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets every waiting task go.
    pub fn open(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Waits (yielding to the scheduler) until the gate opens.
    pub async fn wait(&self) {
        while !self.0.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
    }
}

/// Sleeps on the Tokio timer.
pub async fn sleep(d: Duration) {
    tokio::time::sleep(d).await;
}

/// Sleeps until `deadline` on the wall clock has passed by `margin`.
pub async fn sleep_past(deadline: Timestamp, margin: Duration) {
    let target = deadline.saturating_add(margin);
    let wait = target.since(Timestamp::now());
    if !wait.is_zero() {
        sleep(wait).await;
    }
}
