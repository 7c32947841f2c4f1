//! Server-assisted invalidation for the local cache.
//!
//! One RESP3 connection per node (the server, or every node of a cluster,
//! replicas included) runs `CLIENT TRACKING ON BCAST PREFIX <records>`: Redis
//! then pushes the name of every record key any client changes, deletes or
//! lets expire, whoever read it. Invalidations are applied in the
//! connection's own reader, as they arrive.
//!
//! The cache is *online* only while every one of these connections is up.
//! A dropped connection, a heartbeat `PING` left unanswered, or (cluster) a
//! change in the set of nodes takes it offline and empties it at once; a
//! new set of connections is built, and the cache goes online, empty, only
//! once all of them are tracking. A load never uses an entry that a missed
//! invalidation could have made stale.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, ProtocolVersion, PushInfo,
    PushKind, RedisResult, TlsCertificates, Value,
};
use session_core::SessionKey;
use tokio::sync::Notify;

use crate::cache::Cache;

/// `CLIENT SETNAME` of every tracking connection, so an operator (or a test)
/// can tell them apart in `CLIENT LIST`.
pub const TRACKING_CLIENT_NAME: &str = "session-redis-cache-tracking";

/// How often each tracking connection is checked with a `PING` (and a
/// cluster's node list compared).
const HEARTBEAT: Duration = Duration::from_millis(500);

/// Where and how to open tracking connections.
pub(crate) struct Setup {
    /// The standalone server, or a cluster's seed nodes.
    pub(crate) seeds: Vec<ConnectionInfo>,
    pub(crate) cluster: bool,
    pub(crate) certs: Option<TlsCertificates>,
    /// The record prefix (`PREFIX s:`) to track.
    pub(crate) records: Arc<str>,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
}

/// Stops the tracking task when the last clone of the store goes.
pub(crate) struct Tracking {
    task: tokio::task::AbortHandle,
}

impl Drop for Tracking {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// State shared by the task and the push handlers of its connections.
struct Shared {
    cache: Arc<Cache>,
    records: Arc<str>,
    /// The set of connections whose pushes count; older ones are ignored
    /// (a socket that breaks while its set is being replaced still reports
    /// a disconnection).
    generation: AtomicU64,
    /// The last generation a connection of which was lost.
    dropped: AtomicU64,
}

impl Shared {
    fn on_push(&self, generation: u64, lost: &Notify, push: PushInfo) {
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        match push.kind {
            PushKind::Invalidate => match push.data.first() {
                Some(Value::Array(names)) => {
                    for name in names {
                        if let Some(key) = self.key_of(name) {
                            self.cache.invalidate(&key);
                        }
                    }
                }
                // `FLUSHALL` / `FLUSHDB` invalidate everything at once (a nil
                // list); anything unexpected is treated the same way.
                _ => self.cache.flush(),
            },
            PushKind::Disconnection => {
                // Checked again under the cache's locks: a handler of an
                // older set, paused after the check above while a new set
                // went online, must not take the new set's cache offline
                // (nothing would bring it back).
                let current = || {
                    let current = self.generation.load(Ordering::Acquire) == generation;
                    if current {
                        self.dropped.store(generation, Ordering::Release);
                    }
                    current
                };
                if self.cache.reset_if(current) {
                    lost.notify_one();
                }
            }
            _ => {}
        }
    }

    fn key_of(&self, name: &Value) -> Option<SessionKey> {
        let Value::BulkString(bytes) = name else {
            return None;
        };
        let hex = bytes.strip_prefix(self.records.as_bytes())?;
        SessionKey::from_hex(std::str::from_utf8(hex).ok()?)
    }
}

/// Opens the tracking connections, puts the cache online and keeps it so:
/// returns once tracking works, or the first error (the server does not
/// speak RESP3, is older than Redis 6, refuses `CLIENT TRACKING`).
pub(crate) async fn start(setup: Setup, cache: Arc<Cache>) -> RedisResult<Tracking> {
    let shared = Arc::new(Shared {
        cache,
        records: setup.records.clone(),
        generation: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
    });
    let lost = Arc::new(Notify::new());
    let conns = establish(&setup, &shared, &lost).await?;
    let task = tokio::spawn(watch(setup, shared, lost, conns));
    Ok(Tracking {
        task: task.abort_handle(),
    })
}

struct Tracked {
    conns: Vec<MultiplexedConnection>,
    nodes: BTreeSet<String>,
}

/// Watches a set of connections; rebuilds it when it fails, forever.
async fn watch(setup: Setup, shared: Arc<Shared>, mut lost: Arc<Notify>, mut tracked: Tracked) {
    loop {
        loop {
            tokio::select! {
                () = lost.notified() => break,
                () = tokio::time::sleep(HEARTBEAT) => {
                    if !healthy(&setup, &mut tracked).await {
                        break;
                    }
                }
            }
        }
        shared.cache.reset(false);
        drop(tracked);
        let mut delay = Duration::from_millis(20);
        tracked = loop {
            lost = Arc::new(Notify::new());
            match establish(&setup, &shared, &lost).await {
                Ok(t) => break t,
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
            }
        };
    }
}

/// Every connection answers a `PING` in time (each connection has the
/// store's response timeout), and a cluster still has the nodes it had.
async fn healthy(setup: &Setup, tracked: &mut Tracked) -> bool {
    for conn in &mut tracked.conns {
        if redis::cmd("PING")
            .query_async::<String>(conn)
            .await
            .is_err()
        {
            return false;
        }
    }
    if !setup.cluster {
        return true;
    }
    let Some(conn) = tracked.conns.first_mut() else {
        return false;
    };
    match redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async::<String>(conn)
        .await
    {
        Ok(text) => node_addresses(&text) == tracked.nodes,
        Err(_) => false,
    }
}

/// A new generation of tracking connections, one per node; the cache goes
/// online (empty) once all of them track.
async fn establish(
    setup: &Setup,
    shared: &Arc<Shared>,
    lost: &Arc<Notify>,
) -> RedisResult<Tracked> {
    let generation = shared.generation.fetch_add(1, Ordering::AcqRel) + 1;
    let (targets, nodes) = if setup.cluster {
        discover(setup).await?
    } else {
        (setup.seeds.clone(), BTreeSet::new())
    };
    if targets.is_empty() {
        return Err(redis::RedisError::from((
            redis::ErrorKind::Client,
            "no node to track",
        )));
    }
    let mut conns = Vec::with_capacity(targets.len());
    for info in targets {
        conns.push(track(setup, info, shared, lost, generation).await?);
    }
    // A connection of this set may have dropped already: its handler has
    // then taken the cache offline, and must not be overruled (both look at
    // `dropped` under the cache's locks).
    let intact = || shared.dropped.load(Ordering::Acquire) != generation;
    if !shared.cache.go_online_if(intact) {
        return Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "a tracking connection dropped while the others connected",
        )));
    }
    Ok(Tracked { conns, nodes })
}

fn client(setup: &Setup, info: ConnectionInfo) -> RedisResult<Client> {
    match &setup.certs {
        Some(certs) => Client::build_with_tls(info, certs.clone()),
        None => Client::open(info),
    }
}

fn config(setup: &Setup) -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(setup.connect_timeout))
        .set_response_timeout(Some(setup.response_timeout))
}

/// One tracking connection to the node `info` names.
async fn track(
    setup: &Setup,
    info: ConnectionInfo,
    shared: &Arc<Shared>,
    lost: &Arc<Notify>,
    generation: u64,
) -> RedisResult<MultiplexedConnection> {
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let client = client(setup, info.set_redis_settings(settings))?;
    let (handler, lost) = (shared.clone(), lost.clone());
    let config = config(setup).set_push_sender(move |push: PushInfo| {
        handler.on_push(generation, &lost, push);
        Ok::<(), std::convert::Infallible>(())
    });
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(TRACKING_CLIENT_NAME)
        .query_async::<()>(&mut conn)
        .await?;
    redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .arg("BCAST")
        .arg("PREFIX")
        .arg(&*setup.records)
        .query_async::<()>(&mut conn)
        .await?;
    Ok(conn)
}

/// A cluster's nodes (primaries and replicas) as one of the seeds lists
/// them, each as a connection like the first seed's.
async fn discover(setup: &Setup) -> RedisResult<(Vec<ConnectionInfo>, BTreeSet<String>)> {
    let mut last = None;
    for seed in &setup.seeds {
        let listed = async {
            let mut conn = client(setup, seed.clone())?
                .get_multiplexed_async_connection_with_config(&config(setup))
                .await?;
            redis::cmd("CLUSTER")
                .arg("NODES")
                .query_async::<String>(&mut conn)
                .await
        }
        .await;
        match listed {
            Ok(text) => {
                let nodes = node_addresses(&text);
                let infos = nodes
                    .iter()
                    .filter_map(|addr| {
                        let (host, port) = addr.rsplit_once(':')?;
                        // A node that never met another lists itself
                        // without a host: it is the seed that answered.
                        let host = if host.is_empty() {
                            seed_host(seed)?
                        } else {
                            host
                        };
                        Some(with_address(seed, host, port.parse().ok()?))
                    })
                    .collect();
                return Ok((infos, nodes));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        redis::RedisError::from((redis::ErrorKind::Client, "no cluster node to ask"))
    }))
}

fn seed_host(seed: &ConnectionInfo) -> Option<&str> {
    match seed.addr() {
        ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => Some(host),
        _ => None,
    }
}

fn with_address(seed: &ConnectionInfo, host: &str, port: u16) -> ConnectionInfo {
    let addr = match seed.addr() {
        ConnectionAddr::TcpTls { insecure, .. } => ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: *insecure,
            tls_params: None,
        },
        _ => ConnectionAddr::Tcp(host.to_owned(), port),
    };
    seed.clone().set_addr(addr)
}

/// `host:port` of every node `CLUSTER NODES` lists that is not known to
/// have failed (a node Redis only suspects is still tracked, or tried);
/// `:port` for a node that lists itself without a host.
fn node_addresses(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let address = fields.nth(1)?;
            let flags = fields.next()?;
            let gone = flags
                .split(',')
                .any(|f| matches!(f, "fail" | "noaddr" | "handshake"));
            let addr = address.split(['@', ',']).next()?;
            let (_, port) = addr.rsplit_once(':')?;
            (!gone && port != "0").then(|| addr.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::node_addresses;

    #[test]
    fn cluster_nodes_lists_every_reachable_node_once() {
        let text = "\
a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7001@17001,host-b master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7002@17002 slave b2 0 0 2 connected
d4 127.0.0.1:7003@17003 master,fail - 0 0 3 disconnected
e5 :0@0 master,noaddr - 0 0 0 disconnected
";
        let nodes: Vec<String> = node_addresses(text).into_iter().collect();
        assert_eq!(
            nodes,
            ["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"]
        );
        // A node alone in its cluster does not know its own address.
        let alone = "a1 :7000@17000 myself,master - 0 0 1 connected 0-16383\n";
        let nodes: Vec<String> = node_addresses(alone).into_iter().collect();
        assert_eq!(nodes, [":7000"]);
    }
}
