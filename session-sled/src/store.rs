//! [`SledStore`]: the contract on three sled trees.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use session_core::{
    newest_per_session, Clock, Error, Record, Result, SessionId, SessionKey, SessionStore,
    SystemClock, Timestamp,
};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Tree;

use crate::codec::{
    decode_record, encode_record, expiry_key, key_of_index_entry, time_of_expiry_entry, user_key,
    user_prefix,
};

const BACKEND: &str = "sled";
/// How many expired entries one purge step reads before acting on them.
const PURGE_CHUNK: usize = 1024;

/// When acknowledged writes reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Every write waits for a flush before it returns: an acknowledged write
    /// survives a crash. Costs an `fsync` per write.
    EveryWrite,
    /// sled's background flusher writes dirty data every so often (this is the
    /// default, every 500 ms): a crash loses at most that window of *data*
    /// writes (a new session, a changed value, an extended deadline), which
    /// for sessions means a few users logged out or a few stale values. With
    /// [`SledStore::from_db`] the database's own `flush_every_ms` setting
    /// applies instead of this period.
    ///
    /// Revocations are durable in every mode: `delete`, `delete_user`,
    /// `delete_id` and `rotate` (whose old key must stay dead) flush before
    /// they return, so a session that was ended never comes back after a
    /// crash.
    Periodic(Duration),
}

impl Default for Durability {
    fn default() -> Self {
        Self::Periodic(Duration::from_millis(500))
    }
}

/// Settings for [`SledStore`]. The default: [`Durability::Periodic`] every
/// 500 ms, trees named `sessions.*`, the wall clock.
#[derive(Clone, Debug)]
pub struct SledOptions {
    durability: Durability,
    namespace: String,
    clock: Arc<dyn Clock>,
}

impl Default for SledOptions {
    fn default() -> Self {
        Self {
            durability: Durability::default(),
            namespace: "sessions".to_owned(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl SledOptions {
    /// When writes reach the disk.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Prefix of the tree names (`NAMESPACE.records`, `.users`, `.expiry`), so
    /// several stores can share one database.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Where "now" comes from (tests use a manual clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

/// An embedded [`SessionStore`] on [sled](https://docs.rs/sled/0.34).
///
/// Three trees: `records` (key → record), `users` (user + key → ∅, the per-user
/// index) and `expiry` (time + key → ∅, the expiry index).
///
/// Writes are single-key sled operations in a fixed order, not multi-tree
/// transactions (which cost five times as much): writers of one key take an
/// in-process lock (sled allows one process per database), an index entry is
/// written *before* the record that needs it and removed *after* the record
/// that needed it. So an index never misses a record, also after a crash; at
/// worst it holds a leftover entry, which readers skip and `purge_expired`
/// removes. A rotation switches the two records in one transaction on the
/// `records` tree, so no reader sees both keys or neither.
///
/// A record's expiry entry is at or before its deadline (the record keeps the
/// entry's time): extending the deadline, which every request does, writes
/// the record alone; only a record whose deadline moved earlier is filed
/// again. `purge_expired` walks the expiry index from its start up to now,
/// removes what has expired and files extended records at their deadline: it
/// reads what is due and nothing else.
///
/// Durability is a choice for data writes, see [`Durability`]; the default
/// flushes them in the background every 500 ms. Revocations (logout, "log
/// out everywhere", revoking one session, the old key of a rotation) are
/// flushed before they return, whatever the choice.
///
/// A record whose bytes on disk are damaged is an [`Error::Decode`] for that
/// record's `load`, is skipped by `list_user`, and is removed by `delete`,
/// `delete_user` and `purge_expired`; it never blocks other records.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use session_core::{SessionConfig, SessionManager};
/// use session_sled::SledStore;
///
/// let dir = std::env::temp_dir().join(format!("sled-doc-{}", std::process::id()));
/// let store = SledStore::open(&dir)?;
/// let manager = SessionManager::new(Arc::new(store), SessionConfig::default())?;
/// # drop(manager); let _ = std::fs::remove_dir_all(&dir);
/// # Ok::<(), session_core::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct SledStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: sled::Db,
    records: Tree,
    users: Tree,
    expiry: Tree,
    durability: Durability,
    clock: Arc<dyn Clock>,
    purge_examined: AtomicU64,
}

/// What [`SledStore::check_indexes`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexReport {
    /// Records stored (live or expired).
    pub records: u64,
    /// Records whose bytes do not decode.
    pub corrupt_records: u64,
    /// Records missing their user-index entry.
    pub missing_user_entries: u64,
    /// Records missing their expiry-index entry (or filed after their
    /// deadline).
    pub missing_expiry_entries: u64,
    /// User-index entries with no matching record: harmless leftovers of an
    /// interrupted write, skipped on read.
    pub dangling_user_entries: u64,
    /// Expiry-index entries with no matching record: harmless leftovers,
    /// removed by `purge_expired` once due.
    pub dangling_expiry_entries: u64,
}

impl IndexReport {
    /// Whether every record decodes and is in the indexes it belongs in.
    /// Dangling entries do not count: writes leave them behind only when
    /// interrupted (a crash), readers skip them, and purging removes them.
    pub fn is_consistent(&self) -> bool {
        self.corrupt_records == 0
            && self.missing_user_entries == 0
            && self.missing_expiry_entries == 0
    }

    /// Consistent, and without leftover entries either.
    pub fn is_tidy(&self) -> bool {
        self.is_consistent() && self.dangling_user_entries == 0 && self.dangling_expiry_entries == 0
    }
}

fn storage(e: sled::Error) -> Error {
    let transient = matches!(&e, sled::Error::Io(io) if matches!(
        io.kind(),
        std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ));
    if transient {
        Error::transient(BACKEND, e)
    } else {
        Error::backend(BACKEND, e)
    }
}

/// Writers of one record key hold its stripe. Process-wide, so stores opened
/// separately on the same database (`from_db` twice) exclude each other too.
static STRIPES: [Mutex<()>; 64] = [const { Mutex::new(()) }; 64];

fn stripe(key: &SessionKey) -> usize {
    usize::from(key.as_bytes()[0]) % STRIPES.len()
}

fn lock(i: usize) -> MutexGuard<'static, ()> {
    // The guarded data is `()`: a panic elsewhere leaves nothing half done.
    STRIPES[i].lock().unwrap_or_else(|p| p.into_inner())
}

/// The locks of one or two keys, taken in stripe order.
fn lock_keys(a: &SessionKey, b: Option<&SessionKey>) -> Vec<MutexGuard<'static, ()>> {
    let (i, j) = (stripe(a), b.map(stripe));
    match j {
        Some(j) if j != i => vec![lock(i.min(j)), lock(i.max(j))],
        _ => vec![lock(i)],
    }
}

enum Stored {
    Absent,
    Corrupt,
    /// The record and the time of its expiry entry.
    Present(Record, Timestamp),
}

impl SledStore {
    /// Opens (or creates) a database in the folder `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, SledOptions::default())
    }

    /// Opens (or creates) a database in the folder `path`.
    pub fn open_with(path: impl AsRef<Path>, options: SledOptions) -> Result<Self> {
        let flush_every = match options.durability {
            Durability::EveryWrite => None,
            Durability::Periodic(period) => {
                Some(u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1))
            }
        };
        let db = sled::Config::new()
            .path(path)
            .flush_every_ms(flush_every)
            .open()
            .map_err(storage)?;
        Self::from_db(db, options)
    }

    /// A temporary database, removed when the last handle is dropped (tests).
    /// Nothing is flushed: there is nothing to keep.
    pub fn temporary(options: SledOptions) -> Result<Self> {
        let db = sled::Config::new()
            .temporary(true)
            .flush_every_ms(None)
            .open()
            .map_err(storage)?;
        Self::from_db(db, options)
    }

    /// Uses trees in a database the application already opened.
    pub fn from_db(db: sled::Db, options: SledOptions) -> Result<Self> {
        let tree = |name: &str| {
            db.open_tree(format!("{}.{name}", options.namespace))
                .map_err(storage)
        };
        Ok(Self {
            inner: Arc::new(Inner {
                records: tree("records")?,
                users: tree("users")?,
                expiry: tree("expiry")?,
                db,
                durability: options.durability,
                clock: options.clock,
                purge_examined: AtomicU64::new(0),
            }),
        })
    }

    /// Writes everything to disk now, whatever the [`Durability`].
    ///
    /// The flush blocks a thread of tokio's blocking pool, not one of sled's
    /// own I/O threads: sled 0.34's `flush_async` parks its pool threads
    /// while they wait for writes that need those same threads, and many
    /// concurrent flushes (a burst of logouts) wedge it.
    pub async fn flush(&self) -> Result<()> {
        let db = self.inner.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| Error::backend(BACKEND, e))?
            .map_err(storage)?;
        Ok(())
    }

    /// Deletes every record of this namespace, live or expired, and its
    /// indexes, then flushes; returns how many records there were. For
    /// "log everyone out" (`sessionctl revoke-all`), not for requests: it is
    /// not one transaction with writes running at the same time.
    pub async fn clear(&self) -> Result<u64> {
        let inner = &self.inner;
        let count = inner.records.len() as u64;
        inner.records.clear().map_err(storage)?;
        inner.users.clear().map_err(storage)?;
        inner.expiry.clear().map_err(storage)?;
        self.flush().await?;
        Ok(count)
    }

    /// How many expiry-index entries all `purge_expired` calls so far have
    /// read. Diagnostic: purging reads what expired, not what is stored.
    pub fn purge_examined(&self) -> u64 {
        self.inner.purge_examined.load(Ordering::Relaxed)
    }

    /// Reads all three trees and reports any disagreement between records and
    /// indexes. Costs a full scan; for checks and diagnostics, not requests.
    pub fn check_indexes(&self) -> Result<IndexReport> {
        let inner = &self.inner;
        let mut report = IndexReport::default();
        for item in inner.records.iter() {
            let (k, v) = item.map_err(storage)?;
            report.records += 1;
            let Some(key) = SessionKey::from_slice(&k) else {
                report.corrupt_records += 1;
                continue;
            };
            let Ok((r, filed_at)) = decode_record(key, &v) else {
                report.corrupt_records += 1;
                continue;
            };
            if let Some(user) = &r.user {
                if !inner
                    .users
                    .contains_key(user_key(user, &key))
                    .map_err(storage)?
                {
                    report.missing_user_entries += 1;
                }
            }
            if filed_at > r.expires_at
                || !inner
                    .expiry
                    .contains_key(&expiry_key(filed_at, &key)[..])
                    .map_err(storage)?
            {
                report.missing_expiry_entries += 1;
            }
        }
        for item in inner.users.iter() {
            let (entry, _) = item.map_err(storage)?;
            let ok = key_of_index_entry(&entry)
                .map(|key| self.get(&key))
                .transpose()?
                .is_some_and(|stored| match stored {
                    Stored::Present(r, _) => r
                        .user
                        .as_ref()
                        .is_some_and(|u| user_key(u, &r.key) == *entry),
                    Stored::Absent | Stored::Corrupt => false,
                });
            report.dangling_user_entries += u64::from(!ok);
        }
        for item in inner.expiry.iter() {
            let (entry, _) = item.map_err(storage)?;
            let ok = match (time_of_expiry_entry(&entry), key_of_index_entry(&entry)) {
                (Some(at), Some(key)) => {
                    matches!(self.get(&key)?, Stored::Present(_, filed) if filed == at)
                }
                _ => false,
            };
            report.dangling_expiry_entries += u64::from(!ok);
        }
        Ok(report)
    }

    /// The record under `key`, live or not.
    fn get(&self, key: &SessionKey) -> Result<Stored> {
        Ok(
            match self.inner.records.get(key.as_bytes()).map_err(storage)? {
                None => Stored::Absent,
                Some(bytes) => match decode_record(*key, &bytes) {
                    Ok((r, filed_at)) => Stored::Present(r, filed_at),
                    Err(_) => Stored::Corrupt,
                },
            },
        )
    }

    /// The live record under `key` and its filing time, or the error the
    /// contract asks for.
    fn live(&self, key: &SessionKey, now: Timestamp) -> Result<(Record, Timestamp)> {
        match self.get(key)? {
            Stored::Present(r, filed_at) if r.is_live_at(now) => Ok((r, filed_at)),
            Stored::Present(..) | Stored::Absent => Err(Error::NotFound),
            Stored::Corrupt => Err(Error::decode("sled session record")),
        }
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    fn put_record(&self, r: &Record, filed_at: Timestamp) -> Result<()> {
        self.inner
            .records
            .insert(r.key.as_bytes(), encode_record(r, filed_at))
            .map_err(storage)?;
        Ok(())
    }

    fn file(&self, at: Timestamp, key: &SessionKey) -> Result<()> {
        self.inner
            .expiry
            .insert(&expiry_key(at, key)[..], &[])
            .map_err(storage)?;
        Ok(())
    }

    fn unfile(&self, at: Timestamp, key: &SessionKey) -> Result<()> {
        self.inner
            .expiry
            .remove(&expiry_key(at, key)[..])
            .map_err(storage)?;
        Ok(())
    }

    fn index_user(&self, user: &str, key: &SessionKey) -> Result<()> {
        self.inner
            .users
            .insert(user_key(user, key), &[])
            .map_err(storage)?;
        Ok(())
    }

    fn unindex_user(&self, user: &str, key: &SessionKey) -> Result<()> {
        self.inner
            .users
            .remove(user_key(user, key))
            .map_err(storage)?;
        Ok(())
    }

    /// Writes `new` over `old` (same key, held locked): entries it needs
    /// first, then the record, then entries it no longer needs.
    fn replace(&self, old: &Record, old_filed: Timestamp, new: &Record) -> Result<()> {
        // An earlier deadline needs an earlier entry; a later one is found by
        // purge at the old entry and filed again then.
        let filed_at = if new.expires_at < old_filed {
            self.file(new.expires_at, &new.key)?;
            new.expires_at
        } else {
            old_filed
        };
        let user_changed = old.user != new.user;
        if let (true, Some(user)) = (user_changed, &new.user) {
            self.index_user(user, &new.key)?;
        }
        self.put_record(new, filed_at)?;
        // The write has happened; what follows only tidies. A failure here
        // leaves a leftover entry (harmless) and must not report the write
        // as failed, or a retry would apply it twice.
        if filed_at != old_filed {
            let _ = self.unfile(old_filed, &old.key);
        }
        if let (true, Some(user)) = (user_changed, &old.user) {
            let _ = self.unindex_user(user, &old.key);
        }
        Ok(())
    }

    /// Stores a record under a free key (held locked): entries first.
    fn insert_new(&self, r: &Record) -> Result<()> {
        self.file(r.expires_at, &r.key)?;
        if let Some(user) = &r.user {
            self.index_user(user, &r.key)?;
        }
        self.put_record(r, r.expires_at)
    }

    /// Removes a record (held locked): the record first, then its entries.
    fn remove(&self, r: &Record, filed_at: Timestamp) -> Result<()> {
        self.inner
            .records
            .remove(r.key.as_bytes())
            .map_err(storage)?;
        self.unindex(r, filed_at);
        Ok(())
    }

    /// Removes the entries of a record that is gone. Only tidying: a failure
    /// leaves a leftover entry, which readers skip and purge removes.
    fn unindex(&self, r: &Record, filed_at: Timestamp) {
        if let Some(user) = &r.user {
            let _ = self.unindex_user(user, &r.key);
        }
        let _ = self.unfile(filed_at, &r.key);
    }

    /// Makes a write durable when the options ask for it.
    async fn written<T>(&self, value: T) -> Result<T> {
        if self.inner.durability == Durability::EveryWrite {
            self.flush().await?;
        }
        Ok(value)
    }

    /// Makes a revocation durable before it is acknowledged, whatever the
    /// [`Durability`]: an ended session must stay ended after a crash.
    /// `removed` says whether anything was removed (nothing to flush if not).
    async fn revoked<T>(&self, removed: bool, value: T) -> Result<T> {
        if removed {
            self.flush().await?;
        }
        Ok(value)
    }

    /// Removes a damaged record and the one index entry we can still name.
    fn remove_corrupt(&self, key: &SessionKey, index_entry: Option<(&Tree, &[u8])>) -> Result<()> {
        self.inner.records.remove(key.as_bytes()).map_err(storage)?;
        if let Some((tree, entry)) = index_entry {
            tree.remove(entry).map_err(storage)?;
        }
        Ok(())
    }
}

#[async_trait]
impl SessionStore for SledStore {
    async fn create(&self, record: &Record) -> Result<()> {
        record.check_create()?;
        {
            let _locked = lock_keys(&record.key, None);
            let now = self.now();
            match self.get(&record.key)? {
                Stored::Present(old, _) if old.is_live_at(now) => return Err(Error::AlreadyExists),
                Stored::Present(old, filed_at) => self.remove(&old, filed_at)?,
                Stored::Corrupt => return Err(Error::decode("sled session record")),
                Stored::Absent => {}
            }
            self.insert_new(record)?;
        }
        self.written(()).await
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        let Some(bytes) = self.inner.records.get(key.as_bytes()).map_err(storage)? else {
            return Ok(None);
        };
        let (record, _) = decode_record(*key, &bytes)?;
        Ok(record.is_live_at(self.now()).then_some(record))
    }

    async fn update(&self, record: &Record, expected_version: u64) -> Result<()> {
        record.check_update(expected_version)?;
        {
            let _locked = lock_keys(&record.key, None);
            let now = self.now();
            let (old, filed_at) = self.live(&record.key, now)?;
            if old.version != expected_version {
                return Err(Error::Conflict);
            }
            self.replace(&old, filed_at, record)?;
        }
        self.written(()).await
    }

    async fn touch(&self, key: &SessionKey, expires_at: Timestamp) -> Result<()> {
        {
            let _locked = lock_keys(key, None);
            let now = self.now();
            let (old, filed_at) = self.live(key, now)?;
            if expires_at <= old.expires_at {
                // A touch never moves a deadline earlier.
                return Ok(());
            }
            let mut touched = old.clone();
            touched.expires_at = expires_at;
            self.replace(&old, filed_at, &touched)?;
        }
        self.written(()).await
    }

    async fn rotate(
        &self,
        old_key: &SessionKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<()> {
        record.check_rotate(old_key, expected_version)?;
        {
            let _locked = lock_keys(old_key, Some(&record.key));
            let now = self.now();
            let (old, old_filed) = self.live(old_key, now)?;
            if old.version != expected_version {
                return Err(Error::Conflict);
            }
            if old.id != record.id {
                return Err(Error::InvalidInput(
                    "rotate must keep the session id of the old record".into(),
                ));
            }
            match self.get(&record.key)? {
                Stored::Present(r, _) if r.is_live_at(now) => return Err(Error::AlreadyExists),
                Stored::Present(r, filed_at) => self.remove(&r, filed_at)?,
                Stored::Corrupt => return Err(Error::AlreadyExists),
                Stored::Absent => {}
            }
            // Entries of the new key first; then both records switch in one
            // step, so no reader sees both keys or neither; then the old
            // key's entries go.
            self.file(record.expires_at, &record.key)?;
            if let Some(user) = &record.user {
                self.index_user(user, &record.key)?;
            }
            let value = encode_record(record, record.expires_at);
            self.inner
                .records
                .transaction(|t| {
                    t.remove(old_key.as_bytes())?;
                    t.insert(record.key.as_bytes(), value.as_slice())?;
                    Ok::<(), ConflictableTransactionError<()>>(())
                })
                .map_err(|e| match e {
                    TransactionError::Storage(e) => storage(e),
                    TransactionError::Abort(()) => Error::backend(BACKEND, "rotation aborted"),
                })?;
            self.unindex(&old, old_filed);
        }
        // The old key is a session's former token: it must stay dead.
        self.revoked(true, ()).await
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool> {
        let deleted = {
            let _locked = lock_keys(key, None);
            let now = self.now();
            match self.get(key)? {
                Stored::Present(r, filed_at) => {
                    self.remove(&r, filed_at)?;
                    r.is_live_at(now)
                }
                Stored::Corrupt => {
                    self.remove_corrupt(key, None)?;
                    true
                }
                Stored::Absent => false,
            }
        };
        self.revoked(deleted, deleted).await
    }

    /// Works in passes over the user's index, as `delete_user` does: a
    /// rotation indexes its new key before the key goes live and switches
    /// the records under both keys' locks, so a session that moves during a
    /// pass is found under its new key in the next one.
    async fn delete_id(&self, user: &str, id: SessionId) -> Result<bool> {
        let mut seen: std::collections::HashSet<SessionKey> = std::collections::HashSet::new();
        loop {
            let fresh: Vec<SessionKey> = self
                .inner
                .users
                .scan_prefix(user_prefix(user))
                .keys()
                .filter_map(|entry| entry.map(|e| key_of_index_entry(&e)).transpose())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(storage)?
                .into_iter()
                .filter(|k| !seen.contains(k))
                .collect();
            if fresh.is_empty() {
                return Ok(false);
            }
            for key in &fresh {
                let locked = lock_keys(key, None);
                let now = self.now();
                if let Stored::Present(r, filed_at) = self.get(key)? {
                    if r.id == id && r.user.as_deref() == Some(user) && r.is_live_at(now) {
                        self.remove(&r, filed_at)?;
                        drop(locked);
                        return self.revoked(true, true).await;
                    }
                }
            }
            seen.extend(fresh);
        }
    }

    async fn list_user(&self, user: &str) -> Result<Vec<Record>> {
        let now = self.now();
        let mut found = Vec::new();
        for entry in self.inner.users.scan_prefix(user_prefix(user)) {
            let (entry, _) = entry.map_err(storage)?;
            let Some(key) = key_of_index_entry(&entry) else {
                continue;
            };
            if let Stored::Present(r, _) = self.get(&key)? {
                if r.user.as_deref() == Some(user) && r.is_live_at(now) {
                    found.push(r);
                }
            }
        }
        // One by one: a rotation between two reads can show both its keys.
        Ok(newest_per_session(found))
    }

    /// Works in passes over the user's index until only `keep` is left in it.
    /// Every entry a pass deals with goes (with its record when that is the
    /// user's), so what a later pass finds was written meanwhile: the new key
    /// of a session that rotated (its entry goes in before the new key goes
    /// live), or a session that moved back to this user. Sessions that are
    /// deleted cannot come back, so the passes end.
    async fn delete_user(&self, user: &str, keep: Option<&SessionKey>) -> Result<u64> {
        let mut deleted = 0;
        loop {
            let entries: Vec<sled::IVec> = self
                .inner
                .users
                .scan_prefix(user_prefix(user))
                .keys()
                .collect::<std::result::Result<_, _>>()
                .map_err(storage)?;
            let mut acted = false;
            for entry in &entries {
                let Some(key) = key_of_index_entry(entry) else {
                    // Not an entry this store writes: drop it.
                    self.inner.users.remove(entry).map_err(storage)?;
                    continue;
                };
                if Some(&key) == keep {
                    continue;
                }
                acted = true;
                let _locked = lock_keys(&key, None);
                let now = self.now();
                match self.get(&key)? {
                    Stored::Present(r, filed_at) if r.user.as_deref() == Some(user) => {
                        self.remove(&r, filed_at)?;
                        deleted += u64::from(r.is_live_at(now));
                    }
                    Stored::Present(..) | Stored::Absent => {
                        self.inner.users.remove(entry).map_err(storage)?;
                    }
                    Stored::Corrupt => {
                        self.remove_corrupt(&key, Some((&self.inner.users, entry)))?;
                    }
                }
            }
            if !acted {
                return self.revoked(deleted > 0, deleted).await;
            }
        }
    }

    /// Walks the expiry index up to now. An entry whose record expired takes
    /// the record with it; an entry whose record's deadline has moved later
    /// is moved to that deadline (so an active session costs one step per
    /// time its old deadline passes, not one per request); an entry whose
    /// record is gone or filed elsewhere is a leftover and goes.
    async fn purge_expired(&self) -> Result<u64> {
        let now = self.now();
        let end = expiry_key(now, &SessionKey::from_bytes([0xff; 32]));
        let mut removed = 0;
        loop {
            let chunk: Vec<_> = self
                .inner
                .expiry
                .range(..=&end[..])
                .keys()
                .take(PURGE_CHUNK)
                .collect::<std::result::Result<_, _>>()
                .map_err(storage)?;
            self.inner
                .purge_examined
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if chunk.is_empty() {
                break;
            }
            for entry in chunk {
                let (Some(at), Some(key)) =
                    (time_of_expiry_entry(&entry), key_of_index_entry(&entry))
                else {
                    self.inner.expiry.remove(&entry).map_err(storage)?;
                    continue;
                };
                let _locked = lock_keys(&key, None);
                match self.get(&key)? {
                    Stored::Present(r, filed_at) if filed_at == at && !r.is_live_at(now) => {
                        self.remove(&r, filed_at)?;
                        removed += 1;
                    }
                    Stored::Present(r, filed_at) if filed_at == at => {
                        self.file(r.expires_at, &key)?;
                        self.put_record(&r, r.expires_at)?;
                        self.unfile(at, &key)?;
                    }
                    Stored::Present(..) | Stored::Absent => {
                        self.inner.expiry.remove(&entry).map_err(storage)?;
                    }
                    Stored::Corrupt => {
                        self.remove_corrupt(&key, Some((&self.inner.expiry, &entry)))?;
                    }
                }
            }
        }
        self.written(removed).await
    }
}
