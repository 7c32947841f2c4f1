//! A fresh schema per test on the server named by `SESSION_TEST_POSTGRES_URL`.

#![allow(dead_code)]

use std::sync::Arc;

use session_core::SessionToken;
use session_sqlx::{Pooler, PostgresStore};
use session_test_suite::{server, Provision, ServerKind, TestStore};
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool};

pub const URL_VAR: &str = "SESSION_TEST_POSTGRES_URL";

/// A random schema name, so tests run in parallel on one server.
pub fn schema_name() -> String {
    format!(
        "sess_test_{}",
        &SessionToken::generate().key().to_hex()[..16]
    )
}

pub async fn pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(8)
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {URL_VAR}: {e}"))
}

pub async fn drop_schema(pool: &PgPool, schema: &str) {
    sqlx::query(AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(pool)
    .await
    .expect("drop the test schema");
}

/// A migrated store in its own schema, dropped after the test. The server is
/// the one in `SESSION_TEST_POSTGRES_URL`, or a Docker container with the
/// suite's `testcontainers` feature.
pub async fn fresh_store() -> Provision {
    let server = match server(URL_VAR, ServerKind::Postgres).await {
        Ok(server) => server,
        Err(skip) => return skip,
    };
    let pool = pool(&server.url).await;
    let schema = schema_name();
    let store = PostgresStore::new(pool.clone())
        .with_schema(&schema)
        .expect("valid schema name");
    store.migrate().await.expect("migrate the test schema");
    TestStore::new(Arc::new(store))
        .with_cleanup(move || async move {
            drop_schema(&pool, &schema).await;
            pool.close().await;
            drop(server);
        })
        .into()
}

/// For the Postgres-specific tests: the URL, or `None` after a loud skip (a
/// failure under CI).
pub fn url_or_skip(test: &str) -> Option<String> {
    session_test_suite::url_or_skip(URL_VAR, test)
}

pub mod pgbouncer;

/// A migrated store in its own schema, reached through a pgbouncer of its
/// own in transaction pooling mode with [`Pooler::Transaction`]; the schema
/// is created and migrated through the pooler too. Skipped (a failure under
/// CI) without a server or without the pgbouncer binary.
pub async fn fresh_store_behind_pgbouncer() -> Provision {
    let server = match server(URL_VAR, ServerKind::Postgres).await {
        Ok(server) => server,
        Err(skip) => return skip,
    };
    let bouncer = match pgbouncer::PgBouncer::start(&server.url, 5, "") {
        Ok(bouncer) => bouncer,
        Err(why) => return Provision::Skip(why),
    };
    let options = bouncer.url.parse().expect("a PostgreSQL URL");
    let schema = schema_name();
    let store = PostgresStore::connect_with(options, Pooler::Transaction)
        .await
        .expect("connect through pgbouncer")
        .with_schema(&schema)
        .expect("valid schema name");
    store
        .migrate()
        .await
        .expect("migrate the test schema through pgbouncer");
    let direct = pool(&server.url).await;
    let pooled = store.pool().clone();
    TestStore::new(Arc::new(store))
        .with_cleanup(move || async move {
            pooled.close().await;
            drop(bouncer);
            drop_schema(&direct, &schema).await;
            direct.close().await;
            drop(server);
        })
        .into()
}
