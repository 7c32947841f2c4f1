//! The local cache of loaded records, kept correct by Redis' invalidations.
//!
//! Three rules make a cached read safe:
//!
//! - **Only while tracked.** Entries exist only while every tracking
//!   connection is up; going offline empties the cache, and nothing is added
//!   until tracking is back (see `tracking.rs`).
//! - **No stale fill.** A load that misses leaves a *filling* slot with a
//!   ticket before it asks the server. Any invalidation of that key (from
//!   Redis, or from a write of this process) removes the slot, and the reply
//!   is cached only if its own slot is still there. So a reply that raced a
//!   write is never kept: the write's invalidation either removed the slot
//!   first or removes the entry after.
//! - **Own writes are never overtaken.** While this process writes a key
//!   (or ends a user's sessions), loads of it bypass the cache, and the
//!   entry is dropped when the write returns. A reader here that sees the
//!   write's effect on one key (a rotation's new key) cannot then be served
//!   the other key's old record from memory.
//! - **Deadlines still hold.** Every cached read compares the record's
//!   deadline with the wall clock, as Redis does with `PXAT`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use lru::LruCache;
use session_core::{KeyHash, Record, SessionKey, Timestamp};

/// Bytes charged to each entry beyond its data and user name: the map slot
/// and list links (about 80) and the shared record's allocation (about 140).
const ENTRY_OVERHEAD: usize = 224;

/// Limits of [`RedisOptions::local_cache`](crate::RedisOptions::local_cache):
/// the least recently used entries are evicted beyond either.
///
/// ```
/// use session_redis::{LocalCache, RedisOptions};
///
/// let options = RedisOptions::default()
///     .local_cache(LocalCache::default().max_entries(50_000).max_bytes(64 << 20));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalCache {
    pub(crate) max_entries: usize,
    pub(crate) max_bytes: usize,
}

impl Default for LocalCache {
    /// 10,000 sessions and 32 MiB.
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_bytes: 32 << 20,
        }
    }
}

impl LocalCache {
    /// At most `n` sessions in memory (at least 1).
    pub fn max_entries(mut self, n: usize) -> Self {
        self.max_entries = n.max(1);
        self
    }

    /// At most about `bytes` of memory: each entry counts its data, its user
    /// name and 224 bytes of bookkeeping. (A large cache is split in up to
    /// 16 shards by key, each with its share of both limits.)
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }
}

/// What the local cache has done since the store connected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Loads answered from memory.
    pub hits: u64,
    /// Loads that went to Redis.
    pub misses: u64,
    /// Entries dropped because Redis (or a write here) said the key changed.
    pub invalidations: u64,
    /// Times the whole cache was emptied: tracking lost, topology changed,
    /// or `FLUSHALL`.
    pub flushes: u64,
    /// Entries held now.
    pub entries: u64,
    /// Bytes charged now (see [`LocalCache::max_bytes`]).
    pub bytes: u64,
    /// Whether tracking is up, so loads can be served from memory.
    pub online: bool,
}

enum Slot {
    /// A load asked the server; its reply is kept only if this is still here.
    Filling(u64),
    /// Shared, so that a hit copies the record after the lock is released.
    Ready(Arc<Record>),
}

fn cost(r: &Record) -> usize {
    ENTRY_OVERHEAD + r.data.len() + r.user.as_ref().map_or(0, String::len)
}

/// One of the cache's shards: entries are spread over up to 16 by key, so
/// that loads on many threads rarely wait for each other.
struct Shard {
    online: bool,
    entries: LruCache<SessionKey, Slot, KeyHash>,
    bytes: usize,
    next_ticket: u64,
    /// Keys of this shard this process is writing now, with the number of
    /// writes.
    writing: HashMap<SessionKey, u32, KeyHash>,
    hits: u64,
    misses: u64,
}

impl Shard {
    fn remove(&mut self, key: &SessionKey) -> bool {
        match self.entries.pop(key) {
            Some(Slot::Ready(r)) => {
                self.bytes -= cost(&r);
                true
            }
            Some(Slot::Filling(_)) => true,
            None => false,
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    fn evict(&mut self, max_entries: usize, max_bytes: usize) {
        while self.entries.len() > max_entries || self.bytes > max_bytes {
            match self.entries.pop_lru() {
                Some((_, Slot::Ready(r))) => self.bytes -= cost(&r),
                Some((_, Slot::Filling(_))) => {}
                None => break,
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here panics while holding a lock; if something did, what it
    // guards is still consistent enough to use (and going offline empties
    // it).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a lookup found.
pub(crate) enum Lookup {
    /// Served from memory.
    Hit(Record),
    /// Not here: load from the server, then call [`Cache::fill`] with this.
    Fill(u64),
    /// Tracking is down, or this process is writing the key: load from the
    /// server and keep nothing.
    Bypass,
}

/// The cache itself, shared by a store's clones and its tracking task.
pub(crate) struct Cache {
    shards: Box<[Mutex<Shard>]>,
    /// Limits of each shard.
    max_entries: usize,
    max_bytes: usize,
    /// Users whose sessions this process is ending now, and how many such
    /// writes run (read without the lock, to skip it when none does).
    writing_users: Mutex<HashMap<String, u32>>,
    users_busy: AtomicUsize,
    invalidations: AtomicU64,
    flushes: AtomicU64,
}

impl Cache {
    pub(crate) fn new(limits: LocalCache) -> Self {
        // A shard per 1,024 entries, up to 16: a small cache keeps exact
        // least-recently-used order.
        let n = (limits.max_entries / 1024).clamp(1, 16);
        let shards = (0..n)
            .map(|_| {
                Mutex::new(Shard {
                    online: false,
                    entries: LruCache::unbounded_with_hasher(KeyHash),
                    bytes: 0,
                    next_ticket: 0,
                    writing: HashMap::with_hasher(KeyHash),
                    hits: 0,
                    misses: 0,
                })
            })
            .collect();
        Self {
            shards,
            max_entries: limits.max_entries.div_ceil(n),
            max_bytes: limits.max_bytes / n,
            writing_users: Mutex::new(HashMap::new()),
            users_busy: AtomicUsize::new(0),
            invalidations: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &SessionKey) -> MutexGuard<'_, Shard> {
        // Keys are SHA-256 digests: any byte is uniform.
        lock(&self.shards[usize::from(key.as_bytes()[16]) % self.shards.len()])
    }

    /// Whether this process is ending some of `user`'s sessions now.
    fn user_busy(&self, user: Option<&str>) -> bool {
        match user {
            Some(user) if self.users_busy.load(Ordering::SeqCst) > 0 => {
                lock(&self.writing_users).contains_key(user)
            }
            _ => false,
        }
    }

    /// A cached, unexpired record for `key`, or a ticket to fill it.
    pub(crate) fn lookup(&self, key: &SessionKey, now: Timestamp) -> Lookup {
        let mut shard = self.shard(key);
        if !shard.online || shard.writing.contains_key(key) {
            shard.misses += 1;
            return Lookup::Bypass;
        }
        if let Some(Slot::Ready(r)) = shard.entries.get(key) {
            if r.expires_at > now {
                let r = Arc::clone(r);
                shard.hits += 1;
                drop(shard);
                if !self.user_busy(r.user.as_deref()) {
                    return Lookup::Hit(Record::clone(&r));
                }
                let mut shard = self.shard(key);
                shard.remove(key);
                shard.hits -= 1;
                shard.misses += 1;
                return Lookup::Bypass;
            }
            shard.remove(key);
        }
        shard.misses += 1;
        shard.next_ticket += 1;
        let ticket = shard.next_ticket;
        // A slot another load left is taken over: the newest load fills.
        if let Some(Slot::Ready(old)) = shard.entries.put(*key, Slot::Filling(ticket)) {
            shard.bytes -= cost(&old);
        }
        shard.evict(self.max_entries, self.max_bytes);
        Lookup::Fill(ticket)
    }

    /// Keeps `record` (the server's answer to the load that got `ticket`) if
    /// nothing invalidated the key since, and it is live.
    pub(crate) fn fill(&self, key: &SessionKey, ticket: u64, record: Option<&Record>) {
        let keep = record.filter(|r| !self.user_busy(r.user.as_deref()));
        let mut shard = self.shard(key);
        if !matches!(shard.entries.peek(key), Some(Slot::Filling(t)) if *t == ticket) {
            return;
        }
        match keep {
            // A record larger than a shard's whole budget is not kept: it
            // would only evict everything else first.
            Some(r)
                if shard.online
                    && !shard.writing.contains_key(key)
                    && cost(r) <= self.max_bytes =>
            {
                shard.bytes += cost(r);
                shard.entries.put(*key, Slot::Ready(Arc::new(r.clone())));
                shard.evict(self.max_entries, self.max_bytes);
            }
            _ => {
                shard.entries.pop(key);
            }
        }
    }

    /// Before this process writes `keys`: drops them, and loads bypass the
    /// cache for them until [`Cache::end_write`].
    pub(crate) fn begin_write(&self, keys: &[SessionKey]) {
        for key in keys {
            let mut shard = self.shard(key);
            shard.remove(key);
            *shard.writing.entry(*key).or_insert(0) += 1;
        }
    }

    /// After the write [`Cache::begin_write`] announced, whatever its outcome.
    pub(crate) fn end_write(&self, keys: &[SessionKey]) {
        for key in keys {
            let mut shard = self.shard(key);
            if let Some(n) = shard.writing.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    shard.writing.remove(key);
                }
            }
            shard.remove(key);
        }
    }

    /// Before this process ends some of `user`'s sessions.
    pub(crate) fn begin_user_write(&self, user: &str) {
        *lock(&self.writing_users)
            .entry(user.to_owned())
            .or_insert(0) += 1;
        self.users_busy.fetch_add(1, Ordering::SeqCst);
    }

    /// After the write [`Cache::begin_user_write`] announced: drops what
    /// `matches` picks (and every load in flight).
    pub(crate) fn end_user_write(&self, user: &str, matches: impl Fn(&Record) -> bool) {
        self.invalidate_where(matches);
        let mut users = lock(&self.writing_users);
        if let Some(n) = users.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                users.remove(user);
            }
        }
        self.users_busy.fetch_sub(1, Ordering::SeqCst);
    }

    /// Drops `key` (an invalidation from Redis).
    pub(crate) fn invalidate(&self, key: &SessionKey) {
        if self.shard(key).remove(key) {
            self.invalidations.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drops every entry `matches` picks and every load in flight: for writes
    /// that end records this process cannot name by key (a user's sessions).
    pub(crate) fn invalidate_where(&self, matches: impl Fn(&Record) -> bool) {
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            let doomed: Vec<SessionKey> = shard
                .entries
                .iter()
                .filter(|(_, slot)| match slot {
                    Slot::Filling(_) => true,
                    Slot::Ready(r) => matches(r),
                })
                .map(|(k, _)| *k)
                .collect();
            for key in &doomed {
                shard.remove(key);
            }
            self.invalidations
                .fetch_add(doomed.len() as u64, Ordering::Relaxed);
        }
    }

    /// Every shard locked, in order (so that no push handler changes any of
    /// them meanwhile).
    fn lock_all(&self) -> Vec<MutexGuard<'_, Shard>> {
        self.shards.iter().map(lock).collect()
    }

    /// Empties the cache and sets whether it may hold entries again.
    pub(crate) fn reset(&self, online: bool) {
        for mut shard in self.lock_all() {
            shard.clear();
            shard.online = online;
        }
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }

    /// Empties the cache and takes it offline, if `still_current` says so
    /// while no other push handler or [`Cache::go_online_if`] can interleave.
    pub(crate) fn reset_if(&self, still_current: impl FnOnce() -> bool) -> bool {
        let mut all = self.lock_all();
        if !still_current() {
            return false;
        }
        for shard in &mut all {
            shard.clear();
            shard.online = false;
        }
        self.flushes.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Empties the cache, which stays online (Redis said every key changed).
    pub(crate) fn flush(&self) {
        for mut shard in self.lock_all() {
            shard.clear();
        }
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }

    /// Empties the cache and puts it online, if `still_tracking` says so
    /// while no push handler can take it offline.
    pub(crate) fn go_online_if(&self, still_tracking: impl FnOnce() -> bool) -> bool {
        let mut all = self.lock_all();
        let online = still_tracking();
        for shard in &mut all {
            shard.clear();
            shard.online = online;
        }
        online
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let mut stats = CacheStats {
            invalidations: self.invalidations.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
            ..CacheStats::default()
        };
        for shard in self.shards.iter() {
            let shard = lock(shard);
            stats.hits += shard.hits;
            stats.misses += shard.misses;
            stats.entries += shard.entries.len() as u64;
            stats.bytes += shard.bytes as u64;
            stats.online = shard.online;
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_core::{SessionId, SessionToken};

    fn record(user: Option<&str>, data: usize, expires_at: i64) -> Record {
        Record {
            key: SessionToken::generate().key(),
            id: SessionId::generate(),
            user: user.map(str::to_owned),
            created_at: Timestamp::from_millis(0),
            expires_at: Timestamp::from_millis(expires_at),
            version: 1,
            data: vec![7; data],
        }
    }

    fn online(limits: LocalCache) -> Cache {
        let cache = Cache::new(limits);
        cache.reset(true);
        cache
    }

    fn now() -> Timestamp {
        Timestamp::from_millis(1_000)
    }

    fn fill(cache: &Cache, r: &Record) {
        let Lookup::Fill(t) = cache.lookup(&r.key, now()) else {
            panic!("expected a miss");
        };
        cache.fill(&r.key, t, Some(r));
    }

    #[test]
    fn a_filled_record_is_served_until_its_deadline() {
        let cache = online(LocalCache::default());
        let r = record(None, 10, 2_000);
        fill(&cache, &r);
        assert!(matches!(cache.lookup(&r.key, now()), Lookup::Hit(h) if h == r));
        assert!(matches!(
            cache.lookup(&r.key, Timestamp::from_millis(2_000)),
            Lookup::Fill(_)
        ));
    }

    #[test]
    fn an_invalidation_during_a_load_keeps_its_reply_out() {
        let cache = online(LocalCache::default());
        let r = record(None, 10, 2_000);
        let Lookup::Fill(t) = cache.lookup(&r.key, now()) else {
            panic!("expected a miss");
        };
        cache.invalidate(&r.key);
        cache.fill(&r.key, t, Some(&r));
        assert!(matches!(cache.lookup(&r.key, now()), Lookup::Fill(_)));
    }

    #[test]
    fn a_newer_load_takes_the_slot_over() {
        let cache = online(LocalCache::default());
        let r = record(None, 10, 2_000);
        let Lookup::Fill(first) = cache.lookup(&r.key, now()) else {
            panic!("expected a miss");
        };
        let Lookup::Fill(second) = cache.lookup(&r.key, now()) else {
            panic!("expected a miss");
        };
        cache.fill(&r.key, first, Some(&r));
        assert!(matches!(cache.lookup(&r.key, now()), Lookup::Fill(_)));
        let _ = second;
    }

    #[test]
    fn offline_nothing_is_kept_and_going_offline_empties_it() {
        let cache = Cache::new(LocalCache::default());
        let r = record(None, 10, 2_000);
        assert!(matches!(cache.lookup(&r.key, now()), Lookup::Bypass));
        cache.reset(true);
        fill(&cache, &r);
        let Lookup::Fill(t) = cache.lookup(&record(None, 1, 2_000).key, now()) else {
            panic!("expected a miss");
        };
        cache.reset(false);
        cache.fill(&r.key, t, Some(&r));
        assert_eq!(cache.stats().entries, 0);
        cache.reset(true);
        assert!(matches!(cache.lookup(&r.key, now()), Lookup::Fill(_)));
    }

    #[test]
    fn entries_and_bytes_stay_within_their_limits_dropping_the_least_recent() {
        let cache = online(LocalCache::default().max_entries(3));
        let rs: Vec<Record> = (0..4).map(|_| record(None, 10, 2_000)).collect();
        for r in &rs[..3] {
            fill(&cache, r);
        }
        // Using the first makes the second the least recent.
        assert!(matches!(cache.lookup(&rs[0].key, now()), Lookup::Hit(_)));
        fill(&cache, &rs[3]);
        assert!(matches!(cache.lookup(&rs[1].key, now()), Lookup::Fill(_)));
        assert!(matches!(cache.lookup(&rs[0].key, now()), Lookup::Hit(_)));

        let cache = online(
            LocalCache::default()
                .max_entries(100)
                .max_bytes(3 * (ENTRY_OVERHEAD + 100)),
        );
        for _ in 0..10 {
            fill(&cache, &record(None, 100, 2_000));
        }
        let stats = cache.stats();
        assert_eq!(stats.entries, 3);
        assert_eq!(stats.bytes, 3 * (ENTRY_OVERHEAD as u64 + 100));
    }

    #[test]
    fn invalidate_where_drops_matching_entries_and_loads_in_flight() {
        let cache = online(LocalCache::default());
        let alice = record(Some("alice"), 10, 2_000);
        let bob = record(Some("bob"), 10, 2_000);
        fill(&cache, &alice);
        fill(&cache, &bob);
        let late = record(Some("alice"), 10, 2_000);
        let Lookup::Fill(t) = cache.lookup(&late.key, now()) else {
            panic!("expected a miss");
        };
        cache.invalidate_where(|r| r.user.as_deref() == Some("alice"));
        cache.fill(&late.key, t, Some(&late));
        assert!(matches!(cache.lookup(&alice.key, now()), Lookup::Fill(_)));
        assert!(matches!(cache.lookup(&late.key, now()), Lookup::Fill(_)));
        assert!(matches!(cache.lookup(&bob.key, now()), Lookup::Hit(_)));
    }
}
