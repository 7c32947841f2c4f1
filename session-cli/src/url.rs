//! [`StoreUrl`]: the one syntax that names a session store, parsed here and
//! nowhere else; [`Connection`] and [`Isolated`] for what `sessionctl` does
//! with it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use session_core::{Error, MemoryStore, Result, SessionStore};
use session_redis::{RedisOptions, RedisStore};
use session_sled::SledStore;
use session_sqlx::{Pooler, PostgresStore};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::connection::{Connection, Isolated};

/// How a store is named on the command line, in configuration and in the
/// demo.
///
/// | URL | store |
/// |---|---|
/// | `memory:` | a new, empty [`MemoryStore`] in this process |
/// | `sled:PATH` | [`SledStore`] in the folder `PATH` (relative to the working directory, or absolute) |
/// | `postgres://…`, `postgresql://…` | [`PostgresStore`] in `public.sessions` |
/// | `redis://…`, `rediss://…`, `redis+unix://…` | [`RedisStore`] on one server, key prefix `session:` |
/// | `redis+cluster://[user:pass@]host:port,host:port` | [`RedisStore`] on a Redis Cluster, key prefix `session:` |
///
/// A PostgreSQL URL takes three query parameters of its own besides sqlx's
/// (`sslmode`, …), all removed before the URL reaches sqlx:
///
/// - `pooler=transaction` for a connection pooler in transaction mode
///   (pgbouncer `pool_mode = transaction`): see [`Pooler`]; `pooler=session`
///   is the default.
/// - `migrate=false`: [`open`](Self::open) does not create or migrate the
///   table, it only [checks](PostgresStore::check_schema) that it is at the
///   version this release needs (for an application role that may not
///   create anything; the owner runs `sessionctl migrate URL`).
///   `migrate=true` is the default.
/// - `call_timeout=2s` (or `500ms`): the bound on every store call and on
///   waiting for a connection (see
///   [`PostgresStore::with_call_timeout`]); `5s` is the default.
///
/// A cluster URL names one or more nodes to discover the cluster from; each
/// becomes a node URL `redis://[user:pass@]host:port` (`rediss+cluster://`
/// gives `rediss://` nodes). Paths, databases and query options are not
/// supported on cluster URLs. `rediss://` needs the `redis` crate's TLS
/// support, which this workspace does not enable: such a URL parses, and
/// opening it fails with an explanation.
///
/// [`Display`](fmt::Display) and [`Debug`] never print a password: the
/// password part of the user info and any password-like query parameter
/// (`password=`, …) are shown as `***`, and parse errors never quote the
/// input.
///
/// ```
/// use session_cli::StoreUrl;
///
/// let url = StoreUrl::parse("redis+cluster://app:secret@10.0.0.1:7000,10.0.0.2:7000")?;
/// assert_eq!(
///     url,
///     StoreUrl::RedisCluster(vec![
///         "redis://app:secret@10.0.0.1:7000".into(),
///         "redis://app:secret@10.0.0.2:7000".into(),
///     ])
/// );
/// assert_eq!(url.to_string(), "redis+cluster://app:***@10.0.0.1:7000,10.0.0.2:7000");
/// assert!(StoreUrl::parse("mysql://db").is_err());
/// # Ok::<(), session_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `memory:`: a new, empty in-process store. Nothing is shared with other
    /// processes, nothing survives this one.
    Memory,
    /// `sled:PATH`: an embedded sled database in the folder `PATH`.
    Sled(PathBuf),
    /// `postgres://…` or `postgresql://…`: the URL as given.
    Postgres(String),
    /// `redis://…`, `rediss://…` or `redis+unix://…`: the URL as given.
    Redis(String),
    /// `redis+cluster://host:port,…`: one node URL (`redis://host:port`) per
    /// listed node.
    RedisCluster(Vec<String>),
}

pub(crate) fn invalid(why: impl Into<String>) -> Error {
    Error::InvalidInput(why.into())
}

const FORMS: &str = "memory:, sled:PATH, postgres://…, redis://…, rediss://… or \
                     redis+cluster://host:port,host:port";

impl StoreUrl {
    /// Parses a store URL.
    ///
    /// Errors are [`Error::InvalidInput`] with a message that says what is
    /// wrong and never repeats the input (which may hold a password).
    pub fn parse(text: &str) -> Result<Self> {
        let Some((scheme, rest)) = text.split_once(':') else {
            return Err(invalid(format!(
                "a store URL starts with a scheme; expected one of {FORMS}"
            )));
        };
        match scheme {
            "memory" => {
                if rest.is_empty() || rest == "//" {
                    Ok(Self::Memory)
                } else {
                    Err(invalid("memory: takes nothing after the colon"))
                }
            }
            "sled" => {
                if rest.trim().is_empty() {
                    Err(invalid(
                        "sled: needs the path of a folder, e.g. sled:./sessions",
                    ))
                } else {
                    Ok(Self::Sled(PathBuf::from(rest)))
                }
            }
            "postgres" | "postgresql" => {
                if !rest.starts_with("//") {
                    return Err(invalid(format!(
                        "a PostgreSQL URL looks like {scheme}://user:pass@host:5432/database"
                    )));
                }
                postgres_settings(text)?;
                Ok(Self::Postgres(text.to_owned()))
            }
            "redis" | "rediss" | "redis+unix" => {
                if !rest.starts_with("//") {
                    return Err(invalid(format!(
                        "a Redis URL looks like {scheme}://[user:pass@]host[:port][/db]"
                    )));
                }
                if redis::parse_redis_url(text).is_none() {
                    return Err(invalid("bad Redis URL"));
                }
                Ok(Self::Redis(text.to_owned()))
            }
            "redis+cluster" => parse_cluster("redis", rest).map(Self::RedisCluster),
            "rediss+cluster" => parse_cluster("rediss", rest).map(Self::RedisCluster),
            _ if scheme.is_empty() || scheme.contains(['/', '\\', '.']) => Err(invalid(format!(
                "a store URL starts with a scheme; expected one of {FORMS}"
            ))),
            _ => Err(invalid(format!(
                "unknown store URL scheme {scheme:?}; expected one of {FORMS}"
            ))),
        }
    }

    /// The kind of backend, for messages: `"memory"`, `"sled"`,
    /// `"postgres"`, `"redis"` or `"redis-cluster"`.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Sled(_) => "sled",
            Self::Postgres(_) => "postgres",
            Self::Redis(_) => "redis",
            Self::RedisCluster(_) => "redis-cluster",
        }
    }

    /// Opens the store with default settings, ready for a
    /// [`SessionManager`](session_core::SessionManager).
    ///
    /// - `memory:`: a new [`MemoryStore`].
    /// - `sled:PATH`: [`SledStore::open`], which creates the folder if needed.
    /// - PostgreSQL: [`PostgresStore::connect_with`] for the URL's `pooler`,
    ///   then [`migrate`](PostgresStore::migrate) (creates or upgrades
    ///   `public.sessions`), or with `migrate=false`
    ///   [`check_schema`](PostgresStore::check_schema) only.
    /// - Redis: [`RedisStore::connect`] or [`RedisStore::connect_cluster`] with
    ///   the default key prefix `session:`.
    pub async fn open(&self) -> Result<Arc<dyn SessionStore>> {
        self.open_inner(true).await
    }

    /// Like [`open`](Self::open), but a PostgreSQL table is never created or
    /// migrated, whatever the URL's `migrate` says: the store is opened and
    /// its schema [checked](PostgresStore::check_schema). For applications
    /// that run as a role that may not create anything (the demo's
    /// `--no-migrate`). Other backends open as with `open`.
    pub async fn open_without_migrating(&self) -> Result<Arc<dyn SessionStore>> {
        self.open_inner(false).await
    }

    /// Connects to PostgreSQL as the URL says (its `pooler` and
    /// `call_timeout`), without creating or checking anything. `None` for
    /// other backends.
    pub async fn postgres_store(&self) -> Result<Option<PostgresStore>> {
        self.postgres_store_with(PgPoolOptions::new()).await
    }

    /// [`postgres_store`](Self::postgres_store) with a pool built from
    /// `pool`.
    pub(crate) async fn postgres_store_with(
        &self,
        pool: PgPoolOptions,
    ) -> Result<Option<PostgresStore>> {
        let Self::Postgres(url) = self else {
            return Ok(None);
        };
        let (options, settings) = postgres_settings(url)?;
        PostgresStore::connect_with_pool(options, settings.pooler, pool, settings.call_timeout)
            .await
            .map(Some)
    }

    async fn open_inner(&self, may_migrate: bool) -> Result<Arc<dyn SessionStore>> {
        Ok(match self {
            Self::Memory => Arc::new(MemoryStore::new()),
            Self::Sled(path) => Arc::new(SledStore::open(path)?),
            Self::Postgres(url) => {
                let (options, settings) = postgres_settings(url)?;
                let store = PostgresStore::connect_with_pool(
                    options,
                    settings.pooler,
                    PgPoolOptions::new(),
                    settings.call_timeout,
                )
                .await?;
                if may_migrate && settings.migrate {
                    store.migrate().await?;
                } else {
                    store.check_schema().await?;
                }
                Arc::new(store)
            }
            Self::Redis(url) => Arc::new(RedisStore::connect(url, RedisOptions::default()).await?),
            Self::RedisCluster(nodes) => {
                let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
                Arc::new(RedisStore::connect_cluster(&nodes, RedisOptions::default()).await?)
            }
        })
    }

    /// Opens the store in a fresh, random namespace that nothing else uses,
    /// for checks that must not see or touch anyone's data. Call
    /// [`Isolated::cleanup`] afterwards to remove the namespace.
    ///
    /// Shorthand for [`connect`](Self::connect) then
    /// [`Connection::isolated`]; to open many namespaces on one store, keep
    /// the [`Connection`] (a sled database can only be opened once at a time).
    pub async fn open_isolated(&self) -> Result<Isolated> {
        self.connect().await?.isolated().await
    }

    /// Connects to the server (or opens the sled database, creating its
    /// folder if needed) without creating or migrating any session table.
    pub async fn connect(&self) -> Result<Connection> {
        Connection::new(self).await
    }
}

/// What a PostgreSQL store URL says beyond sqlx's own options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PgSettings {
    /// `pooler=session|transaction`.
    pub pooler: Pooler,
    /// `migrate=true|false`.
    pub migrate: bool,
    /// `call_timeout=5s|500ms`.
    pub call_timeout: Duration,
}

/// Splits a PostgreSQL URL into sqlx's connect options (from the URL
/// without `pooler`, `migrate` and `call_timeout`) and those settings.
pub(crate) fn postgres_settings(url: &str) -> Result<(PgConnectOptions, PgSettings)> {
    let mut settings = PgSettings {
        pooler: Pooler::Session,
        migrate: true,
        call_timeout: Duration::from_secs(5),
    };
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut kept = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "pooler" => {
                settings.pooler = value
                    .parse()
                    .map_err(|_| invalid("pooler= takes session or transaction"))?
            }
            "migrate" => {
                settings.migrate = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(invalid("migrate= takes true or false")),
                }
            }
            "call_timeout" => {
                settings.call_timeout = parse_duration(value).ok_or_else(|| {
                    invalid("call_timeout= takes a duration such as 5s or 500ms (more than 0)")
                })?
            }
            _ => kept.push(pair),
        }
    }
    let sqlx_url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let options = PgConnectOptions::from_str(&sqlx_url)
        .map_err(|e| invalid(format!("bad PostgreSQL URL: {e}")))?;
    Ok((options, settings))
}

/// `5s`, `500ms` → a duration; `None` for anything else or zero.
fn parse_duration(text: &str) -> Option<Duration> {
    let (digits, unit) = match text.strip_suffix("ms") {
        Some(d) => (d, 1),
        None => (text.strip_suffix('s')?, 1000),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms = digits.parse::<u64>().ok()?.checked_mul(unit)?;
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// `redis+cluster://[user:pass@]host:port,host:port` → node URLs.
fn parse_cluster(node_scheme: &str, rest: &str) -> Result<Vec<String>> {
    let usage = "a cluster URL looks like redis+cluster://[user:pass@]host:port,host:port";
    let Some(rest) = rest.strip_prefix("//") else {
        return Err(invalid(usage));
    };
    let (userinfo, hosts) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    if userinfo == Some("") {
        return Err(invalid(format!("{usage}: nothing before the @")));
    }
    let hosts = hosts.strip_suffix('/').unwrap_or(hosts);
    if hosts.is_empty() {
        return Err(invalid(format!("{usage}: no nodes given")));
    }
    if hosts.contains(['/', '?', '#']) {
        return Err(invalid(format!(
            "{usage}: paths, databases and options are not supported on cluster URLs"
        )));
    }
    let mut nodes = Vec::new();
    for node in hosts.split(',') {
        check_host_port(node).map_err(|why| invalid(format!("{usage}: {why}")))?;
        let url = match userinfo {
            Some(u) => format!("{node_scheme}://{u}@{node}"),
            None => format!("{node_scheme}://{node}"),
        };
        if redis::parse_redis_url(&url).is_none() {
            return Err(invalid(format!(
                "{usage}: node {node:?} is not a valid address"
            )));
        }
        nodes.push(url);
    }
    Ok(nodes)
}

/// `host:port` or `[v6]:port`, port 1-65535.
fn check_host_port(node: &str) -> Result<(), String> {
    if node.is_empty() {
        return Err("empty node in the list (a stray comma?)".into());
    }
    let (host, port) = if let Some(v6) = node.strip_prefix('[') {
        match v6.split_once("]:") {
            Some((h, p)) => (h, p),
            None => return Err(format!("node {node:?} is not [ipv6]:port")),
        }
    } else {
        match node.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, p),
            _ => return Err(format!("node {node:?} is not host:port")),
        }
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '@' || c == '[') {
        return Err(format!("node {node:?} has no valid host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        _ => Err(format!("node {node:?} has no valid port (1-65535)")),
    }
}

impl FromStr for StoreUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("memory:"),
            Self::Sled(path) => write!(f, "sled:{}", path.display()),
            Self::Postgres(url) | Self::Redis(url) => f.write_str(&redact(url)),
            Self::RedisCluster(nodes) => {
                let tls = nodes.first().is_some_and(|n| n.starts_with("rediss://"));
                f.write_str(if tls {
                    "rediss+cluster://"
                } else {
                    "redis+cluster://"
                })?;
                let mut userinfo_shown = false;
                for (i, node) in nodes.iter().enumerate() {
                    let after = node.split_once("://").map_or(node.as_str(), |(_, r)| r);
                    let (userinfo, host) = match after.rfind('@') {
                        Some(at) => (Some(&after[..at]), &after[at + 1..]),
                        None => (None, after),
                    };
                    if let (Some(u), false) = (userinfo, userinfo_shown) {
                        f.write_str(&redact_userinfo(u))?;
                        f.write_str("@")?;
                    }
                    userinfo_shown = true;
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    f.write_str(host)?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StoreUrl")
            .field(&format_args!("{self}"))
            .finish()
    }
}

/// `user:pass` → `user:***`; a user alone stays.
fn redact_userinfo(userinfo: &str) -> String {
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => userinfo.to_owned(),
    }
}

/// The URL with the password of its user info and any password-like query
/// parameter replaced by `***`. Errs on the side of hiding: everything
/// between `://` and the last `@` is treated as user info.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let mut out = format!("{scheme}://");
    let rest = match rest.rfind('@') {
        Some(at) => {
            out.push_str(&redact_userinfo(&rest[..at]));
            &rest[at..]
        }
        None => rest,
    };
    match rest.split_once('?') {
        None => out.push_str(rest),
        Some((before, query)) => {
            out.push_str(before);
            out.push('?');
            let (query, fragment) = match query.split_once('#') {
                Some((q, frag)) => (q, Some(frag)),
                None => (query, None),
            };
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if is_secret_param(k) => format!("{k}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            out.push_str(&pairs.join("&"));
            if let Some(frag) = fragment {
                out.push('#');
                out.push_str(frag);
            }
        }
    }
    out
}

pub(crate) fn is_secret_param(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("pass") || key.contains("pwd") || key.contains("secret") || key == "token"
}
