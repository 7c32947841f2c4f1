//! Set-ups production Redis deployments use, each on a redis-server of the
//! test's own: a password (`requirepass` and ACL users), and `maxmemory` with
//! `noeviction`.

mod common;

use std::time::{Duration, Instant};

use common::{OwnServer, TempDir, URL_VAR};
use session_core::{Error, SessionStore};
use session_redis::{RedisOptions, RedisStore};
use session_test_suite::{cases, free_loopback_port, url_or_skip};

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    session_core::error_chain(e)
}

async fn connect_err(url: &str) -> Error {
    RedisStore::connect(url, RedisOptions::default())
        .await
        .expect_err("connect must fail")
}

/// Issue 20, item 6: a server that wants a password refuses a URL without
/// one once, at connect, with a clear permanent error; a wrong password
/// says whose; neither message holds the password; the right password and
/// an ACL user work.
#[tokio::test]
async fn authentication_failures_are_one_clear_permanent_error_at_connect() {
    const TEST: &str = "authentication_failures_are_one_clear_permanent_error_at_connect";
    // Needs only the redis-server binary, which CI has with the shared server.
    if url_or_skip(URL_VAR, TEST).is_none() {
        return;
    }
    let secret = format!(
        "pw-{}",
        &session_core::SessionToken::generate().expose()[..16]
    );
    let port = free_loopback_port();
    let dir = TempDir::new("auth");
    let server = OwnServer::start_with(port, &dir, &["--save", "", "--requirepass", &secret]).await;
    let base = format!("127.0.0.1:{port}");

    let missing = connect_err(&format!("redis://{base}")).await;
    let text = chain(&missing);
    assert!(text.contains("authentication required"), "{text}");
    assert!(
        !missing.is_transient(),
        "a missing password is permanent: {text}"
    );

    let wrong = connect_err(&format!("redis://:not-{secret}@{base}")).await;
    let text = chain(&wrong);
    assert!(
        text.contains("wrong password for Redis user \"default\""),
        "{text}"
    );
    assert!(!wrong.is_transient(), "{text}");
    assert!(
        !text.contains(&secret),
        "the password never appears: {text}"
    );

    let store = RedisStore::connect(
        &format!("redis://:{secret}@{base}"),
        RedisOptions::default(),
    )
    .await
    .expect("the right password connects");
    let r = cases::new_record(Some("alice"));
    store.create(&r).await.expect("and the store works");

    // An ACL user with its own password.
    let admin = redis::Client::open(format!("redis://:{secret}@{base}")).unwrap();
    let mut c = admin.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg("app")
        .arg("on")
        .arg(format!(">{secret}-app"))
        .arg("~*")
        .arg("+@all")
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    let acl = RedisStore::connect(
        &format!("redis://app:{secret}-app@{base}"),
        RedisOptions::default(),
    )
    .await
    .expect("an ACL user connects");
    assert_eq!(acl.load(&r.key).await.unwrap(), Some(r.clone()));
    let wrong_acl = connect_err(&format!("redis://app:nope@{base}")).await;
    let text = chain(&wrong_acl);
    assert!(
        text.contains("wrong password for Redis user \"app\""),
        "{text}"
    );
    server.kill().await;
}

/// Issue 20, item 7: at `maxmemory` with `noeviction`, writes fail at once
/// with a transient error (the HTTP layer answers 503 with `Retry-After`)
/// whose chain names the cause; once memory is freed, writes work again.
#[tokio::test]
async fn writes_at_maxmemory_fail_fast_as_transient_errors_and_recover() {
    const TEST: &str = "writes_at_maxmemory_fail_fast_as_transient_errors_and_recover";
    if url_or_skip(URL_VAR, TEST).is_none() {
        return;
    }
    let port = free_loopback_port();
    let dir = TempDir::new("oom");
    let server = OwnServer::start_with(
        port,
        &dir,
        &[
            "--save",
            "",
            "--maxmemory",
            "4mb",
            "--maxmemory-policy",
            "noeviction",
        ],
    )
    .await;
    let store = RedisStore::connect(&server.url(), RedisOptions::default())
        .await
        .unwrap();
    let mut stored = Vec::new();
    let refused = loop {
        let mut r = cases::new_record(Some("alice"));
        r.data = vec![7; 256 * 1024];
        match store.create(&r).await {
            Ok(()) => stored.push(r),
            Err(e) => break e,
        }
        assert!(stored.len() < 64, "4 MiB of maxmemory never ran out");
    };
    let text = chain(&refused);
    assert!(
        refused.is_transient(),
        "out of memory passes: transient; got {text}"
    );
    assert!(text.contains("OOM"), "the cause is named: {text}");

    // Fast: timed for the record, not asserted (a busy machine is slow).
    let started = Instant::now();
    let mut r = cases::new_record(Some("alice"));
    r.data = vec![7; 256 * 1024];
    let again = store.create(&r).await.expect_err("still full");
    let took = started.elapsed();
    assert!(again.is_transient());
    eprintln!(
        "redis OOM: a refused write took {took:?} after {} records",
        stored.len()
    );

    let first = stored.first().expect("some writes fit").clone();
    let mut update = cases::next_version(&first, b"small");
    update.data = vec![1; 16];
    for r in &stored[1..] {
        assert!(store.delete(&r.key).await.expect("deletes work when full"));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    store
        .update(&update, 1)
        .await
        .expect("writes work again once memory is freed");
    server.kill().await;
}

/// Issue 20, items 5 and 9: without the private CA, a `rediss://` connect
/// fails once with a permanent error that says how to trust the CA; with it,
/// the store works.
#[tokio::test]
async fn an_untrusted_tls_certificate_is_a_permanent_error_that_names_the_fix() {
    const TEST: &str = "an_untrusted_tls_certificate_is_a_permanent_error_that_names_the_fix";
    let Some(url) = url_or_skip(common::TLS_URL_VAR, TEST) else {
        return;
    };
    let untrusted = connect_err(&url).await;
    let text = chain(&untrusted);
    assert!(
        !untrusted.is_transient(),
        "a certificate problem is a setting: {text}"
    );
    assert!(
        text.contains("TLS") && text.contains("tls_root_certificates"),
        "{text}"
    );
    let ca = common::tls_ca(common::TLS_CA_VAR, common::TLS_URL_VAR);
    let store = RedisStore::connect(
        &url,
        RedisOptions::default()
            .prefix(common::random_prefix())
            .tls_root_certificates(ca),
    )
    .await
    .expect("with the CA trusted, TLS connects");
    let r = cases::new_record(None);
    store.create(&r).await.unwrap();
    assert!(store.delete(&r.key).await.unwrap());
}

/// Issue 20, item 9: a write that reaches a replica (as during a failover,
/// before clients follow the new primary) is refused with READONLY, which is
/// transient: retrying reaches the new primary. Reads still work there.
#[tokio::test]
async fn a_write_to_a_replica_during_failover_is_a_transient_error() {
    const TEST: &str = "a_write_to_a_replica_during_failover_is_a_transient_error";
    if url_or_skip(URL_VAR, TEST).is_none() {
        return;
    }
    let (primary, replica, _dirs) = primary_and_replica().await;
    let on_primary = RedisStore::connect(&primary.url(), RedisOptions::default())
        .await
        .unwrap();
    let r = cases::new_record(Some("alice"));
    on_primary.create(&r).await.unwrap();
    let on_replica = RedisStore::connect(&replica.url(), RedisOptions::default())
        .await
        .unwrap();
    let mut seen = None;
    for _ in 0..500 {
        seen = on_replica.load(&r.key).await.unwrap();
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, Some(r.clone()), "the replica serves reads");
    let refused = on_replica
        .update(&cases::next_version(&r, b"late"), 1)
        .await
        .expect_err("a replica refuses writes");
    let text = chain(&refused);
    assert!(refused.is_transient(), "READONLY is transient: {text}");
    assert!(text.to_lowercase().contains("read only replica"), "{text}");
    replica.kill().await;
    primary.kill().await;
}

/// With the local cache on a replica's store (read replicas serving loads,
/// or a store still pointed at a former primary): the replica pushes
/// invalidations for the writes it receives through replication, so a
/// logout on the primary stops the replica's cached copy.
#[tokio::test]
async fn a_cache_on_a_replica_drops_what_the_primary_deletes() {
    const TEST: &str = "a_cache_on_a_replica_drops_what_the_primary_deletes";
    if url_or_skip(URL_VAR, TEST).is_none() {
        return;
    }
    let (primary, replica, _dirs) = primary_and_replica().await;
    let on_primary = RedisStore::connect(&primary.url(), RedisOptions::default())
        .await
        .unwrap();
    let cached = RedisOptions::default().local_cache(session_redis::LocalCache::default());
    let on_replica = RedisStore::connect(&replica.url(), cached).await.unwrap();
    let r = cases::new_record(Some("alice"));
    on_primary.create(&r).await.unwrap();
    let mut warm = false;
    for _ in 0..500 {
        let hits = on_replica.cache_stats().unwrap().hits;
        if on_replica.load(&r.key).await.unwrap().is_some()
            && on_replica.cache_stats().unwrap().hits > hits
        {
            warm = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(warm, "the replica's store serves the record from memory");
    assert!(on_primary.delete(&r.key).await.unwrap());
    let mut gone = false;
    for _ in 0..500 {
        if on_replica.load(&r.key).await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(gone, "the replica's invalidation reached the cache");
    replica.kill().await;
    primary.kill().await;
}

/// A primary and its replica, each a redis-server of our own.
async fn primary_and_replica() -> (OwnServer, OwnServer, [TempDir; 2]) {
    let primary_port = free_loopback_port();
    let primary_dir = TempDir::new("primary");
    // No 5 s wait before the first full sync (Redis 7's diskless default).
    let primary = OwnServer::start_with(
        primary_port,
        &primary_dir,
        &["--save", "", "--repl-diskless-sync-delay", "0"],
    )
    .await;
    let replica_dir = TempDir::new("replica");
    let replica = OwnServer::start_with(
        free_loopback_port(),
        &replica_dir,
        &[
            "--save",
            "",
            "--replicaof",
            "127.0.0.1",
            &primary_port.to_string(),
        ],
    )
    .await;
    (primary, replica, [primary_dir, replica_dir])
}
