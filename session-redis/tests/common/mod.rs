//! A fresh key prefix per test on the servers named by
//! `SESSION_TEST_REDIS_URL` and `SESSION_TEST_REDIS_CLUSTER_URLS`.

#![allow(dead_code)]

use std::sync::Arc;

use redis::AsyncCommands;
use session_core::SessionToken;
use session_redis::{RedisOptions, RedisStore};
use session_test_suite::{server, server_url, Provision, ServerKind, TestStore};

pub const URL_VAR: &str = "SESSION_TEST_REDIS_URL";
pub const CLUSTER_VAR: &str = "SESSION_TEST_REDIS_CLUSTER_URLS";

pub fn random_prefix() -> String {
    format!(
        "sess-test:{}:",
        &SessionToken::generate().key().to_hex()[..12]
    )
}

/// A scan for the keys under `prefix`, a thousand keys a step: with the
/// default of ten, a server holding a million other keys makes every test's
/// clean-up take seconds.
pub fn scan_prefix(prefix: &str) -> redis::ScanOptions {
    redis::ScanOptions::default()
        .with_pattern(format!("{prefix}*"))
        .with_count(1000)
}

/// Deletes every key under `prefix` on each of `nodes` (every master of a
/// cluster, or the one standalone server).
pub async fn delete_prefix(nodes: &[String], prefix: &str) {
    for node in nodes {
        let client = redis::Client::open(node.as_str()).expect("node URL");
        delete_prefix_on(client, prefix).await;
    }
}

/// Deletes every key under `prefix` on the server `client` names.
pub async fn delete_prefix_on(client: redis::Client, prefix: &str) {
    {
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect for clean-up");
        let keys: Vec<String> = {
            let mut iter: redis::AsyncIter<'_, String> =
                conn.scan_options(scan_prefix(prefix)).await.expect("scan");
            let mut keys = Vec::new();
            while let Some(k) = iter.next_item().await {
                keys.push(k.expect("key"));
            }
            keys
        };
        for key in keys {
            let _: () = conn.del(&key).await.expect("delete test key");
        }
    }
}

pub fn cluster_nodes(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A store under a fresh prefix on `SESSION_TEST_REDIS_URL`, or on a Docker
/// container with the suite's `testcontainers` feature.
pub async fn standalone_store() -> Provision {
    let server = match server(URL_VAR, ServerKind::Redis).await {
        Ok(server) => server,
        Err(skip) => return skip,
    };
    let url = server.url.clone();
    let prefix = random_prefix();
    let store = RedisStore::connect(&url, RedisOptions::default().prefix(prefix.clone()))
        .await
        .unwrap_or_else(|e| panic!("connect to {URL_VAR} ({url}): {e}"));
    TestStore::new(Arc::new(store))
        .with_cleanup(move || async move {
            delete_prefix(&[url], &prefix).await;
            drop(server);
        })
        .into()
}

/// A store under a fresh prefix on the cluster in
/// `SESSION_TEST_REDIS_CLUSTER_URLS` (comma-separated node URLs). There is no
/// Docker fallback for a cluster.
pub async fn cluster_store() -> Provision {
    cluster_store_with(|prefix| RedisOptions::default().prefix(prefix)).await
}

async fn cluster_store_with(options: fn(&str) -> RedisOptions) -> Provision {
    let list = match server_url(CLUSTER_VAR) {
        Ok(list) => list,
        Err(skip) => return skip,
    };
    let nodes = cluster_nodes(&list);
    let prefix = random_prefix();
    let refs: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let store = RedisStore::connect_cluster(&refs, options(&prefix))
        .await
        .unwrap_or_else(|e| panic!("connect to the cluster in {CLUSTER_VAR} ({list}): {e}"));
    TestStore::new(Arc::new(store))
        .with_cleanup(move || async move { delete_prefix(&nodes, &prefix).await })
        .into()
}

/// A redis-server of our own on a free loopback port, killed on drop (and
/// by [`OwnServer::kill`]).
pub struct OwnServer {
    pub port: u16,
    child: tokio::process::Child,
}

/// A directory removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "session-redis-{tag}-{}-{}",
            std::process::id(),
            &SessionToken::generate().key().to_hex()[..12]
        ));
        std::fs::create_dir_all(&dir).expect("create the redis directory");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl OwnServer {
    /// A server that keeps an append-only file, fsynced on every write, in
    /// `dir`, so a restart on the same directory shows whether acknowledged
    /// writes were durable.
    pub async fn start(port: u16, dir: &TempDir) -> Self {
        Self::start_with(
            port,
            dir,
            &[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ],
        )
        .await
    }

    /// A server on `port` (plain TCP) with `args` added to its command line.
    /// Up once the port accepts connections (a server that wants a password
    /// or TLS would refuse a plain PING).
    pub async fn start_with(port: u16, dir: &TempDir, args: &[&str]) -> Self {
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(args)
            .arg("--dir")
            .arg(&dir.0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start redis-server (is it installed?)");
        Self::wait_for(port).await;
        Self { port, child }
    }

    /// Waits until something listens on `port`.
    pub async fn wait_for(port: u16) {
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("redis-server on port {port} did not come up");
    }

    /// Kills the server (SIGKILL: no shutdown, no final save).
    pub async fn kill(mut self) {
        self.child.kill().await.expect("kill redis-server");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

pub const TLS_URL_VAR: &str = "SESSION_TEST_REDIS_TLS_URL";
pub const TLS_CA_VAR: &str = "SESSION_TEST_REDIS_TLS_CA_FILE";
pub const TLS_CLUSTER_VAR: &str = "SESSION_TEST_REDIS_TLS_CLUSTER_URLS";
pub const TLS_CLUSTER_CA_VAR: &str = "SESSION_TEST_REDIS_TLS_CLUSTER_CA_FILE";

/// The PEM CA certificate in the file `var` names (set beside a TLS URL).
pub fn tls_ca(var: &str, url_var: &str) -> Vec<u8> {
    let file = std::env::var(var)
        .unwrap_or_else(|_| panic!("{url_var} is set, so {var} must name its CA certificate"));
    std::fs::read(&file).unwrap_or_else(|e| panic!("read {file}: {e}"))
}

/// Deletes `prefix` on every node, trusting `ca`.
async fn delete_prefix_tls(nodes: &[String], ca: &[u8], prefix: &str) {
    for node in nodes {
        let certs = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(ca.to_vec()),
        };
        let client = redis::Client::build_with_tls(node.as_str(), certs).expect("TLS client");
        delete_prefix_on(client, prefix).await;
    }
}

/// A store under a fresh prefix on the TLS server in
/// `SESSION_TEST_REDIS_TLS_URL` (`rediss://…`), trusting the private CA in
/// the PEM file `SESSION_TEST_REDIS_TLS_CA_FILE`.
pub async fn tls_store() -> Provision {
    let url = match server_url(TLS_URL_VAR) {
        Ok(url) => url,
        Err(skip) => return skip,
    };
    let ca = tls_ca(TLS_CA_VAR, TLS_URL_VAR);
    let prefix = random_prefix();
    let options = RedisOptions::default()
        .prefix(prefix.clone())
        .tls_root_certificates(ca.clone());
    let store = RedisStore::connect(&url, options)
        .await
        .unwrap_or_else(|e| panic!("connect to {TLS_URL_VAR} ({url}): {e}"));
    TestStore::new(Arc::new(store))
        .with_cleanup(move || async move { delete_prefix_tls(&[url], &ca, &prefix).await })
        .into()
}

/// A store under a fresh prefix on the TLS cluster in
/// `SESSION_TEST_REDIS_TLS_CLUSTER_URLS` (`rediss://` node URLs), trusting
/// the CA in `SESSION_TEST_REDIS_TLS_CLUSTER_CA_FILE`.
pub async fn tls_cluster_store() -> Provision {
    let list = match server_url(TLS_CLUSTER_VAR) {
        Ok(list) => list,
        Err(skip) => return skip,
    };
    let ca = tls_ca(TLS_CLUSTER_CA_VAR, TLS_CLUSTER_VAR);
    let nodes = cluster_nodes(&list);
    let prefix = random_prefix();
    let refs: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let options = RedisOptions::default()
        .prefix(prefix.clone())
        .tls_root_certificates(ca.clone());
    let store = RedisStore::connect_cluster(&refs, options)
        .await
        .unwrap_or_else(|e| {
            panic!("connect to the TLS cluster in {TLS_CLUSTER_VAR} ({list}): {e}")
        });
    TestStore::new(Arc::new(store))
        .with_cleanup(move || async move { delete_prefix_tls(&nodes, &ca, &prefix).await })
        .into()
}

/// Options for a store with the local cache on, under `prefix`.
pub fn cached_options(prefix: &str) -> RedisOptions {
    RedisOptions::default()
        .prefix(prefix)
        .local_cache(session_redis::LocalCache::default())
}

/// Like [`standalone_store`], with the local cache on.
pub async fn cached_store() -> Provision {
    let url = match server_url(URL_VAR) {
        Ok(url) => url,
        Err(skip) => return skip,
    };
    let prefix = random_prefix();
    let store = RedisStore::connect(&url, cached_options(&prefix))
        .await
        .unwrap_or_else(|e| panic!("connect with a local cache to {URL_VAR} ({url}): {e}"));
    TestStore::new(Arc::new(store))
        .with_cleanup(move || async move { delete_prefix(&[url], &prefix).await })
        .into()
}

/// Like [`cluster_store`], with the local cache on.
pub async fn cached_cluster_store() -> Provision {
    cluster_store_with(cached_options).await
}
