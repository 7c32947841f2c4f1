//! [`RedisStore`]: standalone Redis and Redis Cluster.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::try_join_all;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{ErrorKind, FromRedisValue, RedisResult, ServerErrorKind, Value};
use session_core::{
    newest_per_session, Error, Record, Result, SessionId, SessionKey, SessionStore, Timestamp,
};

use crate::cache::{Cache, CacheStats, LocalCache, Lookup};
use crate::error::{connect_err, redis_err, tracking_err, unexpected};
use crate::scripts::{Call, Scripts};
use crate::tracking::{self, Tracking};
use crate::value::{self, Stored};

/// Connection settings for [`RedisStore`].
///
/// Defaults: key prefix `session:`, 2 s to connect, 2 s for a reply. With
/// bounded timeouts a call made while the server is down fails with a
/// transient error instead of hanging; the store reconnects on its own.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    prefix: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    tls_root: Option<Vec<u8>>,
    cache: Option<LocalCache>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            prefix: "session:".to_owned(),
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(2),
            tls_root: None,
            cache: None,
        }
    }
}

impl RedisOptions {
    /// Prefix of every key this store writes (`PREFIX` + `s:` + hex key for
    /// records, `PREFIX` + `u:` + user for the per-user indexes).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long to wait for a connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long to wait for a reply.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// For `rediss://` (TLS): trust the certificate authorities in `pem`
    /// (one or more PEM certificates) instead of the system's, as for a
    /// server whose certificate a private CA signed. Without it, the
    /// system's roots are used (and `SSL_CERT_FILE`, when set, names the
    /// file to read them from).
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root = Some(pem.into());
        self
    }

    /// Serves loads from process memory, kept correct by Redis' own
    /// invalidation messages (RESP3 `CLIENT TRACKING`, Redis 6 or later).
    /// Off by default.
    ///
    /// A change made anywhere (another app server, `sessionctl`, an expiry)
    /// reaches this store's memory within the invalidation delay, about a
    /// millisecond on a LAN. Writes go to Redis as without the cache, and a
    /// versioned write that finds a newer record than the cached one fails
    /// with `Conflict` (the cached entry is dropped, so the retry reads
    /// Redis): a cache never causes a lost update. If a tracking connection
    /// drops or stops answering, or a cluster's nodes change, the cache is
    /// emptied and loads go to Redis until tracking is back.
    ///
    /// Each store opens one more connection per node (the server, or every
    /// cluster node, replicas included), named
    /// `session-redis-cache-tracking` in `CLIENT LIST`. Only
    /// [`connect`](RedisStore::connect) and
    /// [`connect_cluster`](RedisStore::connect_cluster) honour this option.
    pub fn local_cache(mut self, limits: LocalCache) -> Self {
        self.cache = Some(limits);
        self
    }

    fn tls_certificates(&self) -> Option<redis::TlsCertificates> {
        self.tls_root.as_ref().map(|pem| redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.clone()),
        })
    }
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    async fn send<T: FromRedisValue>(&mut self, cmd: &redis::Cmd) -> RedisResult<T> {
        match self {
            Self::Single(c) => cmd.query_async(c).await,
            Self::Cluster(c) => cmd.query_async(c).await,
        }
    }

    async fn load(&mut self, script: &redis::Script) -> RedisResult<String> {
        match self {
            Self::Single(c) => script.load_async(c).await,
            Self::Cluster(c) => script.load_async(c).await,
        }
    }
}

/// A [`SessionStore`] on Redis (standalone) or Redis Cluster.
///
/// Keys hold only the token's SHA-256 (as hex): a record is one string under
/// `PREFIX s:<hex key>` with a native deadline (`PXAT`), so Redis removes
/// expired sessions itself and [`purge_expired`](SessionStore::purge_expired)
/// has nothing to do. Each user's sessions are indexed in the sorted set
/// `PREFIX u:<user>`, scored by deadline; entries whose deadline passed are
/// pruned whenever the index is read, and the set itself expires with its
/// longest-lived entry, so it never grows without bound.
///
/// A load is one `GET`, creating an anonymous session one `SET NX PXAT`, and
/// deleting one (standalone) a `GETDEL`: the same commands a bare cache
/// would send. Writes that must check something (the version, the user
/// index) are Lua scripts (loaded once, run with `EVALSHA`, reloaded after
/// `NOSCRIPT`): one round trip and atomic.
///
/// # Standalone
/// Every operation, index upkeep included, is one atomic script.
///
/// # Cluster
/// A record, its rotation target and the user index usually live in
/// different hash slots, and no script may span slots. The guarantees are the
/// same; they rest on ordered, idempotent steps:
///
/// - **The index never misses a live session.** An index entry is added (its
///   score only ever raised) *before* the record is written with that user and
///   deadline, and entries are removed only once their deadline has passed or
///   their record is gone for good (deleted or rotated away; keys are random
///   and never reused). Entries left behind when a session moves to another
///   user are skipped on read (the record names its user) and pruned when
///   their deadline passes: the index converges.
/// - **Rotation is atomic for readers.** The new key is first written as a
///   *pending* record, invisible to every method. The commit point is one
///   script on the old key: it checks the version and replaces the record
///   with a tombstone naming the new key. Then the new key is activated. A
///   reader that meets a pending record looks at the old key: a tombstone
///   pointing back means committed (and it activates the record), a live old
///   record means not yet, neither means abandoned (it is removed). So no
///   reader sees both keys live, or neither, and a crash between the steps
///   resolves on the next read.
/// - **A revoked session never comes back.** `delete_user` deletes a user's
///   records, pending ones included, one script per record; a rotation whose
///   target was revoked finds nothing to activate and reports `NotFound`.
///
/// ```no_run
/// # async fn demo() -> session_core::Result<()> {
/// use std::sync::Arc;
/// use session_core::{SessionConfig, SessionManager};
/// use session_redis::{RedisOptions, RedisStore};
///
/// let store = RedisStore::connect("redis://127.0.0.1:6379", RedisOptions::default()).await?;
/// let manager = SessionManager::new(Arc::new(store), SessionConfig::default())?;
///
/// let cluster = RedisStore::connect_cluster(
///     &["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"],
///     RedisOptions::default().prefix("app:sess:"),
/// )
/// .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    prefix: Arc<str>,
    /// `prefix` + `s:`, the start of every record's name.
    records: Arc<str>,
    /// `prefix` + `u:`, the start of every index's name.
    indexes: Arc<str>,
    scripts: Arc<Scripts>,
    cached: Option<Arc<Cached>>,
}

/// The local cache and the task keeping it correct; the task stops when the
/// last clone of the store is dropped.
struct Cached {
    cache: Arc<Cache>,
    _tracking: Tracking,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.conn {
            Conn::Single(_) => "standalone",
            Conn::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisStore")
            .field("mode", &mode)
            .field("prefix", &self.prefix)
            .field("local_cache", &self.cached.is_some())
            .finish()
    }
}

/// A deadline as `PXAT`/`PEXPIREAT` takes it: Redis refuses 0 and below, and
/// 1 is as much in the past for a session.
fn pxat(t: Timestamp) -> i64 {
    t.as_millis().max(1)
}

fn user_flag(r: &Record) -> &'static str {
    if r.user.is_some() {
        "1"
    } else {
        "0"
    }
}

impl RedisStore {
    /// Connects to a standalone server (`redis://`, `rediss://` for TLS,
    /// `redis+unix://`). The connection manager reconnects on its own after
    /// the server restarts.
    ///
    /// The connection is checked with a `PING` before this returns, so a
    /// server that wants a password the URL does not give, or a wrong
    /// password, fails here once with a clear, permanent error ("authentication
    /// required", "wrong password for Redis user …"), not on every later call.
    pub async fn connect(url: &str, options: RedisOptions) -> Result<Self> {
        let client = match options.tls_certificates() {
            Some(certs) => redis::Client::build_with_tls(url, certs),
            None => redis::Client::open(url),
        }
        .map_err(|e| Error::InvalidInput(format!("bad Redis URL: {e}")))?;
        let user = client
            .get_connection_info()
            .redis_settings()
            .username()
            .unwrap_or("default")
            .to_owned();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let seeds = vec![client.get_connection_info().clone()];
        let manager = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| connect_err(e, &user))?;
        let mut store = Self::new(Conn::Single(manager), &options);
        store.check_connection(&user).await?;
        store.start_cache(&options, seeds, false, &user).await?;
        Ok(store)
    }

    /// One `PING`: a server that needs authentication answers `NOAUTH`.
    async fn check_connection(&self, user: &str) -> Result<()> {
        self.conn
            .clone()
            .send::<String>(&redis::cmd("PING"))
            .await
            .map(drop)
            .map_err(|e| connect_err(e, user))
    }

    /// Connects to a Redis Cluster through any of its nodes (`redis://` or,
    /// for TLS, `rediss://` node URLs). Checked like [`connect`](Self::connect).
    pub async fn connect_cluster(nodes: &[&str], options: RedisOptions) -> Result<Self> {
        let mut builder = ClusterClientBuilder::new(nodes.to_vec())
            .connection_timeout(options.connect_timeout)
            .response_timeout(options.response_timeout)
            .retries(3);
        if let Some(certs) = options.tls_certificates() {
            builder = builder.certs(certs);
        }
        let client = builder
            .build()
            .map_err(|e| Error::InvalidInput(format!("bad Redis Cluster URL: {e}")))?;
        let user = nodes
            .first()
            .and_then(|n| redis::parse_redis_url(n))
            .map(|u| u.username().to_owned())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "default".to_owned());
        let conn = client
            .get_async_connection()
            .await
            .map_err(|e| connect_err(e, &user))?;
        let mut store = Self::new(Conn::Cluster(conn), &options);
        store.check_connection(&user).await?;
        if options.cache.is_some() {
            let seeds = nodes
                .iter()
                .map(|n| redis::IntoConnectionInfo::into_connection_info(*n))
                .collect::<RedisResult<Vec<_>>>()
                .map_err(|e| Error::InvalidInput(format!("bad Redis Cluster URL: {e}")))?;
            store.start_cache(&options, seeds, true, &user).await?;
        }
        Ok(store)
    }

    async fn start_cache(
        &mut self,
        options: &RedisOptions,
        seeds: Vec<redis::ConnectionInfo>,
        cluster: bool,
        user: &str,
    ) -> Result<()> {
        let Some(limits) = options.cache else {
            return Ok(());
        };
        let cache = Arc::new(Cache::new(limits));
        let setup = tracking::Setup {
            seeds,
            cluster,
            certs: options.tls_certificates(),
            records: self.records.clone(),
            connect_timeout: options.connect_timeout,
            response_timeout: options.response_timeout,
        };
        let tracking = tracking::start(setup, cache.clone())
            .await
            .map_err(|e| tracking_err(e, user))?;
        self.cached = Some(Arc::new(Cached {
            cache,
            _tracking: tracking,
        }));
        Ok(())
    }

    /// What the local cache has done, if this store has one
    /// ([`RedisOptions::local_cache`]).
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.cached.as_ref().map(|c| c.cache.stats())
    }

    fn cache(&self) -> Option<&Cache> {
        self.cached.as_deref().map(|c| &*c.cache)
    }

    /// Announces a write to `keys` to the cache until the guard drops
    /// (even if the caller's future is dropped mid-write).
    fn writing<'a>(&'a self, keys: &'a [SessionKey]) -> Option<Writing<'a>> {
        let cache = self.cache()?;
        cache.begin_write(keys);
        Some(Writing::Keys(cache, keys))
    }

    /// Announces a write ending some of `user`'s sessions: those that are
    /// not `keep`, and (if given) only the one with `id`.
    fn writing_user<'a>(
        &'a self,
        user: &'a str,
        keep: Option<&'a SessionKey>,
        id: Option<SessionId>,
    ) -> Option<Writing<'a>> {
        let cache = self.cache()?;
        cache.begin_user_write(user);
        Some(Writing::User {
            cache,
            user,
            keep,
            id,
        })
    }
    /// Uses a connection manager the application already has.
    pub fn from_connection_manager(manager: ConnectionManager, options: &RedisOptions) -> Self {
        Self::new(Conn::Single(manager), options)
    }

    /// Uses a cluster connection the application already has.
    pub fn from_cluster_connection(conn: ClusterConnection, options: &RedisOptions) -> Self {
        Self::new(Conn::Cluster(conn), options)
    }

    fn new(conn: Conn, options: &RedisOptions) -> Self {
        Self {
            conn,
            prefix: Arc::from(options.prefix.as_str()),
            records: Arc::from(format!("{}s:", options.prefix)),
            indexes: Arc::from(format!("{}u:", options.prefix)),
            scripts: Arc::new(Scripts::new()),
            cached: None,
        }
    }

    /// Whether this store talks to a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.conn, Conn::Cluster(_))
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn record_key(&self, key: &SessionKey) -> String {
        let mut name = String::with_capacity(self.records.len() + 64);
        name.push_str(&self.records);
        key.push_hex(&mut name);
        name
    }

    /// The index member of a record: its key in hex, the tail of its name
    /// (no second hex encoding).
    fn member_of(name: &str) -> &str {
        // SHA-256 in hex.
        &name[name.len() - 64..]
    }

    fn record_prefix(&self) -> &str {
        &self.records
    }

    fn index_prefix(&self) -> &str {
        &self.indexes
    }

    fn index_key(&self, user: &str) -> String {
        let mut name = String::with_capacity(self.indexes.len() + user.len());
        name.push_str(&self.indexes);
        name.push_str(user);
        name
    }

    /// The index prefix standalone scripts use to maintain the index
    /// themselves; empty in cluster mode, where the client does it.
    fn script_index_prefix(&self) -> &str {
        if self.is_cluster() {
            ""
        } else {
            self.index_prefix()
        }
    }

    /// Runs a script call, loading the script first if the server does not
    /// have it (after a restart, a `SCRIPT FLUSH`, or on a new cluster node).
    async fn run<T: FromRedisValue>(&self, call: &Call<'_>) -> Result<T> {
        let cmd = call
            .cmd()
            .map_err(|e| Error::backend(crate::error::BACKEND, e))?;
        let mut conn = self.conn.clone();
        match conn.send(cmd).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                conn.load(call.script()).await.map_err(redis_err)?;
                conn.send(cmd).await
            }
            other => other,
        }
        .map_err(redis_err)
    }

    async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        self.conn.clone().send(cmd).await.map_err(redis_err)
    }

    /// The string under `name`, if any.
    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let mut get = redis::Cmd::with_capacity(2, name.len() + 3);
        self.query(get.arg("GET").arg(name)).await
    }

    /// Cluster: adds `member` to `user`'s index before a write that gives the
    /// record that user and deadline.
    async fn index_add(&self, user: &str, expires_at: Timestamp, member: &str) -> Result<()> {
        let mut inv = self.scripts.index_add.call(0);
        inv.key(self.index_key(user))
            .arg(expires_at.as_millis())
            .arg(member);
        self.run::<i64>(&inv).await.map(drop)
    }

    async fn index_remove(&self, user: &str, member: &str) -> Result<()> {
        self.query::<i64>(redis::cmd("ZREM").arg(self.index_key(user)).arg(member))
            .await
            .map(drop)
    }

    /// Cluster: settles a pending rotation target `name` whose rotation started
    /// from `old`. Returns whether `name` is live now.
    async fn resolve_pending(&self, name: &str, old: &str) -> Result<bool> {
        // Settling writes both keys: announced to the local cache like any
        // write of this process, so no reader here meets the new key live
        // and the old one's record from memory.
        let keys: Vec<SessionKey> = [name, old]
            .into_iter()
            .filter_map(|n| n.get(n.len().checked_sub(64)?..))
            .filter_map(SessionKey::from_hex)
            .collect();
        let _w = self.writing(&keys);
        let seen = self.get(old).await?;
        let tombstone = value::tombstone(name);
        if seen.as_deref() == Some(&tombstone[..]) {
            let mut inv = self.scripts.activate.call(0);
            inv.key(name).arg(old);
            let live: i64 = self.run(&inv).await?;
            let mut clear = self.scripts.clear_tombstone.call(0);
            clear.key(old).arg(tombstone);
            self.run::<i64>(&clear).await?;
            return Ok(live == 1);
        }
        if seen.as_deref().is_some_and(value::is_record) {
            // The old record is still there: the rotation has not committed.
            return Ok(false);
        }
        // The old key is gone and names no successor: either the rotation was
        // abandoned, or it committed, activated and tidied up after our first
        // look. Drop the target only if it is still pending, then look again.
        let mut inv = self.scripts.abort.call(0);
        inv.key(name).arg(old);
        self.run::<i64>(&inv).await?;
        Ok(self.get(name).await?.as_deref().is_some_and(value::is_live))
    }

    /// Reads a record, settling a pending rotation target first (cluster).
    async fn load_resolved(&self, key: &SessionKey) -> Result<Option<Record>> {
        let name = self.record_key(key);
        let mut settled = false;
        loop {
            let Some(v) = self.get(&name).await? else {
                return Ok(None);
            };
            match value::decode(*key, &v)? {
                Stored::Live(r) => return Ok(Some(r)),
                Stored::Tombstone { .. } | Stored::Revoked => return Ok(None),
                Stored::Pending { old } => {
                    if settled || !self.resolve_pending(&name, &old).await? {
                        return Ok(None);
                    }
                    settled = true;
                }
            }
        }
    }

    /// Settles `name` if it is a pending rotation target; `false` if it turned
    /// out not to be live.
    async fn settle(&self, name: &str) -> Result<bool> {
        let Some(v) = self.get(name).await? else {
            return Ok(true);
        };
        match value::pending_from(&v) {
            Some(old) => self.resolve_pending(name, old).await,
            None => Ok(true),
        }
    }

    /// Runs a write script on the record `name` that may answer `PENDING`
    /// (cluster), settling the pending state and retrying.
    async fn write_settling<'s, T, F>(&'s self, name: &str, attempt: F) -> Result<T>
    where
        F: Fn() -> Call<'s>,
        T: FromRedisValue + Pending,
    {
        for _ in 0..3 {
            let reply: T = self.run(&attempt()).await?;
            if !reply.is_pending() {
                return Ok(reply);
            }
            if !self.settle(name).await? {
                return Ok(T::not_found());
            }
        }
        Err(unexpected("a write on a pending record", "still pending"))
    }

    async fn rotate_standalone(
        &self,
        old_key: &SessionKey,
        r: &Record,
        expected: u64,
    ) -> Result<()> {
        let (old_name, new_name) = (self.record_key(old_key), self.record_key(&r.key));
        let mut inv = self.scripts.rotate.call(r.data.len());
        inv.key(&old_name)
            .key(&new_name)
            .arg(value::encode(r, None)?)
            .arg(pxat(r.expires_at))
            .arg(&expected.to_be_bytes()[..])
            .arg(&r.id.to_bytes()[..])
            .arg(Self::member_of(&new_name))
            .arg(self.index_prefix())
            .arg(user_flag(r))
            .arg(r.user.as_deref().unwrap_or(""))
            .arg(Self::member_of(&old_name));
        let status: String = self.run(&inv).await?;
        status_to_result(&status, "rotate")
    }

    async fn rotate_cluster(&self, old_key: &SessionKey, r: &Record, expected: u64) -> Result<()> {
        let (old_name, new_name) = (self.record_key(old_key), self.record_key(&r.key));
        if let Some(user) = &r.user {
            self.index_add(user, r.expires_at, Self::member_of(&new_name))
                .await?;
        }
        let mut prepare = self.scripts.prepare.call(r.data.len());
        prepare
            .key(&new_name)
            .arg(value::encode(r, Some(&old_name))?)
            .arg(pxat(r.expires_at));
        let status: String = self.run(&prepare).await?;
        status_to_result(&status, "rotate (prepare)")?;

        let tombstone = value::tombstone(&new_name);
        let mut outcome = None;
        for _ in 0..3 {
            let mut commit = self.scripts.commit.call(0);
            commit
                .key(&old_name)
                .arg(&expected.to_be_bytes()[..])
                .arg(&r.id.to_bytes()[..])
                .arg(&tombstone[..])
                .arg(pxat(r.expires_at));
            let (status, old_user): (String, Option<String>) = self.run(&commit).await?;
            if status == "PENDING" {
                // The old key is itself an unsettled rotation target.
                self.settle(&old_name).await?;
                continue;
            }
            outcome = Some((status, old_user));
            break;
        }
        let (status, old_user) =
            outcome.ok_or_else(|| unexpected("rotate (commit)", "still pending"))?;
        if status != "OK" {
            let mut abort = self.scripts.abort.call(0);
            abort.key(&new_name).arg(&old_name);
            self.run::<i64>(&abort).await?;
            return status_to_result(&status, "rotate (commit)");
        }
        // Committed: make the new key live, then tidy up.
        let mut activate = self.scripts.activate.call(0);
        activate.key(&new_name).arg(&old_name);
        let live: i64 = self.run(&activate).await?;
        let mut clear = self.scripts.clear_tombstone.call(0);
        clear.key(&old_name).arg(&tombstone[..]);
        self.run::<i64>(&clear).await?;
        if let Some(user) = old_user {
            self.index_remove(&user, Self::member_of(&old_name)).await?;
        }
        if live == 1 {
            Ok(())
        } else {
            // Revoked between the commit and the activation.
            Err(Error::NotFound)
        }
    }

    async fn list_cluster(&self, user: &str) -> Result<Vec<Record>> {
        let mut inv = self.scripts.index_read.call(0);
        inv.key(self.index_key(user));
        let members: Vec<String> = self.run(&inv).await?;
        let keys: Vec<SessionKey> = members
            .iter()
            .filter_map(|m| SessionKey::from_hex(m))
            .collect();
        let mut mine = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(64) {
            let found = try_join_all(chunk.iter().map(|k| self.load_resolved(k))).await?;
            mine.extend(
                found
                    .into_iter()
                    .flatten()
                    .filter(|r| r.user.as_deref() == Some(user)),
            );
        }
        // One by one: a rotation that commits between two reads can show
        // both its keys.
        Ok(newest_per_session(mine))
    }

    async fn list_standalone(&self, user: &str) -> Result<Vec<Record>> {
        let mut inv = self.scripts.list_user.call(0);
        inv.key(self.index_key(user))
            .arg(self.record_prefix())
            .arg(user);
        let flat: Vec<Vec<u8>> = self.run(&inv).await?;
        let mut out = Vec::with_capacity(flat.len() / 2);
        for pair in flat.chunks_exact(2) {
            let key = std::str::from_utf8(&pair[0])
                .ok()
                .and_then(SessionKey::from_hex)
                .ok_or_else(|| Error::decode("redis index member"))?;
            // The script checked the kind and the user; data it could not
            // see into that does not decode is skipped, as a damaged record.
            if let Ok(Stored::Live(r)) = value::decode(key, &pair[1]) {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Cluster: deletes the user's records one script each, in passes, until
    /// a pass finds no index entry it has not already dealt with.
    ///
    /// Why that is enough: every key a session ever goes live under is in the
    /// index before it goes live, and a rotation commits only while its old
    /// key is live. A session that rotates away during a pass therefore leaves
    /// its new key in the index for the next pass. A key a pass finds empty
    /// (its rotation or create has written the index entry but not yet the
    /// record) gets a revoked marker that makes the later write fail, so it
    /// cannot go live behind the pass's back. Once a pass sees nothing new,
    /// no session of the user can still be live, and no in-flight rotation
    /// can commit. The count is of distinct sessions (ids), so a session
    /// caught under both its old and its pending new key counts once.
    async fn delete_user_cluster(&self, user: &str, keep: Option<&SessionKey>) -> Result<u64> {
        const MAX_PASSES: usize = 64;
        let keep = keep.map(SessionKey::to_hex);
        let mut seen: HashSet<String> = HashSet::new();
        let mut revoked: HashSet<Vec<u8>> = HashSet::new();
        for _ in 0..MAX_PASSES {
            let mut inv = self.scripts.index_read.call(0);
            inv.key(self.index_key(user)).arg("WITHSCORES");
            let scored: Vec<(String, f64)> = self.run(&inv).await?;
            let fresh: Vec<(String, f64)> = scored
                .into_iter()
                .filter(|(m, _)| Some(m) != keep.as_ref() && !seen.contains(m))
                .collect();
            if fresh.is_empty() {
                return Ok(revoked.len() as u64);
            }
            for chunk in fresh.chunks(64) {
                let ids = try_join_all(chunk.iter().map(|(member, deadline)| async move {
                    let Some(key) = SessionKey::from_hex(member) else {
                        return Ok::<Option<Vec<u8>>, Error>(None);
                    };
                    // Scores are whole milliseconds, well within f64.
                    let until = pxat(Timestamp::from_millis(*deadline as i64));
                    let mut inv = self.scripts.delete_if_user.call(0);
                    inv.key(self.record_key(&key)).arg(user).arg(until);
                    let id: Option<Vec<u8>> = self.run(&inv).await?;
                    if id.is_some() {
                        self.index_remove(user, member).await?;
                    }
                    Ok(id)
                }))
                .await?;
                revoked.extend(ids.into_iter().flatten());
            }
            seen.extend(fresh.into_iter().map(|(m, _)| m));
        }
        Err(Error::transient(
            crate::error::BACKEND,
            format!("delete_user({user:?}) did not settle after {MAX_PASSES} passes"),
        ))
    }
}

/// What [`RedisStore::end_if_id`] found under one index member.
enum Visit {
    /// The session was there (or its rotation target) and is deleted now.
    Deleted,
    /// The key holds nothing yet: an in-flight create or rotation target,
    /// or a leftover entry. Look again in the next pass.
    Empty,
    /// Another session, or a former key whose successor was looked at.
    Settled,
}

impl RedisStore {
    /// Cluster: ends the record `name` if it is `id`'s, following a
    /// rotation's tombstone to the key the session moved to.
    async fn end_if_id(&self, mut name: String, user: &str, id: &[u8]) -> Result<Visit> {
        /// Tombstones to follow: more would mean a session rotating faster
        /// than this loop can walk; the next pass finds it from the index.
        const HOPS: usize = 8;
        for hop in 0..HOPS {
            let mut inv = self.scripts.delete_if_id.call(0);
            inv.key(&name).arg(user).arg(id);
            let (status, link): (String, Option<String>) = self.run(&inv).await?;
            match (status.as_str(), link) {
                ("DELETED", _) => {
                    self.index_remove(user, Self::member_of(&name)).await?;
                    return Ok(Visit::Deleted);
                }
                ("PENDING", Some(old)) => {
                    // A rotation target of the session: the rotation's old
                    // key goes too, so an uncommitted rotation cannot leave
                    // the session live there.
                    let mut inv = self.scripts.delete_if_id.call(0);
                    inv.key(&old).arg(user).arg(id);
                    self.run::<(String, Option<String>)>(&inv).await?;
                    self.index_remove(user, Self::member_of(&name)).await?;
                    return Ok(Visit::Deleted);
                }
                ("MOVED", Some(next)) => name = next,
                ("EMPTY", _) if hop == 0 => return Ok(Visit::Empty),
                _ => return Ok(Visit::Settled),
            }
        }
        Ok(Visit::Settled)
    }

    /// Cluster: `delete_id` in passes over the user's index.
    ///
    /// Why a `false` is truthful: every key a session goes live under is in
    /// the index before it goes live, a rotation commits only while its old
    /// key is live, and a committed rotation leaves a tombstone naming the
    /// new key until that key is live. So a live session is, at any moment,
    /// under an indexed key that holds it, or behind a tombstone that leads
    /// to it. A pass that finds it deletes it; a pass can only miss it if it
    /// moved meanwhile, which adds an index entry or changes what a key
    /// holds. The search ends with `false` only after a pass in which
    /// nothing changed: no new index entry, and every key that held nothing
    /// still holds nothing.
    async fn delete_id_cluster(&self, user: &str, id: SessionId) -> Result<bool> {
        const MAX_PASSES: usize = 64;
        let id = id.to_bytes();
        let mut settled: HashSet<String> = HashSet::new();
        let mut was_empty: Option<Vec<String>> = None;
        for _ in 0..MAX_PASSES {
            let mut inv = self.scripts.index_read.call(0);
            inv.key(self.index_key(user));
            let members: Vec<String> = self.run(&inv).await?;
            let mut open: Vec<String> = members
                .into_iter()
                .filter(|m| !settled.contains(m) && SessionKey::from_hex(m).is_some())
                .collect();
            open.sort_unstable();
            let mut empty = Vec::new();
            for chunk in open.chunks(64) {
                let visits = try_join_all(chunk.iter().map(|m| {
                    let name = format!("{}{m}", self.record_prefix());
                    self.end_if_id(name, user, &id)
                }))
                .await?;
                for (m, visit) in chunk.iter().zip(visits) {
                    match visit {
                        Visit::Deleted => return Ok(true),
                        Visit::Empty => empty.push(m.clone()),
                        Visit::Settled => {
                            settled.insert(m.clone());
                        }
                    }
                }
            }
            if was_empty.as_ref() == Some(&empty) && empty.len() == open.len() {
                return Ok(false);
            }
            was_empty = Some(empty);
        }
        Err(Error::transient(
            crate::error::BACKEND,
            format!(
                "delete_id did not settle after {MAX_PASSES} passes (the session keeps moving)"
            ),
        ))
    }
}

/// Replies of write scripts that can ask the client to settle a pending
/// rotation target first.
trait Pending {
    fn is_pending(&self) -> bool;
    fn not_found() -> Self;
}

impl Pending for String {
    fn is_pending(&self) -> bool {
        self == "PENDING"
    }
    fn not_found() -> Self {
        "NOTFOUND".to_owned()
    }
}

impl Pending for (Value, Option<String>) {
    fn is_pending(&self) -> bool {
        matches!(&self.0, Value::BulkString(b) if b == b"PENDING")
            || matches!(&self.0, Value::SimpleString(s) if s == "PENDING")
    }
    fn not_found() -> Self {
        (Value::Int(0), None)
    }
}

fn status_to_result(status: &str, what: &str) -> Result<()> {
    match status {
        "OK" => Ok(()),
        // REVOKED: the user's sessions were revoked while this one rotated.
        "NOTFOUND" | "REVOKED" => Err(Error::NotFound),
        "CONFLICT" => Err(Error::Conflict),
        "EXISTS" => Err(Error::AlreadyExists),
        "BADID" => Err(Error::InvalidInput(
            "rotate must keep the session id of the old record".into(),
        )),
        other => Err(unexpected(what, other)),
    }
}

/// A write this process has under way, announced to the local cache.
enum Writing<'a> {
    Keys(&'a Cache, &'a [SessionKey]),
    User {
        cache: &'a Cache,
        user: &'a str,
        keep: Option<&'a SessionKey>,
        id: Option<SessionId>,
    },
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        match self {
            Self::Keys(cache, keys) => cache.end_write(keys),
            Self::User {
                cache,
                user,
                keep,
                id,
            } => cache.end_user_write(user, |r| {
                r.user.as_deref() == Some(*user)
                    && *keep != Some(&r.key)
                    && id.is_none_or(|id| id == r.id)
            }),
        }
    }
}

/// The store's operations on Redis itself; [`SessionStore`] adds the local
/// cache around them.
impl RedisStore {
    async fn create_on_server(&self, record: &Record) -> Result<()> {
        record.check_create()?;
        let name = self.record_key(&record.key);
        let value = value::encode(record, None)?;
        let member = Self::member_of(&name);
        // Standalone keeps the index in the same script as the record.
        let index_here = !self.is_cluster() && record.user.is_some();
        if let (true, Some(user)) = (self.is_cluster(), &record.user) {
            self.index_add(user, record.expires_at, member).await?;
        }
        if !index_here {
            // The common case is a free key: one plain command.
            // Sized up front: growing the command while adding the value
            // reallocates it about five times.
            let mut set = redis::Cmd::with_capacity(6, name.len() + value.len() + 32);
            set.arg("SET")
                .arg(&name)
                .arg(&value)
                .arg("NX")
                .arg("PXAT")
                .arg(pxat(record.expires_at));
            let set: Option<String> = self.query(&set).await?;
            if set.is_some() {
                return Ok(());
            }
        }
        // Something is there (a live record, a tombstone, a value of another
        // kind), or the index must be kept in step: decide on the server.
        let mut inv = self.scripts.create.call(value.len());
        inv.key(&name)
            .arg(value)
            .arg(pxat(record.expires_at))
            .arg(member)
            .arg(if index_here { self.index_prefix() } else { "" })
            .arg(record.user.as_deref().unwrap_or(""));
        let status: String = self.run(&inv).await?;
        status_to_result(&status, "create")
    }

    async fn load_on_server(&self, key: &SessionKey) -> Result<Option<Record>> {
        if self.is_cluster() {
            // Boxed: inline, the cluster path's state would more than double
            // the size of every load's future.
            return Box::pin(self.load_resolved(key)).await;
        }
        let Some(v) = self.get(&self.record_key(key)).await? else {
            return Ok(None);
        };
        match value::decode(*key, &v)? {
            Stored::Live(r) => Ok(Some(r)),
            Stored::Pending { .. } | Stored::Tombstone { .. } | Stored::Revoked => Ok(None),
        }
    }

    async fn update_on_server(&self, record: &Record, expected_version: u64) -> Result<()> {
        record.check_update(expected_version)?;
        let name = self.record_key(&record.key);
        let member = Self::member_of(&name);
        if let (true, Some(user)) = (self.is_cluster(), &record.user) {
            self.index_add(user, record.expires_at, member).await?;
        }
        let value = value::encode(record, None)?;
        let index_prefix = self.script_index_prefix();
        let script = &self.scripts.update;
        let status: String = self
            .write_settling(&name, || {
                let mut inv = script.call(value.len());
                inv.key(&name)
                    .arg(&value[..])
                    .arg(pxat(record.expires_at))
                    .arg(&expected_version.to_be_bytes()[..])
                    .arg(member)
                    .arg(index_prefix)
                    .arg(user_flag(record))
                    .arg(record.user.as_deref().unwrap_or(""));
                inv
            })
            .await?;
        status_to_result(&status, "update")
    }

    async fn touch_on_server(&self, key: &SessionKey, expires_at: Timestamp) -> Result<()> {
        let name = self.record_key(key);
        let member = Self::member_of(&name);
        let stored = expires_at.as_millis().to_be_bytes();
        if !self.is_cluster() {
            let mut inv = self.scripts.touch.call(0);
            inv.key(&name)
                .arg(&stored[..])
                .arg(pxat(expires_at))
                .arg(member)
                .arg(self.index_prefix())
                .arg("");
            let status: String = self.run(&inv).await?;
            return status_to_result(&status, "touch");
        }
        // Cluster: raise the index entry of the record's user first, and only
        // touch if the user is still the one whose entry was raised.
        for _ in 0..8 {
            let Some(current) = self.load_resolved(key).await? else {
                return Err(Error::NotFound);
            };
            let expect = match &current.user {
                Some(user) => {
                    self.index_add(user, expires_at, member).await?;
                    format!("={user}")
                }
                None => "-".to_owned(),
            };
            let mut inv = self.scripts.touch.call(0);
            inv.key(&name)
                .arg(&stored[..])
                .arg(pxat(expires_at))
                .arg(member)
                .arg("")
                .arg(expect);
            let status: String = self.run(&inv).await?;
            match status.as_str() {
                "RETRY" | "PENDING" => continue,
                other => return status_to_result(other, "touch"),
            }
        }
        Err(Error::Conflict)
    }

    async fn rotate_on_server(
        &self,
        old_key: &SessionKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<()> {
        record.check_rotate(old_key, expected_version)?;
        if self.is_cluster() {
            self.rotate_cluster(old_key, record, expected_version).await
        } else {
            self.rotate_standalone(old_key, record, expected_version)
                .await
        }
    }

    async fn delete_on_server(&self, key: &SessionKey) -> Result<bool> {
        let name = self.record_key(key);
        let member = Self::member_of(&name);
        if !self.is_cluster() {
            // No pending records without a cluster: take the record with it.
            let taken = self
                .query::<Option<Vec<u8>>>(redis::cmd("GETDEL").arg(&name))
                .await;
            let Some(v) = (match taken {
                // A value of another type (an older layout): it goes all the
                // same, so that logging out always works.
                Err(Error::Decode { .. }) => {
                    self.query::<i64>(redis::cmd("DEL").arg(&name)).await?;
                    return Ok(true);
                }
                other => other?,
            }) else {
                return Ok(false);
            };
            return match value::decode(*key, &v) {
                Ok(Stored::Live(r)) => {
                    if let Some(user) = &r.user {
                        // A step behind the record, which is harmless: index
                        // readers skip and prune entries whose record is gone.
                        self.index_remove(user, member).await?;
                    }
                    Ok(true)
                }
                Ok(_) => Ok(false),
                // A damaged record was there and is gone now.
                Err(_) => Ok(true),
            };
        }
        let script = &self.scripts.delete;
        let (status, user): (Value, Option<String>) = self
            .write_settling(&name, || {
                let mut inv = script.call(0);
                inv.key(&name);
                inv
            })
            .await?;
        let deleted = matches!(status, Value::Int(1));
        if let (true, Some(user)) = (deleted, user) {
            self.index_remove(&user, member).await?;
        }
        Ok(deleted)
    }

    async fn list_user_on_server(&self, user: &str) -> Result<Vec<Record>> {
        if self.is_cluster() {
            self.list_cluster(user).await
        } else {
            self.list_standalone(user).await
        }
    }

    async fn delete_user_on_server(&self, user: &str, keep: Option<&SessionKey>) -> Result<u64> {
        if self.is_cluster() {
            return self.delete_user_cluster(user, keep).await;
        }
        let mut inv = self.scripts.delete_user.call(0);
        inv.key(self.index_key(user))
            .arg(self.record_prefix())
            .arg(user)
            .arg(keep.map(SessionKey::to_hex).unwrap_or_default());
        let n: i64 = self.run(&inv).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn delete_id_on_server(&self, user: &str, id: SessionId) -> Result<bool> {
        if self.is_cluster() {
            return self.delete_id_cluster(user, id).await;
        }
        let mut inv = self.scripts.delete_id.call(0);
        inv.key(self.index_key(user))
            .arg(self.record_prefix())
            .arg(user)
            .arg(&id.to_bytes()[..]);
        let n: i64 = self.run(&inv).await?;
        Ok(n == 1)
    }

    /// Nothing to do: see [`SessionStore::purge_expired`] below.
    async fn purge_expired_on_server(&self) -> Result<u64> {
        Ok(0)
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn create(&self, record: &Record) -> Result<()> {
        let _w = self.writing(std::slice::from_ref(&record.key));
        self.create_on_server(record).await
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        let Some(cache) = self.cache() else {
            return self.load_on_server(key).await;
        };
        match cache.lookup(key, Timestamp::now()) {
            Lookup::Hit(record) => Ok(Some(record)),
            Lookup::Bypass => self.load_on_server(key).await,
            Lookup::Fill(ticket) => {
                let loaded = self.load_on_server(key).await;
                cache.fill(key, ticket, loaded.as_ref().ok().and_then(Option::as_ref));
                loaded
            }
        }
    }

    async fn update(&self, record: &Record, expected_version: u64) -> Result<()> {
        // The entry goes also on `Conflict`: the next load reads Redis, not
        // a stale copy.
        let _w = self.writing(std::slice::from_ref(&record.key));
        self.update_on_server(record, expected_version).await
    }

    async fn touch(&self, key: &SessionKey, expires_at: Timestamp) -> Result<()> {
        let _w = self.writing(std::slice::from_ref(key));
        self.touch_on_server(key, expires_at).await
    }

    async fn rotate(
        &self,
        old_key: &SessionKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<()> {
        let keys = [*old_key, record.key];
        let _w = self.writing(&keys);
        self.rotate_on_server(old_key, record, expected_version)
            .await
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool> {
        let _w = self.writing(std::slice::from_ref(key));
        self.delete_on_server(key).await
    }

    async fn list_user(&self, user: &str) -> Result<Vec<Record>> {
        self.list_user_on_server(user).await
    }

    async fn delete_user(&self, user: &str, keep: Option<&SessionKey>) -> Result<u64> {
        let _w = self.writing_user(user, keep, None);
        self.delete_user_on_server(user, keep).await
    }

    async fn delete_id(&self, user: &str, id: SessionId) -> Result<bool> {
        let _w = self.writing_user(user, None, Some(id));
        self.delete_id_on_server(user, id).await
    }

    /// Redis expires records itself (`PEXPIREAT`) and prunes index entries as
    /// it reads them; index sets expire with their longest-lived entry. There
    /// is nothing left to remove, so this returns 0 without a round trip.
    async fn purge_expired(&self) -> Result<u64> {
        self.purge_expired_on_server().await
    }
}
