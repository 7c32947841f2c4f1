//! PostgresStore behind pgbouncer in transaction pooling mode: the whole
//! conformance suite with `Pooler::Transaction`, and the clear error that
//! names the setting when it is missing. Each test starts its own pgbouncer
//! (skipped, or failed under CI, when the binary is missing).

mod common;

use std::time::{Duration, Instant};

use common::pgbouncer::PgBouncer;
use common::{drop_schema, pool, schema_name, url_or_skip};
use session_core::{SessionStore, SessionToken};
use session_sqlx::{Pooler, PostgresStore};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::Connection as _;

session_test_suite::conformance_tests!(common::fresh_store_behind_pgbouncer);

/// The server URL and a pgbouncer in front of it, or `None` after a loud
/// skip (a failure under CI).
fn bouncer_or_skip(test: &str, pool_size: u32, extra: &str) -> Option<(String, PgBouncer)> {
    let url = url_or_skip(test)?;
    match PgBouncer::start(&url, pool_size, extra) {
        Ok(bouncer) => Some((url, bouncer)),
        Err(why) => {
            session_test_suite::skip(test, &why);
            None
        }
    }
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    session_core::error_chain(e)
}

#[tokio::test]
async fn without_the_setting_connecting_through_stock_pgbouncer_is_a_permanent_error_naming_it() {
    let test = "without_the_setting_connecting_through_stock_pgbouncer_is_a_permanent_error";
    let Some((_url, bouncer)) = bouncer_or_skip(test, 5, "") else {
        return;
    };
    let err = PostgresStore::connect(&bouncer.url)
        .await
        .expect_err("stock pgbouncer refuses sqlx's extra_float_digits");
    let text = chain(&err);
    assert!(!err.is_transient(), "{text}");
    assert!(text.contains("pooler=transaction"), "{text}");
    assert!(
        text.contains("unsupported startup parameter: extra_float_digits"),
        "the server's own message is kept as the source: {text}"
    );
}

#[tokio::test]
async fn without_the_setting_a_statement_prepared_on_another_server_connection_is_a_clear_error() {
    let test = "without_the_setting_a_statement_prepared_on_another_server_connection";
    // pgbouncer told to ignore extra_float_digits, so connecting works and
    // the prepared statements are what breaks.
    let Some((url, bouncer)) =
        bouncer_or_skip(test, 2, "ignore_startup_parameters = extra_float_digits")
    else {
        return;
    };
    let schema = schema_name();
    let direct = PostgresStore::new(pool(&url).await)
        .with_schema(&schema)
        .unwrap();
    direct.migrate().await.unwrap();
    let pooled = PgPoolOptions::new()
        .max_connections(1)
        .connect(&bouncer.url)
        .await
        .unwrap();
    let store = PostgresStore::new(pooled.clone())
        .with_schema(&schema)
        .unwrap();
    let key = SessionToken::generate().key();
    // Prepares `sqlx_s_N` on the server connection pgbouncer lends now...
    assert_eq!(store.load(&key).await.unwrap(), None);
    // ...which another client then holds in a transaction (pgbouncer lends
    // the most recently used server connection first), so the next load's
    // Bind goes to a server connection that never saw the statement.
    let mut other = sqlx::PgConnection::connect_with(
        &bouncer
            .url
            .parse::<PgConnectOptions>()
            .unwrap()
            .extra_float_digits(None),
    )
    .await
    .unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut other).await.unwrap();
    sqlx::raw_sql("SELECT 1").execute(&mut other).await.unwrap();
    let err = store
        .load(&key)
        .await
        .expect_err("the statement lives on the other server connection");
    let text = chain(&err);
    assert!(!err.is_transient(), "{text}");
    assert!(text.contains("pooler=transaction"), "{text}");
    assert!(text.contains("sqlx_s_"), "{text}");
    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
    other.close().await.unwrap();
    pooled.close().await;
    drop(bouncer);
    drop_schema(direct.pool(), &schema).await;
}

#[tokio::test]
async fn with_the_setting_the_same_interleaving_works() {
    let test = "with_the_setting_the_same_interleaving_works";
    let Some((url, bouncer)) = bouncer_or_skip(test, 2, "") else {
        return;
    };
    let schema = schema_name();
    let options: PgConnectOptions = bouncer.url.parse().unwrap();
    let store = PostgresStore::connect_with(options.clone(), Pooler::Transaction)
        .await
        .unwrap()
        .with_schema(&schema)
        .unwrap();
    store.migrate().await.unwrap();
    store.check_schema().await.unwrap();
    let record =
        session_test_suite::cases::record_expiring_in(Some("ann"), Duration::from_secs(60));
    store.create(&record).await.unwrap();
    let mut other = sqlx::PgConnection::connect_with(&options.extra_float_digits(None))
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN").execute(&mut other).await.unwrap();
    sqlx::raw_sql("SELECT 1").execute(&mut other).await.unwrap();
    assert_eq!(store.load(&record.key).await.unwrap(), Some(record.clone()));
    assert_eq!(store.list_user("ann").await.unwrap(), vec![record]);
    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
    other.close().await.unwrap();
    store.pool().close().await;
    drop(bouncer);
    drop_schema(&pool(&url).await, &schema).await;
}

/// Mean time of `n` calls of `op`.
async fn mean<F, Fut>(n: u32, mut op: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    for _ in 0..n {
        op().await;
    }
    started.elapsed() / n
}

/// Prints per-call latency of `load` and `update`: direct with prepared
/// statements, direct and through pgbouncer with `Pooler::Transaction`,
/// and through pgbouncer with the alternative, an explicit transaction
/// around an unnamed statement. A measurement, not a check:
/// `cargo test -p session-sqlx --test pgbouncer -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement; run by hand"]
async fn measure_per_call_latency() {
    let Some((url, bouncer)) = bouncer_or_skip("measure_per_call_latency", 5, "") else {
        return;
    };
    let schema = schema_name();
    let n = 2000;
    let direct = PostgresStore::new(pool(&url).await)
        .with_schema(&schema)
        .unwrap();
    direct.migrate().await.unwrap();
    let direct_simple = PostgresStore::connect_with(url.parse().unwrap(), Pooler::Transaction)
        .await
        .unwrap()
        .with_schema(&schema)
        .unwrap();
    let bounced = PostgresStore::connect_with(bouncer.url.parse().unwrap(), Pooler::Transaction)
        .await
        .unwrap()
        .with_schema(&schema)
        .unwrap();
    for (name, store) in [
        ("direct, prepared (Pooler::Session)", &direct),
        ("direct, Pooler::Transaction", &direct_simple),
        ("pgbouncer, Pooler::Transaction", &bounced),
    ] {
        let mut r = session_test_suite::cases::record_expiring_in(None, Duration::from_secs(600));
        store.create(&r).await.unwrap();
        let load = mean(n, || async {
            store.load(&r.key).await.unwrap().unwrap();
        })
        .await;
        let started = Instant::now();
        for _ in 0..n {
            r.version += 1;
            store.update(&r, r.version - 1).await.unwrap();
        }
        let update = started.elapsed() / n;
        println!("{name}: load {load:?}, update {update:?} per call");
    }
    // The alternative: BEGIN, an unnamed (non-persistent) statement, COMMIT.
    let table = direct.table_name();
    let key = vec![7u8; 32];
    let pooled = PgPoolOptions::new()
        .connect_with(
            bouncer
                .url
                .parse::<PgConnectOptions>()
                .unwrap()
                .extra_float_digits(None),
        )
        .await
        .unwrap();
    let sql =
        format!("SELECT key, version, data FROM {table} WHERE key = $1 AND expires_at > now()");
    let in_tx = mean(n, || async {
        let mut tx = pooled.begin().await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(&key)
            .persistent(false)
            .fetch_optional(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    })
    .await;
    println!("pgbouncer, BEGIN + unnamed statement + COMMIT: load {in_tx:?} per call");
    pooled.close().await;
    bounced.pool().close().await;
    direct_simple.pool().close().await;
    drop(bouncer);
    drop_schema(direct.pool(), &schema).await;
}
