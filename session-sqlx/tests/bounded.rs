//! Every store call returns within the call timeout, whatever the server
//! does: one that accepts connections and never answers, and a statement
//! that waits on a lock another connection holds.

mod common;

use std::time::{Duration, Instant};

use common::{drop_schema, pool, schema_name, url_or_skip};
use session_core::{Error, Record, SessionStore, SessionToken, Timestamp};
use session_sqlx::PostgresStore;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};

const CALL_TIMEOUT: Duration = Duration::from_millis(300);
/// What scheduling may add to a call timeout on a busy test machine.
const MARGIN: Duration = Duration::from_millis(200);

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

fn record() -> Record {
    let now = Timestamp::now().as_millis();
    Record {
        key: SessionToken::generate().key(),
        id: session_core::SessionId::generate(),
        user: Some("bounded".into()),
        created_at: Timestamp::from_millis(now),
        expires_at: Timestamp::from_millis(now + 600_000),
        version: 1,
        data: b"x".to_vec(),
    }
}

/// A TCP server on a free loopback port that accepts every connection and
/// never sends a byte.
async fn silent_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}

#[tokio::test]
async fn a_server_that_accepts_and_never_answers_gives_a_transient_error_within_the_call_timeout_then_calls_fail_at_once(
) {
    let port = silent_server().await;
    let options = format!("postgres://postgres@127.0.0.1:{port}/test")
        .parse()
        .unwrap();
    let pool = PgPoolOptions::new().connect_lazy_with(options);
    let store = PostgresStore::new(pool).with_call_timeout(CALL_TIMEOUT);

    let started = Instant::now();
    let err = store
        .load(&SessionToken::generate().key())
        .await
        .expect_err("nothing answers");
    let took = started.elapsed();
    let text = chain(&err);
    eprintln!("silent server: the first call returned after {took:?}: {text}");
    assert!(err.is_transient(), "{text}");
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    assert!(text.contains("no answer within 300ms"), "{text}");
    assert!(took < CALL_TIMEOUT + MARGIN, "took {took:?}");

    // The probe got no answer either: the store holds the server for
    // unreachable and later calls return at once.
    let deadline = Instant::now() + CALL_TIMEOUT * 4;
    while !store.is_unreachable() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(store.is_unreachable(), "the probe found no answer");
    let started = Instant::now();
    let err = store.create(&record()).await.expect_err("still nothing");
    let took = started.elapsed();
    let text = chain(&err);
    eprintln!("silent server: a later call returned after {took:?}: {text}");
    assert!(err.is_transient(), "{text}");
    assert!(text.contains("PostgreSQL unreachable since"), "{text}");
    assert!(took < Duration::from_millis(100), "took {took:?}");
}

#[tokio::test]
async fn a_statement_waiting_on_a_lock_returns_a_transient_timeout_within_the_bound_and_the_store_stays_up(
) {
    let test = "a_statement_waiting_on_a_lock_returns_a_transient_timeout_within_the_bound";
    let Some(url) = url_or_skip(test) else {
        return;
    };
    let schema = schema_name();
    let pool = pool(&url).await;
    let store = PostgresStore::new(pool.clone())
        .with_schema(&schema)
        .unwrap()
        .with_call_timeout(CALL_TIMEOUT);
    store.migrate().await.unwrap();
    let kept = record();
    store.create(&kept).await.unwrap();

    let mut locker = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!(
        "BEGIN; LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
        store.table_name()
    )))
    .execute(&mut locker)
    .await
    .unwrap();

    let started = Instant::now();
    let err = store
        .load(&kept.key)
        .await
        .expect_err("the table is locked");
    let took = started.elapsed();
    let text = chain(&err);
    eprintln!("locked table: the call returned after {took:?}: {text}");
    assert!(err.is_transient(), "{text}");
    assert!(text.contains("no answer within 300ms"), "{text}");
    assert!(took < CALL_TIMEOUT + MARGIN, "took {took:?}");

    // The server answers the probe: one slow statement trips nothing.
    tokio::time::sleep(CALL_TIMEOUT).await;
    assert!(!store.is_unreachable(), "a lock wait is not an outage");

    sqlx::raw_sql("ROLLBACK")
        .execute(&mut locker)
        .await
        .unwrap();
    locker.close().await.unwrap();
    let got = store.load(&kept.key).await.unwrap();
    assert_eq!(got.map(|r| r.version), Some(1));

    drop_schema(&pool, &schema).await;
    pool.close().await;
}

#[tokio::test]
async fn query_level_errors_never_mark_the_server_unreachable() {
    let Some(url) = url_or_skip("query_level_errors_never_mark_the_server_unreachable") else {
        return;
    };
    let schema = schema_name();
    let pool = pool(&url).await;
    let store = PostgresStore::new(pool.clone())
        .with_schema(&schema)
        .unwrap();
    store.migrate().await.unwrap();
    let r = record();
    store.create(&r).await.unwrap();
    for _ in 0..3 {
        assert!(matches!(store.create(&r).await, Err(Error::AlreadyExists)));
        let mut stale = r.clone();
        stale.version = 3;
        assert!(matches!(
            store.update(&stale, 2).await,
            Err(Error::Conflict)
        ));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!store.is_unreachable());
    assert!(store.load(&r.key).await.unwrap().is_some());
    drop_schema(&pool, &schema).await;
    pool.close().await;
}
