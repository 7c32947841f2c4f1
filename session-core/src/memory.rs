//! [`MemoryStore`]: a concurrent, sharded, in-process store.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::BuildHasher;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::record::{Record, Timestamp};
use crate::store::SessionStore;
use crate::token::{KeyHash, SessionId, SessionKey};

const RECORD_SHARDS: usize = 64;
const USER_SHARDS: usize = 64;

#[derive(Default)]
struct RecordShard {
    /// Keyed by the key's own bytes: every key here is one the server made.
    records: HashMap<SessionKey, Record, KeyHash>,
    /// `(expires_at, key)` of every record in this shard, oldest deadline first.
    expiry: BTreeSet<(Timestamp, SessionKey)>,
}

type UserShard = HashMap<String, HashSet<SessionKey>>;

/// An in-process [`SessionStore`], for tests, single-process apps and as the
/// reference implementation of the contract.
///
/// Records live in 64 shards chosen by key, each with its own lock and its own
/// expiry index, and the per-user index lives in 64 more shards chosen by user
/// name, so tasks on many threads rarely wait for each other.
/// [`purge_expired`](SessionStore::purge_expired) pops expired entries off the
/// front of each shard's expiry index: its cost follows the number expired,
/// not the number stored.
///
/// Lock order, which keeps it deadlock free: record shards (ascending), then
/// user shards, one at a time; never a record shard while a user shard is held.
///
/// Nothing survives the process.
///
/// ```
/// use std::sync::Arc;
/// use session_core::{MemoryStore, SessionStore};
///
/// let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    records: Box<[Mutex<RecordShard>]>,
    users: Box<[Mutex<UserShard>]>,
    user_hasher: RandomState,
    clock: Arc<dyn Clock>,
    purge_examined: AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.records.len())
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store on the wall clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// An empty store that asks `clock` what time it is (see
    /// [`ManualClock`](crate::ManualClock)).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                records: (0..RECORD_SHARDS).map(|_| Mutex::default()).collect(),
                users: (0..USER_SHARDS).map(|_| Mutex::default()).collect(),
                user_hasher: RandomState::new(),
                clock,
                purge_examined: AtomicU64::new(0),
            }),
        }
    }

    /// How many expiry-index entries all `purge_expired` calls so far have
    /// examined. Diagnostic: it shows that purging reads what expired and not
    /// what is stored.
    pub fn purge_examined(&self) -> u64 {
        self.inner.purge_examined.load(Ordering::Relaxed)
    }

    /// Number of records held, live or expired but not yet purged.
    pub fn len(&self) -> usize {
        self.inner
            .records
            .iter()
            .map(|s| lock(s).records.len())
            .sum()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a shard lock cannot leave a shard half-written in a
    // way later calls would misread (every mutation is a few map operations), so
    // poisoning is not a reason to make the whole store unusable.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn shard_of(key: &SessionKey) -> usize {
    // Keys are SHA-256 outputs: any byte is uniformly distributed.
    usize::from(key.as_bytes()[0]) % RECORD_SHARDS
}

impl Inner {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn user_shard(&self, user: &str) -> MutexGuard<'_, UserShard> {
        let i = usize::try_from(self.user_hasher.hash_one(user)).unwrap_or(0) % USER_SHARDS;
        lock(&self.users[i])
    }

    fn index_add(&self, user: Option<&str>, key: SessionKey) {
        if let Some(user) = user {
            self.user_shard(user)
                .entry(user.to_owned())
                .or_default()
                .insert(key);
        }
    }

    fn index_remove(&self, user: Option<&str>, key: &SessionKey) {
        if let Some(user) = user {
            let mut shard = self.user_shard(user);
            if let Entry::Occupied(mut keys) = shard.entry(user.to_owned()) {
                keys.get_mut().remove(key);
                if keys.get().is_empty() {
                    keys.remove();
                }
            }
        }
    }

    /// Inserts into a locked shard, indexes included; replaces whatever was
    /// there. New index entries go in before stale ones come out, so a reader
    /// of the user index (which takes no record lock) never misses a record
    /// that is live throughout.
    fn put(&self, shard: &mut RecordShard, record: Record) {
        let key = record.key;
        self.index_add(record.user.as_deref(), key);
        shard.expiry.insert((record.expires_at, key));
        let (user, expires_at) = (record.user.clone(), record.expires_at);
        if let Some(old) = shard.records.insert(key, record) {
            if old.expires_at != expires_at {
                shard.expiry.remove(&(old.expires_at, key));
            }
            if old.user != user {
                self.index_remove(old.user.as_deref(), &key);
            }
        }
    }

    /// Removes from a locked shard, indexes included.
    fn take(&self, shard: &mut RecordShard, key: &SessionKey) -> Option<Record> {
        let old = shard.records.remove(key)?;
        shard.expiry.remove(&(old.expires_at, old.key));
        self.index_remove(old.user.as_deref(), key);
        Some(old)
    }

    /// Works in passes over `user`'s index, each key's shard locked only
    /// while `visit` looks at it, until `visit` breaks (its value is
    /// returned) or a pass finds no key it has not visited (`None`). `skip`
    /// is never visited.
    fn index_passes<T>(
        &self,
        user: &str,
        skip: Option<&SessionKey>,
        mut visit: impl FnMut(&mut RecordShard, &SessionKey, Timestamp) -> ControlFlow<T>,
    ) -> Option<T> {
        let mut seen: HashSet<SessionKey> = HashSet::new();
        loop {
            let fresh: Vec<SessionKey> = self
                .user_shard(user)
                .get(user)
                .map(|keys| {
                    keys.iter()
                        .filter(|k| Some(*k) != skip && !seen.contains(*k))
                        .copied()
                        .collect()
                })
                .unwrap_or_default();
            if fresh.is_empty() {
                return None;
            }
            let now = self.now();
            for key in &fresh {
                let mut shard = lock(&self.records[shard_of(key)]);
                if let ControlFlow::Break(found) = visit(&mut shard, key, now) {
                    return Some(found);
                }
            }
            seen.extend(fresh);
        }
    }

    /// The live record's version under `key`, or the error `update` owes.
    fn live_version(shard: &RecordShard, key: &SessionKey, now: Timestamp) -> Result<u64> {
        match shard.records.get(key) {
            Some(r) if r.is_live_at(now) => Ok(r.version),
            _ => Err(Error::NotFound),
        }
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create(&self, record: &Record) -> Result<()> {
        record.check_create()?;
        let inner = &self.inner;
        let mut shard = lock(&inner.records[shard_of(&record.key)]);
        if shard
            .records
            .get(&record.key)
            .is_some_and(|r| r.is_live_at(inner.now()))
        {
            return Err(Error::AlreadyExists);
        }
        inner.put(&mut shard, record.clone());
        Ok(())
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        let inner = &self.inner;
        let shard = lock(&inner.records[shard_of(key)]);
        Ok(shard
            .records
            .get(key)
            .filter(|r| r.is_live_at(inner.now()))
            .cloned())
    }

    async fn update(&self, record: &Record, expected_version: u64) -> Result<()> {
        record.check_update(expected_version)?;
        let inner = &self.inner;
        let mut shard = lock(&inner.records[shard_of(&record.key)]);
        if Inner::live_version(&shard, &record.key, inner.now())? != expected_version {
            return Err(Error::Conflict);
        }
        inner.put(&mut shard, record.clone());
        Ok(())
    }

    async fn touch(&self, key: &SessionKey, expires_at: Timestamp) -> Result<()> {
        let inner = &self.inner;
        let mut guard = lock(&inner.records[shard_of(key)]);
        let shard = &mut *guard;
        let record = shard
            .records
            .get_mut(key)
            .filter(|r| r.is_live_at(inner.now()))
            .ok_or(Error::NotFound)?;
        if expires_at > record.expires_at {
            shard.expiry.remove(&(record.expires_at, *key));
            record.expires_at = expires_at;
            shard.expiry.insert((expires_at, *key));
        }
        Ok(())
    }

    async fn rotate(
        &self,
        old_key: &SessionKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<()> {
        record.check_rotate(old_key, expected_version)?;
        let inner = &self.inner;
        let (a, b) = (shard_of(old_key), shard_of(&record.key));
        // Lock both shards in ascending order (or the one, when they coincide).
        let (mut first, mut second) = match a.cmp(&b) {
            std::cmp::Ordering::Equal => (lock(&inner.records[a]), None),
            std::cmp::Ordering::Less => {
                let x = lock(&inner.records[a]);
                (x, Some(lock(&inner.records[b])))
            }
            std::cmp::Ordering::Greater => {
                let y = lock(&inner.records[b]);
                (lock(&inner.records[a]), Some(y))
            }
        };
        let now = inner.now();
        let old_shard: &mut RecordShard = &mut first;
        let old = old_shard
            .records
            .get(old_key)
            .filter(|r| r.is_live_at(now))
            .ok_or(Error::NotFound)?;
        if old.version != expected_version {
            return Err(Error::Conflict);
        }
        if old.id != record.id {
            return Err(Error::InvalidInput(
                "rotate must keep the session id of the old record".into(),
            ));
        }
        {
            let new_shard: &RecordShard = second.as_deref().unwrap_or(old_shard);
            if new_shard
                .records
                .get(&record.key)
                .is_some_and(|r| r.is_live_at(now))
            {
                return Err(Error::AlreadyExists);
            }
        }
        // The new key enters the user index before the old one leaves it, so
        // a concurrent `delete_user` reading the index never finds neither.
        match second.as_deref_mut() {
            Some(new_shard) => inner.put(new_shard, record.clone()),
            None => inner.put(old_shard, record.clone()),
        }
        inner.take(old_shard, old_key);
        Ok(())
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool> {
        let inner = &self.inner;
        let mut shard = lock(&inner.records[shard_of(key)]);
        let removed = inner.take(&mut shard, key);
        Ok(removed.is_some_and(|r| r.is_live_at(inner.now())))
    }

    async fn list_user(&self, user: &str) -> Result<Vec<Record>> {
        let inner = &self.inner;
        let keys: Vec<SessionKey> = inner
            .user_shard(user)
            .get(user)
            .map(|keys| keys.iter().copied().collect())
            .unwrap_or_default();
        let now = inner.now();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let shard = lock(&inner.records[shard_of(&key)]);
            if let Some(r) = shard.records.get(&key) {
                if r.user.as_deref() == Some(user) && r.is_live_at(now) {
                    out.push(r.clone());
                }
            }
        }
        Ok(out)
    }

    /// In passes over the user's index: a rotation indexes the new key under
    /// the lock that makes it live, so a session that moves during a pass is
    /// found under its new key in the next one.
    async fn delete_id(&self, user: &str, id: SessionId) -> Result<bool> {
        let inner = &self.inner;
        let found = inner.index_passes(user, None, |shard, key, now| {
            let ours = shard.records.get(key).is_some_and(|r| {
                r.id == id && r.user.as_deref() == Some(user) && r.is_live_at(now)
            });
            if ours {
                inner.take(shard, key);
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        });
        Ok(found.is_some())
    }

    /// In passes over the user's index: `rotate` indexes the new key under
    /// the same lock that makes it live, and only rotates a live old key, so
    /// a session that moves during a pass shows up, under its new key, in
    /// the next one.
    async fn delete_user(&self, user: &str, keep: Option<&SessionKey>) -> Result<u64> {
        let inner = &self.inner;
        let mut deleted = 0;
        inner.index_passes(user, keep, |shard, key, now| {
            let belongs = shard
                .records
                .get(key)
                .is_some_and(|r| r.user.as_deref() == Some(user));
            if belongs {
                if let Some(r) = inner.take(shard, key) {
                    deleted += u64::from(r.is_live_at(now));
                }
            }
            ControlFlow::<()>::Continue(())
        });
        Ok(deleted)
    }

    async fn purge_expired(&self) -> Result<u64> {
        let inner = &self.inner;
        let now = inner.now();
        let mut removed = 0;
        let mut examined = 0;
        for shard in inner.records.iter() {
            let mut guard = lock(shard);
            let shard = &mut *guard;
            while let Some(&(at, key)) = shard.expiry.first() {
                examined += 1;
                if at > now {
                    break;
                }
                shard.expiry.pop_first();
                if let Some(r) = shard.records.remove(&key) {
                    inner.index_remove(r.user.as_deref(), &key);
                    removed += 1;
                }
            }
        }
        inner.purge_examined.fetch_add(examined, Ordering::Relaxed);
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;
    use crate::token::{SessionId, SessionToken};

    fn record(now: Timestamp, ttl: Duration, user: Option<&str>) -> Record {
        Record {
            key: SessionToken::generate().key(),
            id: SessionId::generate(),
            user: user.map(str::to_owned),
            created_at: now,
            expires_at: now.saturating_add(ttl),
            version: 1,
            data: vec![1, 2, 3],
        }
    }

    #[tokio::test]
    async fn purge_examines_only_expired_entries_plus_one_per_shard() {
        let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
        let store = MemoryStore::with_clock(Arc::new(clock.clone()));
        let now = clock.now();
        for i in 0..20_000 {
            let ttl = if i % 100 == 0 { 10 } else { 3_600_000 };
            store
                .create(&record(now, Duration::from_millis(ttl), Some("u")))
                .await
                .unwrap();
        }
        clock.advance(Duration::from_millis(10));
        assert_eq!(store.purge_expired().await.unwrap(), 200);
        let examined = store.purge_examined();
        assert!(
            examined <= 200 + RECORD_SHARDS as u64,
            "purge examined {examined} entries for 200 expired among 20,000"
        );
        assert_eq!(store.len(), 19_800);
        assert_eq!(store.list_user("u").await.unwrap().len(), 19_800);
    }

    #[tokio::test]
    async fn expiry_is_exact_to_the_millisecond_on_the_injected_clock() {
        let clock = ManualClock::new(Timestamp::from_millis(5_000));
        let store = MemoryStore::with_clock(Arc::new(clock.clone()));
        let r = record(clock.now(), Duration::from_millis(100), None);
        store.create(&r).await.unwrap();
        clock.advance(Duration::from_millis(99));
        assert!(store.load(&r.key).await.unwrap().is_some());
        clock.advance(Duration::from_millis(1));
        assert!(store.load(&r.key).await.unwrap().is_none());
        assert_eq!(
            store
                .touch(&r.key, Timestamp::from_millis(i64::MAX))
                .await
                .unwrap_err()
                .to_string(),
            Error::NotFound.to_string()
        );
    }
}
