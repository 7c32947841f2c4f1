//! [`SledStore`]: the contract on three sled trees.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use session_core::{
    Clock, Error, Record, Result, SessionKey, SessionStore, SystemClock, Timestamp,
};
use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionError,
    TransactionalTree,
};
use sled::{Transactional, Tree};

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
    /// default, every 500 ms): a crash loses at most that window of writes, which
    /// for sessions means a few users logged out or a few stale values. With
    /// [`SledStore::from_db`] the database's own `flush_every_ms` setting
    /// applies instead of this period.
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
/// index) and `expiry` (deadline + key → ∅, the expiry index). Every write
/// changes them in one sled transaction, so the indexes always agree with the
/// records, also after a crash. `purge_expired` walks the expiry index from its
/// start up to now: it reads what has expired and nothing else.
///
/// Durability is a choice, see [`Durability`]; the default flushes in the
/// background every 500 ms.
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
    /// Records missing their expiry-index entry.
    pub missing_expiry_entries: u64,
    /// User-index entries with no matching record.
    pub dangling_user_entries: u64,
    /// Expiry-index entries with no matching record.
    pub dangling_expiry_entries: u64,
}

impl IndexReport {
    /// Whether every record and index entry agree.
    pub fn is_consistent(&self) -> bool {
        self.corrupt_records == 0
            && self.missing_user_entries == 0
            && self.missing_expiry_entries == 0
            && self.dangling_user_entries == 0
            && self.dangling_expiry_entries == 0
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

type Tx<T> = ConflictableTransactionResult<T, Error>;

fn abort<T>(e: Error) -> Tx<T> {
    Err(ConflictableTransactionError::Abort(e))
}

/// The three trees inside one transaction.
struct Txn<'a> {
    records: &'a TransactionalTree,
    users: &'a TransactionalTree,
    expiry: &'a TransactionalTree,
}

enum Stored {
    Absent,
    Corrupt,
    Present(Record),
}

impl Txn<'_> {
    fn get(&self, key: &SessionKey) -> Tx<Stored> {
        Ok(match self.records.get(key.as_bytes())? {
            None => Stored::Absent,
            Some(bytes) => match decode_record(*key, &bytes) {
                Ok(r) => Stored::Present(r),
                Err(_) => Stored::Corrupt,
            },
        })
    }

    /// The live record under `key`, or the abort the contract asks for.
    fn live(&self, key: &SessionKey, now: Timestamp) -> Tx<Record> {
        match self.get(key)? {
            Stored::Present(r) if r.is_live_at(now) => Ok(r),
            Stored::Present(_) | Stored::Absent => abort(Error::NotFound),
            Stored::Corrupt => abort(Error::decode("sled session record")),
        }
    }

    fn put(&self, record: &Record) -> Tx<()> {
        self.records
            .insert(record.key.as_bytes(), encode_record(record))?;
        if let Some(user) = &record.user {
            self.users.insert(user_key(user, &record.key), &[])?;
        }
        self.expiry
            .insert(&expiry_key(record.expires_at, &record.key)[..], &[])?;
        Ok(())
    }

    fn remove(&self, record: &Record) -> Tx<()> {
        self.records.remove(record.key.as_bytes())?;
        if let Some(user) = &record.user {
            self.users.remove(user_key(user, &record.key))?;
        }
        self.expiry
            .remove(&expiry_key(record.expires_at, &record.key)[..])?;
        Ok(())
    }
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
    pub async fn flush(&self) -> Result<()> {
        self.inner.db.flush_async().await.map_err(storage)?;
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
            let Ok(r) = decode_record(key, &v) else {
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
            if !inner
                .expiry
                .contains_key(&expiry_key(r.expires_at, &key)[..])
                .map_err(storage)?
            {
                report.missing_expiry_entries += 1;
            }
        }
        for item in inner.users.iter() {
            let (entry, _) = item.map_err(storage)?;
            let ok = key_of_index_entry(&entry)
                .map(|key| self.raw(&key))
                .transpose()?
                .flatten()
                .is_some_and(|r| {
                    r.user
                        .as_ref()
                        .is_some_and(|u| user_key(u, &r.key) == *entry)
                });
            report.dangling_user_entries += u64::from(!ok);
        }
        for item in inner.expiry.iter() {
            let (entry, _) = item.map_err(storage)?;
            let ok = match (time_of_expiry_entry(&entry), key_of_index_entry(&entry)) {
                (Some(at), Some(key)) => self.raw(&key)?.is_some_and(|r| r.expires_at == at),
                _ => false,
            };
            report.dangling_expiry_entries += u64::from(!ok);
        }
        Ok(report)
    }

    /// The record under `key`, live or not; `None` also for undecodable bytes.
    fn raw(&self, key: &SessionKey) -> Result<Option<Record>> {
        Ok(self
            .inner
            .records
            .get(key.as_bytes())
            .map_err(storage)?
            .and_then(|v| decode_record(*key, &v).ok()))
    }

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    fn txn<T>(&self, f: impl Fn(&Txn<'_>) -> Tx<T>) -> Result<T> {
        let inner = &self.inner;
        let result = (&inner.records, &inner.users, &inner.expiry).transaction(
            |(records, users, expiry)| {
                f(&Txn {
                    records,
                    users,
                    expiry,
                })
            },
        );
        match result {
            Ok(v) => Ok(v),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(storage(e)),
        }
    }

    /// Makes a write durable when the options ask for it.
    async fn written<T>(&self, value: T) -> Result<T> {
        if self.inner.durability == Durability::EveryWrite {
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
        let now = self.now();
        self.txn(|t| {
            match t.get(&record.key)? {
                Stored::Present(old) if old.is_live_at(now) => return abort(Error::AlreadyExists),
                Stored::Present(old) => t.remove(&old)?,
                Stored::Corrupt => return abort(Error::decode("sled session record")),
                Stored::Absent => {}
            }
            t.put(record)
        })?;
        self.written(()).await
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        let Some(bytes) = self.inner.records.get(key.as_bytes()).map_err(storage)? else {
            return Ok(None);
        };
        let record = decode_record(*key, &bytes)?;
        Ok(record.is_live_at(self.now()).then_some(record))
    }

    async fn update(&self, record: &Record, expected_version: u64) -> Result<()> {
        record.check_update(expected_version)?;
        let now = self.now();
        self.txn(|t| {
            let old = t.live(&record.key, now)?;
            if old.version != expected_version {
                return abort(Error::Conflict);
            }
            t.remove(&old)?;
            t.put(record)
        })?;
        self.written(()).await
    }

    async fn touch(&self, key: &SessionKey, expires_at: Timestamp) -> Result<()> {
        let now = self.now();
        self.txn(|t| {
            let mut r = t.live(key, now)?;
            t.expiry.remove(&expiry_key(r.expires_at, key)[..])?;
            r.expires_at = expires_at;
            t.records.insert(key.as_bytes(), encode_record(&r))?;
            t.expiry.insert(&expiry_key(expires_at, key)[..], &[])?;
            Ok(())
        })?;
        self.written(()).await
    }

    async fn rotate(
        &self,
        old_key: &SessionKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<()> {
        record.check_rotate(old_key, expected_version)?;
        let now = self.now();
        self.txn(|t| {
            let old = t.live(old_key, now)?;
            if old.version != expected_version {
                return abort(Error::Conflict);
            }
            if old.id != record.id {
                return abort(Error::InvalidInput(
                    "rotate must keep the session id of the old record".into(),
                ));
            }
            match t.get(&record.key)? {
                Stored::Present(r) if r.is_live_at(now) => return abort(Error::AlreadyExists),
                Stored::Present(r) => t.remove(&r)?,
                Stored::Corrupt => return abort(Error::AlreadyExists),
                Stored::Absent => {}
            }
            t.remove(&old)?;
            t.put(record)
        })?;
        self.written(()).await
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool> {
        let now = self.now();
        let outcome = self.txn(|t| match t.get(key)? {
            Stored::Present(r) => {
                t.remove(&r)?;
                Ok(Some(r.is_live_at(now)))
            }
            Stored::Corrupt => Ok(None),
            Stored::Absent => Ok(Some(false)),
        })?;
        let deleted = match outcome {
            Some(live) => live,
            None => {
                self.remove_corrupt(key, None)?;
                true
            }
        };
        self.written(deleted).await
    }

    async fn list_user(&self, user: &str) -> Result<Vec<Record>> {
        let now = self.now();
        let mut out = Vec::new();
        for entry in self.inner.users.scan_prefix(user_prefix(user)) {
            let (entry, _) = entry.map_err(storage)?;
            let Some(key) = key_of_index_entry(&entry) else {
                continue;
            };
            if let Some(r) = self.raw(&key)? {
                if r.user.as_deref() == Some(user) && r.is_live_at(now) {
                    out.push(r);
                }
            }
        }
        Ok(out)
    }

    /// Works in passes over the user's index until a pass finds no entry it
    /// has not dealt with. `rotate` writes the new key's index entry in the
    /// same transaction that makes it live, and only rotates a live old key,
    /// so a session that moves during a pass shows up in the next one.
    async fn delete_user(&self, user: &str, keep: Option<&SessionKey>) -> Result<u64> {
        let now = self.now();
        let mut deleted = 0;
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        loop {
            let fresh: Vec<sled::IVec> = self
                .inner
                .users
                .scan_prefix(user_prefix(user))
                .keys()
                .filter(|e| e.as_ref().map_or(true, |e| !seen.contains(e.as_ref())))
                .collect::<std::result::Result<_, _>>()
                .map_err(storage)?;
            if fresh.is_empty() {
                return self.written(deleted).await;
            }
            for entry in &fresh {
                let Some(key) = key_of_index_entry(entry) else {
                    continue;
                };
                if Some(&key) == keep {
                    continue;
                }
                let outcome = self.txn(|t| match t.get(&key)? {
                    Stored::Present(r) if r.user.as_deref() == Some(user) => {
                        t.remove(&r)?;
                        Ok(Some(r.is_live_at(now)))
                    }
                    Stored::Present(_) | Stored::Absent => {
                        t.users.remove(entry)?;
                        Ok(Some(false))
                    }
                    Stored::Corrupt => Ok(None),
                })?;
                match outcome {
                    Some(live) => deleted += u64::from(live),
                    None => self.remove_corrupt(&key, Some((&self.inner.users, entry)))?,
                }
            }
            seen.extend(fresh.into_iter().map(|e| e.to_vec()));
        }
    }

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
                let outcome = self.txn(|t| match t.get(&key)? {
                    Stored::Present(r) if r.expires_at == at => {
                        t.remove(&r)?;
                        Ok(Some(true))
                    }
                    Stored::Present(_) | Stored::Absent => {
                        t.expiry.remove(&entry)?;
                        Ok(Some(false))
                    }
                    Stored::Corrupt => Ok(None),
                })?;
                match outcome {
                    Some(gone) => removed += u64::from(gone),
                    None => self.remove_corrupt(&key, Some((&self.inner.expiry, &entry)))?,
                }
            }
        }
        self.written(removed).await
    }
}
