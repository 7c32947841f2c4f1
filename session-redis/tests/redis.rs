//! Redis-specific guarantees: recovery after a server restart (and the script
//! reload that comes with it), no token anywhere in the keyspace, and the
//! cluster's per-user index converging.

mod common;

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use common::{
    cluster_nodes, delete_prefix, random_prefix, OwnServer, TempDir, CLUSTER_VAR, URL_VAR,
};
use redis::AsyncCommands;
use session_core::{Record, SessionConfig, SessionManager, SessionStore, Timestamp};
use session_redis::{RedisOptions, RedisStore};
use session_test_suite::{fault, free_loopback_port, url_or_skip};

fn record(user: Option<&str>, ttl: Duration) -> Record {
    session_test_suite::cases::record_expiring_in(user, ttl)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_store_recovers_after_its_server_restarts() {
    const TEST: &str = "the_same_store_recovers_after_its_server_restarts";
    // Default options: 2 s to connect, 2 s for a response.
    recovers_after_a_restart(TEST, RedisOptions::default()).await;
}

/// The same with the local cache on: the restart drops the tracking
/// connection, the cache empties and comes back once tracking does, and
/// every acknowledged write is still what a load returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_store_with_a_local_cache_recovers_after_its_server_restarts() {
    const TEST: &str = "the_same_store_with_a_local_cache_recovers_after_its_server_restarts";
    let options = RedisOptions::default().local_cache(session_redis::LocalCache::default());
    recovers_after_a_restart(TEST, options).await;
}

async fn recovers_after_a_restart(test: &str, options: RedisOptions) {
    // Needs only the redis-server binary; CI has it, like the shared server.
    if url_or_skip(URL_VAR, test).is_none() {
        return;
    }
    let port = free_loopback_port();
    let dir = TempDir::new("fault");
    let server = OwnServer::start(port, &dir).await;
    let store = RedisStore::connect(&server.url(), options).await.unwrap();
    let probe = store.clone();
    let cached = probe.cache_stats().is_some();
    let store: Arc<dyn SessionStore> = Arc::new(store);

    // Restarted on the same port and directory, the server replays its
    // append-only file but has no scripts loaded: the store must reconnect
    // and reload them.
    let (server, outage) = fault::outage(
        store.clone(),
        Duration::from_secs(5),
        Duration::from_secs(5),
        server.kill(),
        OwnServer::start(port, &dir),
    )
    .await;
    outage.report.assert_durable(store.as_ref()).await;
    let _ = writeln!(
        std::io::stderr(),
        "redis fault (appendfsync always{}): {}",
        if cached { ", local cache" } else { "" },
        outage.summary()
    );
    if let Some(stats) = probe.cache_stats() {
        assert!(
            stats.flushes >= 1,
            "the restart emptied the cache: {stats:?}"
        );
        let r = session_test_suite::cases::new_record(None);
        store.create(&r).await.unwrap();
        let mut served = false;
        for _ in 0..500 {
            store.load(&r.key).await.unwrap();
            if probe.cache_stats().unwrap().hits > stats.hits {
                served = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(served, "the cache serves again once tracking is back");
    }
    server.kill().await;
}

#[tokio::test]
async fn scripts_are_reloaded_after_script_flush() {
    if url_or_skip(URL_VAR, "scripts_are_reloaded_after_script_flush").is_none() {
        return;
    }
    let dir = TempDir::new("script-flush");
    let server = OwnServer::start(free_loopback_port(), &dir).await;
    let store = RedisStore::connect(&server.url(), RedisOptions::default())
        .await
        .unwrap();
    let r = record(Some("alice"), Duration::from_secs(60));
    store.create(&r).await.unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut c)
        .await
        .unwrap();
    // The create script was loaded before the flush: its EVALSHA now hits
    // NOSCRIPT and the script is loaded again.
    let again = record(Some("alice"), Duration::from_secs(60));
    store
        .create(&again)
        .await
        .expect("create after SCRIPT FLUSH");
    assert_eq!(store.load(&again.key).await.unwrap(), Some(again));
    assert_eq!(store.list_user("alice").await.unwrap().len(), 2);
    server.kill().await;
}

/// Every key and every value under the prefix, as bytes.
async fn dump(nodes: &[String], prefix: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for node in nodes {
        let client = redis::Client::open(node.as_str()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<Vec<u8>> = {
            let mut iter: redis::AsyncIter<'_, Vec<u8>> =
                c.scan_options(common::scan_prefix(prefix)).await.unwrap();
            let mut keys = Vec::new();
            while let Some(k) = iter.next_item().await {
                keys.push(k.unwrap());
            }
            keys
        };
        for key in keys {
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut c)
                .await
                .unwrap();
            let values: Vec<Vec<u8>> = match kind.as_str() {
                "string" => vec![c.get(&key).await.unwrap()],
                "zset" => c.zrange(&key, 0, -1).await.unwrap(),
                other => panic!("unexpected key type {other}"),
            };
            out.push(key);
            out.extend(values);
        }
    }
    out
}

async fn assert_no_token_in_keyspace(store: RedisStore, nodes: Vec<String>) {
    let prefix = store.prefix().to_owned();
    let manager = SessionManager::new(Arc::new(store), SessionConfig::default()).unwrap();
    let mut tokens = Vec::new();
    for i in 0..20 {
        let s = manager.load(None).await.unwrap();
        s.insert("i", &i).unwrap();
        if i % 2 == 0 {
            s.login(format!("user {i}")).unwrap();
        }
        tokens.push(s.commit().await.unwrap().token().unwrap().clone());
    }
    let blobs = dump(&nodes, &prefix).await;
    assert!(blobs.len() >= 20 * 2, "the dump covers the records");
    for token in &tokens {
        let text = token.expose();
        let raw = token.expose_bytes();
        let hex_key = token.key().to_hex();
        for blob in &blobs {
            assert!(
                !blob.windows(text.len()).any(|w| w == text.as_bytes()),
                "token text in Redis"
            );
            assert!(
                !blob.windows(raw.len()).any(|w| w == raw),
                "token bytes in Redis"
            );
        }
        assert!(
            blobs
                .iter()
                .any(|b| b.windows(hex_key.len()).any(|w| w == hex_key.as_bytes())),
            "records are keyed by the token's SHA-256"
        );
    }
    delete_prefix(&nodes, &prefix).await;
}

#[tokio::test]
async fn no_session_token_appears_in_any_standalone_key_or_value() {
    let Some(url) = url_or_skip(
        URL_VAR,
        "no_session_token_appears_in_any_standalone_key_or_value",
    ) else {
        return;
    };
    let store = RedisStore::connect(&url, RedisOptions::default().prefix(random_prefix()))
        .await
        .unwrap();
    assert_no_token_in_keyspace(store, vec![url]).await;
}

#[tokio::test]
async fn no_session_token_appears_in_any_cluster_key_or_value() {
    let Some((store, nodes, _)) =
        cluster_store("no_session_token_appears_in_any_cluster_key_or_value").await
    else {
        return;
    };
    assert_no_token_in_keyspace(store, nodes).await;
}

/// A cluster store under a fresh prefix, with the nodes and the prefix;
/// `None` (the test is skipped) without a cluster.
async fn cluster_store(test: &str) -> Option<(RedisStore, Vec<String>, String)> {
    let nodes = cluster_nodes(&url_or_skip(CLUSTER_VAR, test)?);
    let refs: Vec<&str> = nodes.iter().map(String::as_str).collect();
    let prefix = random_prefix();
    let store = RedisStore::connect_cluster(&refs, RedisOptions::default().prefix(prefix.clone()))
        .await
        .unwrap();
    Some((store, nodes, prefix))
}

#[tokio::test]
async fn cluster_user_index_converges_after_a_user_move() {
    let Some((store, nodes, prefix)) =
        cluster_store("cluster_user_index_converges_after_a_user_move").await
    else {
        return;
    };
    let r = record(Some("alice"), Duration::from_millis(800));
    store.create(&r).await.unwrap();
    let mut moved = r.clone();
    moved.version = 2;
    moved.user = Some("bob".into());
    moved.expires_at = Timestamp::now().saturating_add(Duration::from_secs(60));
    store.update(&moved, 1).await.unwrap();

    assert!(
        store.list_user("alice").await.unwrap().is_empty(),
        "never listed under the old user"
    );
    assert_eq!(store.list_user("bob").await.unwrap(), vec![moved.clone()]);

    let client = redis::cluster::ClusterClient::new(nodes.clone()).unwrap();
    let mut c = client.get_async_connection().await.unwrap();
    let alice_index = format!("{prefix}u:alice");
    let stale: i64 = c.zcard(&alice_index).await.unwrap();
    assert_eq!(
        stale, 1,
        "the old user's entry is left behind (ordered steps, no cross-slot write)"
    );
    // Its score is the deadline it had under alice: once that passes, the
    // entry is pruned on read and the index key expires on its own.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(store.list_user("alice").await.unwrap().is_empty());
    let exists: bool = c.exists(&alice_index).await.unwrap();
    assert!(!exists, "the old user's index has converged to nothing");
    assert_eq!(store.list_user("bob").await.unwrap(), vec![moved]);
    delete_prefix(&nodes, &prefix).await;
}

#[tokio::test]
async fn a_key_holding_something_else_loads_as_a_decode_error_and_create_replaces_it() {
    let Some(url) = url_or_skip(
        URL_VAR,
        "a_key_holding_something_else_loads_as_a_decode_error_and_create_replaces_it",
    ) else {
        return;
    };
    let prefix = random_prefix();
    let store = RedisStore::connect(&url, RedisOptions::default().prefix(prefix.clone()))
        .await
        .unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let hashed = record(Some("alice"), Duration::from_secs(60));
    let garbled = record(None, Duration::from_secs(60));
    let name = |r: &Record| format!("{prefix}s:{}", r.key.to_hex());
    // A hash, as an older layout wrote records, and a string that is not one.
    let _: () = c.hset(name(&hashed), "v", "1").await.unwrap();
    let _: () = c.set(name(&garbled), "not a record").await.unwrap();

    let doomed = record(None, Duration::from_secs(60));
    let _: () = c.hset(name(&doomed), "v", "1").await.unwrap();
    assert!(
        store.delete(&doomed.key).await.unwrap(),
        "delete removes it"
    );
    let left: bool = c.exists(name(&doomed)).await.unwrap();
    assert!(!left);

    for r in [&hashed, &garbled] {
        let err = store.load(&r.key).await.unwrap_err();
        assert!(matches!(err, session_core::Error::Decode { .. }), "{err:?}");
        store
            .create(r)
            .await
            .expect("create replaces what no record is");
        assert_eq!(store.load(&r.key).await.unwrap().as_ref(), Some(r));
    }
    assert_eq!(store.list_user("alice").await.unwrap(), vec![hashed]);
    delete_prefix(&[url], &prefix).await;
}

#[tokio::test]
async fn a_cluster_revocation_blocks_a_key_whose_write_is_still_in_flight() {
    let Some((store, nodes, prefix)) =
        cluster_store("a_cluster_revocation_blocks_a_key_whose_write_is_still_in_flight").await
    else {
        return;
    };
    let live = record(Some("dave"), Duration::from_secs(60));
    store.create(&live).await.unwrap();
    // What a rotation or create of dave's leaves between its first step (the
    // index entry) and its second (the record): an entry naming an empty key.
    let in_flight = record(Some("dave"), Duration::from_secs(60));
    let client = redis::cluster::ClusterClient::new(nodes.clone()).unwrap();
    let mut c = client.get_async_connection().await.unwrap();
    let _: i64 = c
        .zadd(
            format!("{prefix}u:dave"),
            in_flight.key.to_hex(),
            in_flight.expires_at.as_millis(),
        )
        .await
        .unwrap();

    assert_eq!(store.delete_user("dave", None).await.unwrap(), 1);
    let late = store.create(&in_flight).await;
    assert!(
        matches!(late, Err(session_core::Error::AlreadyExists)),
        "the in-flight write must not go live after the revocation: {late:?}"
    );
    assert_eq!(store.load(&in_flight.key).await.unwrap(), None);
    assert!(store.list_user("dave").await.unwrap().is_empty());
    delete_prefix(&nodes, &prefix).await;
}
