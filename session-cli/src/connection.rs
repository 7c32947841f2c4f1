//! [`Connection`] to the store a [`StoreUrl`] names, and the [`Isolated`]
//! namespaces `sessionctl check` runs each case in.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use redis::{RedisError, Value};
use session_core::{Error, MemoryStore, Result, SessionStore, SessionToken};
use session_redis::{RedisOptions, RedisStore};
use session_sled::{SledOptions, SledStore};
use session_sqlx::PostgresStore;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool, Row};

use crate::stats::Stats;
use crate::url::{invalid, StoreUrl};

/// Connections in the pool of one case's PostgreSQL namespace.
const CASE_POOL_CONNECTIONS: u32 = 2;

/// A random hex tag for namespaces: 16 hex digits from the OS CSPRNG.
fn random_tag() -> String {
    SessionToken::generate().key().to_hex()[..16].to_owned()
}

/// An open connection to the store a [`StoreUrl`] names: a sled database, a
/// PostgreSQL pool, or a Redis connection (standalone or cluster). Cheap to
/// clone; clones share the connection.
///
/// It hands out [isolated namespaces](Self::isolated) for checks,
/// [the store in its default namespace](Self::store) for admin commands, and
/// [statistics](Self::stats).
#[derive(Clone)]
pub struct Connection {
    url: StoreUrl,
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Memory,
    Sled(sled::Db),
    /// The store in `public.sessions` (not migrated by `connect`).
    Postgres(PostgresStore),
    Redis(RedisAdmin),
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Opens what `url` names; see [`StoreUrl::connect`].
    pub(crate) async fn new(url: &StoreUrl) -> Result<Self> {
        let inner = match url {
            StoreUrl::Memory => Inner::Memory,
            StoreUrl::Sled(path) => Inner::Sled(
                sled::Config::new()
                    .path(path)
                    .open()
                    .map_err(|e| Error::backend("sled", e))?,
            ),
            StoreUrl::Postgres(_) => Inner::Postgres(
                url.postgres_store()
                    .await?
                    .expect("a Postgres URL gives a Postgres store"),
            ),
            StoreUrl::Redis(_) | StoreUrl::RedisCluster(_) => {
                Inner::Redis(RedisAdmin::connect(url).await?)
            }
        };
        Ok(Self {
            url: url.clone(),
            inner,
        })
    }

    /// The URL this connection was opened from.
    pub fn url(&self) -> &StoreUrl {
        &self.url
    }

    /// A store in a fresh, random namespace: a new [`MemoryStore`]; sled trees
    /// `sessionctl-check-<hex>.*` in this database; a PostgreSQL schema
    /// `sessionctl_check_<hex>` (created and migrated, with a pool of its
    /// own of at most two connections); a Redis key prefix `sessionctl-check:<hex>:`.
    pub async fn isolated(&self) -> Result<Isolated> {
        let tag = random_tag();
        match &self.inner {
            Inner::Memory => Ok(Isolated {
                store: Arc::new(MemoryStore::new()),
                namespace: "memory".to_owned(),
                cleanup: Cleanup::Nothing,
            }),
            Inner::Sled(db) => {
                let namespace = format!("sessionctl-check-{tag}");
                let store = SledStore::from_db(
                    db.clone(),
                    SledOptions::default().namespace(namespace.clone()),
                )?;
                Ok(Isolated {
                    store: Arc::new(store),
                    namespace,
                    cleanup: Cleanup::Sled(db.clone()),
                })
            }
            Inner::Postgres(_) => {
                let schema = format!("sessionctl_check_{tag}");
                // A small pool per namespace, closed by `cleanup`: cases
                // running side by side do not wait for each other's
                // connections, and four of them at a time stay within what
                // a small pooler serves (every call is one statement, so
                // no transaction is held open across awaits).
                let store = self
                    .url
                    .postgres_store_with(
                        PgPoolOptions::new().max_connections(CASE_POOL_CONNECTIONS),
                    )
                    .await?
                    .expect("a Postgres connection comes from a Postgres URL")
                    .with_schema(&schema)?;
                let pool = store.pool().clone();
                if let Err(e) = store.migrate().await {
                    let _ = drop_schema(&pool, &schema).await;
                    pool.close().await;
                    return Err(e);
                }
                Ok(Isolated {
                    store: Arc::new(store),
                    namespace: schema,
                    cleanup: Cleanup::Postgres(pool),
                })
            }
            Inner::Redis(admin) => {
                let prefix = format!("sessionctl-check:{tag}:");
                let options = RedisOptions::default().prefix(prefix.clone());
                let store = match &self.url {
                    StoreUrl::RedisCluster(nodes) => {
                        let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
                        RedisStore::connect_cluster(&nodes, options).await?
                    }
                    StoreUrl::Redis(url) => RedisStore::connect(url, options).await?,
                    _ => unreachable!("a Redis connection comes from a Redis URL"),
                };
                Ok(Isolated {
                    store: Arc::new(store),
                    namespace: prefix,
                    cleanup: Cleanup::Redis(admin.clone()),
                })
            }
        }
    }

    /// The store in its default namespace, as an application using
    /// [`StoreUrl::open`] sees it, for inspecting and administering live
    /// sessions. Unlike `open`, it never creates or migrates a PostgreSQL
    /// table: a database without `public.sessions` is an
    /// [`Error::InvalidInput`].
    pub async fn store(&self) -> Result<Arc<dyn SessionStore>> {
        Ok(match &self.inner {
            Inner::Memory => Arc::new(MemoryStore::new()),
            Inner::Sled(db) => Arc::new(SledStore::from_db(db.clone(), SledOptions::default())?),
            Inner::Postgres(store) => {
                require_table(store).await?;
                Arc::new(store.clone())
            }
            Inner::Redis(_) => self.url.open().await?,
        })
    }

    /// Creates or migrates the session table in the default namespace
    /// ([`PostgresStore::migrate`]; run it as the table's owner) and returns
    /// the table's name; `None` for backends that have no schema to
    /// migrate.
    pub async fn migrate(&self) -> Result<Option<String>> {
        match &self.inner {
            Inner::Postgres(store) => {
                store.migrate().await?;
                Ok(Some(store.table_name()))
            }
            _ => Ok(None),
        }
    }

    /// Deletes every session in the default namespace, of every user and
    /// anonymous ones too ("log everyone out"), and returns how many records
    /// were deleted (expired ones not yet purged included). sled clears the
    /// namespace's trees, PostgreSQL runs `DELETE` on the table, Redis
    /// deletes every key under the prefix on every master node. Requests in
    /// flight may still write their session back; run it again after a
    /// deploy that must not see them.
    pub async fn revoke_all(&self) -> Result<u64> {
        match &self.inner {
            Inner::Memory => Ok(0),
            Inner::Sled(db) => {
                SledStore::from_db(db.clone(), SledOptions::default())?
                    .clear()
                    .await
            }
            Inner::Postgres(store) => {
                require_table(store).await?;
                let table = store.table_name();
                let done = sqlx::raw_sql(AssertSqlSafe(format!("DELETE FROM {table}")))
                    .execute(store.pool())
                    .await
                    .map_err(|e| Error::backend("postgres", e))?;
                Ok(done.rows_affected())
            }
            Inner::Redis(admin) => {
                let prefix = default_redis_prefix(admin);
                // One scan: every key under the prefix goes; the records
                // (`<prefix>s:…`) are the count.
                let all = admin.scan(&format!("{}*", glob_escape(&prefix))).await?;
                let record_prefix = format!("{prefix}s:");
                let records = all
                    .iter()
                    .filter(|k| k.starts_with(record_prefix.as_bytes()))
                    .count();
                admin.delete(&all).await?;
                Ok(records as u64)
            }
        }
    }

    /// Backend-specific numbers about the default namespace (see [`Stats`]).
    pub async fn stats(&self) -> Result<Stats> {
        match &self.inner {
            Inner::Memory => Ok(Stats::memory()),
            Inner::Sled(db) => {
                let store = SledStore::from_db(db.clone(), SledOptions::default())?;
                let path = match &self.url {
                    StoreUrl::Sled(p) => p.display().to_string(),
                    _ => String::new(),
                };
                Ok(Stats::sled(path, &store.check_indexes()?))
            }
            Inner::Postgres(store) => {
                require_table(store).await?;
                let table = store.table_name();
                let pg = |e| Error::backend("postgres", e);
                let row = sqlx::raw_sql(AssertSqlSafe(format!(
                    "SELECT count(*) FILTER (WHERE expires_at > now()), \
                            count(*) FILTER (WHERE expires_at <= now()), \
                            count(DISTINCT \"user\") FILTER (WHERE expires_at > now()) \
                     FROM {table}"
                )))
                .fetch_one(store.pool())
                .await
                .map_err(pg)?;
                let live: i64 = row.try_get(0).map_err(pg)?;
                let expired: i64 = row.try_get(1).map_err(pg)?;
                let users: i64 = row.try_get(2).map_err(pg)?;
                Ok(Stats::postgres(table, live, expired, users))
            }
            Inner::Redis(admin) => {
                let prefix = default_redis_prefix(admin);
                let prefix = prefix.as_str();
                let nodes = admin.masters().await?;
                let records = admin.scan(&format!("{}s:*", glob_escape(prefix))).await?;
                let indexes = admin.scan(&format!("{}u:*", glob_escape(prefix))).await?;
                let policies = admin.eviction_policies(&self.url).await?;
                Ok(Stats::redis(
                    self.url.backend(),
                    prefix,
                    nodes.len(),
                    records.len() as u64,
                    indexes.len() as u64,
                    &policies,
                ))
            }
        }
    }
}

/// The Redis key prefix an application gets with default options.
fn default_redis_prefix(admin: &RedisAdmin) -> String {
    let store = match admin {
        RedisAdmin::Single(c) => {
            RedisStore::from_connection_manager(c.clone(), &RedisOptions::default())
        }
        RedisAdmin::Cluster(c) => {
            RedisStore::from_cluster_connection(c.clone(), &RedisOptions::default())
        }
    };
    store.prefix().to_owned()
}

async fn require_table(store: &PostgresStore) -> Result<()> {
    let table = store.table_name();
    // Simple-protocol statements only (here and in the other admin
    // queries), so they also work through a transaction-mode pooler; the
    // name is validated and quoted, and holds no single quote.
    let row = sqlx::raw_sql(AssertSqlSafe(format!(
        "SELECT to_regclass('{table}') IS NOT NULL"
    )))
    .fetch_one(store.pool())
    .await
    .map_err(|e| Error::backend("postgres", e))?;
    let exists: bool = row.try_get(0).map_err(|e| Error::backend("postgres", e))?;
    if exists {
        Ok(())
    } else {
        Err(invalid(format!(
            "this database has no session table {table}; run `sessionctl migrate URL` as the \
             table's owner, or let the application create it (PostgresStore::migrate)"
        )))
    }
}

async fn drop_schema(pool: &PgPool, schema: &str) -> Result<()> {
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(pool)
    .await
    .map(drop)
    .map_err(|e| Error::backend("postgres", e))
}

/// A store in a namespace of its own, from [`StoreUrl::open_isolated`] or
/// [`Connection::isolated`]. Call [`cleanup`](Self::cleanup) when done;
/// dropping it without doing so leaves the namespace behind.
pub struct Isolated {
    store: Arc<dyn SessionStore>,
    namespace: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Nothing,
    Sled(sled::Db),
    Postgres(PgPool),
    Redis(RedisAdmin),
}

impl fmt::Debug for Isolated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Isolated")
            .field("store", &self.store)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Isolated {
    /// The store, confined to this namespace.
    pub fn store(&self) -> Arc<dyn SessionStore> {
        self.store.clone()
    }

    /// The namespace: the sled tree prefix, PostgreSQL schema or Redis key
    /// prefix (`"memory"` for a memory store).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Removes everything in the namespace: drops the sled trees, drops the
    /// PostgreSQL schema with `CASCADE` (and closes its pool), or deletes
    /// every key under the Redis prefix on every master node (found with
    /// `SCAN MATCH`). Nothing outside the namespace is touched.
    pub async fn cleanup(self) -> Result<()> {
        let Self {
            store,
            namespace,
            cleanup,
        } = self;
        drop(store);
        match cleanup {
            Cleanup::Nothing => Ok(()),
            Cleanup::Sled(db) => {
                for tree in ["records", "users", "expiry"] {
                    db.drop_tree(format!("{namespace}.{tree}"))
                        .map_err(|e| Error::backend("sled", e))?;
                }
                db.flush_async()
                    .await
                    .map(drop)
                    .map_err(|e| Error::backend("sled", e))
            }
            Cleanup::Postgres(pool) => {
                let dropped = drop_schema(&pool, &namespace).await;
                pool.close().await;
                dropped
            }
            Cleanup::Redis(admin) => {
                let keys = admin.scan(&format!("{}*", glob_escape(&namespace))).await?;
                admin.delete(&keys).await
            }
        }
    }
}

/// Escapes the glob characters of `SCAN MATCH` in a literal prefix.
fn glob_escape(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len());
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn redis_err(e: RedisError) -> Error {
    session_redis::redis_error(e)
}

/// The user a Redis URL names (`default` when none).
fn redis_user(url: &str) -> String {
    redis::parse_redis_url(url)
        .map(|u| u.username().to_owned())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

/// A plain Redis connection for what the store does not offer: scanning and
/// deleting keys by prefix on every node.
#[derive(Clone)]
enum RedisAdmin {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Keys per `SCAN` step.
const SCAN_COUNT: u32 = 1000;

impl RedisAdmin {
    async fn connect(url: &StoreUrl) -> Result<Self> {
        let connect_timeout = Duration::from_secs(2);
        let response_timeout = Duration::from_secs(10);
        match url {
            StoreUrl::Redis(url) => {
                let client = redis::Client::open(url.as_str())
                    .map_err(|e| invalid(format!("bad Redis URL: {e}")))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(response_timeout))
                    .set_number_of_retries(2);
                let manager = ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(|e| session_redis::connect_error(e, &redis_user(url)))?;
                // A server that wants a password answers NOAUTH only now.
                let mut ping = manager.clone();
                redis::cmd("PING")
                    .query_async::<String>(&mut ping)
                    .await
                    .map_err(|e| session_redis::connect_error(e, &redis_user(url)))?;
                Ok(Self::Single(manager))
            }
            StoreUrl::RedisCluster(nodes) => {
                let client = ClusterClientBuilder::new(nodes.clone())
                    .connection_timeout(connect_timeout)
                    .response_timeout(response_timeout)
                    .retries(3)
                    .build()
                    .map_err(|e| invalid(format!("bad Redis Cluster URL: {e}")))?;
                let user = nodes.first().map(|n| redis_user(n)).unwrap_or_default();
                let conn = client
                    .get_async_connection()
                    .await
                    .map_err(|e| session_redis::connect_error(e, &user))?;
                let mut ping = conn.clone();
                redis::cmd("PING")
                    .query_async::<String>(&mut ping)
                    .await
                    .map_err(|e| session_redis::connect_error(e, &user))?;
                Ok(Self::Cluster(conn))
            }
            _ => unreachable!("only Redis URLs get a Redis connection"),
        }
    }

    /// `maxmemory-policy` of the server, or of each seed node of a cluster,
    /// from `INFO memory` (which managed services allow where `CONFIG GET`
    /// is often refused), as `(node, policy)`; the node is empty for a
    /// standalone server.
    async fn eviction_policies(&self, url: &StoreUrl) -> Result<Vec<(String, String)>> {
        let policy_of = |info: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix("maxmemory_policy:"))
                .map(|p| p.trim().to_owned())
        };
        let mut out = Vec::new();
        match (self, url) {
            (Self::Single(c), _) => {
                let info: String = redis::cmd("INFO")
                    .arg("memory")
                    .query_async(&mut c.clone())
                    .await
                    .map_err(redis_err)?;
                out.extend(policy_of(&info).map(|p| (String::new(), p)));
            }
            (Self::Cluster(_), StoreUrl::RedisCluster(nodes)) => {
                for node in nodes {
                    let client = redis::Client::open(node.as_str())
                        .map_err(|e| invalid(format!("bad Redis URL: {e}")))?;
                    let mut c = client
                        .get_multiplexed_async_connection()
                        .await
                        .map_err(|e| session_redis::connect_error(e, &redis_user(node)))?;
                    let info: String = redis::cmd("INFO")
                        .arg("memory")
                        .query_async(&mut c)
                        .await
                        .map_err(redis_err)?;
                    let shown = StoreUrl::RedisCluster(vec![node.clone()]).to_string();
                    out.extend(policy_of(&info).map(|p| (shown, p)));
                }
            }
            _ => {}
        }
        Ok(out)
    }

    /// The master nodes as `(host, port)`: the one server, or every master of
    /// the cluster as the client's slot map knows it.
    async fn masters(&self) -> Result<Vec<(String, u16)>> {
        let Self::Cluster(conn) = self else {
            return Ok(vec![(String::new(), 0)]);
        };
        let reply = conn
            .clone()
            .route_command(
                redis::cmd("PING"),
                RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
            )
            .await
            .map_err(redis_err)?;
        let Value::Map(replies) = reply else {
            return Err(Error::backend(
                "redis",
                format!("unexpected reply to PING on every master: {reply:?}"),
            ));
        };
        let mut masters = Vec::new();
        for (address, answer) in replies {
            if let Value::ServerError(e) = answer {
                return Err(Error::backend("redis", RedisError::from(e)));
            }
            let address: String = redis::from_redis_value(address)
                .map_err(|e| Error::backend("redis", e.to_string()))?;
            let parsed = address
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)));
            match parsed {
                Some(node) => masters.push(node),
                None => {
                    return Err(Error::backend(
                        "redis",
                        format!("unexpected cluster node address {address:?}"),
                    ))
                }
            }
        }
        if masters.is_empty() {
            return Err(Error::backend("redis", "the cluster reported no masters"));
        }
        Ok(masters)
    }

    /// Every key matching `pattern` on every master.
    async fn scan(&self, pattern: &str) -> Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        for (host, port) in self.masters().await? {
            let mut cursor: u64 = 0;
            loop {
                let mut cmd = redis::cmd("SCAN");
                cmd.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT);
                let (next, batch): (u64, Vec<Vec<u8>>) = match self {
                    Self::Single(conn) => cmd.query_async(&mut conn.clone()).await,
                    Self::Cluster(conn) => {
                        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port,
                        });
                        let value = conn
                            .clone()
                            .route_command(cmd, routing)
                            .await
                            .map_err(redis_err)?;
                        redis::from_redis_value(value).map_err(RedisError::from)
                    }
                }
                .map_err(redis_err)?;
                keys.extend(batch);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// Deletes `keys` (one `UNLINK` per key on a cluster, where keys live in
    /// different slots; batches on a single server).
    async fn delete(&self, keys: &[Vec<u8>]) -> Result<()> {
        match self {
            Self::Single(conn) => {
                for batch in keys.chunks(500) {
                    let _: i64 = redis::cmd("UNLINK")
                        .arg(batch)
                        .query_async(&mut conn.clone())
                        .await
                        .map_err(redis_err)?;
                }
            }
            Self::Cluster(conn) => {
                for key in keys {
                    let _: i64 = redis::cmd("UNLINK")
                        .arg(key)
                        .query_async(&mut conn.clone())
                        .await
                        .map_err(redis_err)?;
                }
            }
        }
        Ok(())
    }
}
