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
    let list = match server_url(CLUSTER_VAR) {
        Ok(list) => list,
        Err(skip) => return skip,
    };
    let nodes = cluster_nodes(&list);
    let prefix = random_prefix();
    let refs: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let store = RedisStore::connect_cluster(&refs, RedisOptions::default().prefix(prefix.clone()))
        .await
        .unwrap_or_else(|e| panic!("connect to the cluster in {CLUSTER_VAR} ({list}): {e}"));
    TestStore::new(Arc::new(store))
        .with_cleanup(move || async move { delete_prefix(&nodes, &prefix).await })
        .into()
}
