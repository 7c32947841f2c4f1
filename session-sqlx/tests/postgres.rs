//! PostgreSQL-specific guarantees: tokens never stored, indexes used,
//! concurrent migrations, identifier validation, transient errors.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{drop_schema, pool, schema_name, url_or_skip};
use session_core::{
    Error, Record, SessionConfig, SessionId, SessionManager, SessionStore, SessionToken, Timestamp,
};
use session_sqlx::PostgresStore;
use sqlx::AssertSqlSafe;

async fn migrated(url: &str) -> (PostgresStore, String) {
    let schema = schema_name();
    let store = PostgresStore::new(pool(url).await)
        .with_schema(&schema)
        .unwrap();
    store.migrate().await.unwrap();
    (store, schema)
}

#[tokio::test]
async fn no_session_token_appears_anywhere_in_the_table() {
    let Some(url) = url_or_skip("no_session_token_appears_anywhere_in_the_table") else {
        return;
    };
    let (store, schema) = migrated(&url).await;
    let manager = SessionManager::new(Arc::new(store.clone()), SessionConfig::default()).unwrap();
    let mut tokens = Vec::new();
    for i in 0..20 {
        let s = manager.load(None).await.unwrap();
        s.insert("i", &i).unwrap();
        if i % 2 == 0 {
            s.login(format!("user{i}"));
        }
        let token = s.commit().await.unwrap().token().unwrap().clone();
        tokens.push(token);
    }
    // Every column of every row, as text (bytea shows as hex).
    let dump: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT t::text FROM {} AS t",
        store.table_name()
    )))
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(dump.len(), 20);
    let dump = dump.join("\n").to_lowercase();
    for token in &tokens {
        let text = token.expose();
        let raw_hex: String = token
            .expose_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!dump.contains(&text.to_lowercase()), "token text stored");
        assert!(!dump.contains(&raw_hex), "token bytes stored");
        assert!(
            dump.contains(&token.key().to_hex()),
            "the key is the token's SHA-256"
        );
    }
    drop_schema(store.pool(), &schema).await;
}

#[tokio::test]
async fn load_update_list_and_purge_use_the_indexes() {
    let Some(url) = url_or_skip("load_update_list_and_purge_use_the_indexes") else {
        return;
    };
    let (store, schema) = migrated(&url).await;
    // Enough rows that a sequential scan is clearly worse, mostly live.
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {} (key, id, \"user\", created_at, expires_at, version, data)
         SELECT sha256(g::text::bytea), gen_random_uuid(), 'u' || (g % 500),
                now(), now() + interval '1 hour' - (g % 100 = 0)::int * interval '2 hours', 1, '\\x00'
         FROM generate_series(1, 20000) AS g",
        store.table_name()
    )))
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query(AssertSqlSafe(format!("ANALYZE {}", store.table_name())))
        .execute(store.pool())
        .await
        .unwrap();
    for (op, plan) in store.query_plans().await.unwrap() {
        let index = match op {
            "purge_expired" => "sessions_expires_idx",
            "list_user" => "sessions_user_idx",
            _ => "sessions_pkey",
        };
        assert!(
            plan.contains(index),
            "{op} does not use {index}; plan:\n{plan}"
        );
        assert!(
            !plan.contains("Seq Scan"),
            "{op} scans the table; plan:\n{plan}"
        );
    }
    drop_schema(store.pool(), &schema).await;
}

#[tokio::test]
async fn concurrent_migrations_all_succeed_and_are_idempotent() {
    let Some(url) = url_or_skip("concurrent_migrations_all_succeed_and_are_idempotent") else {
        return;
    };
    let schema = schema_name();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        // Separate pools: separate connections, as separate processes would have.
        let (url, schema) = (url.clone(), schema.clone());
        tasks.push(tokio::spawn(async move {
            let store = PostgresStore::new(pool(&url).await)
                .with_schema(&schema)
                .unwrap();
            store.migrate().await
        }));
    }
    for t in tasks {
        t.await.unwrap().expect("every concurrent migrate succeeds");
    }
    let store = PostgresStore::new(pool(&url).await)
        .with_schema(&schema)
        .unwrap();
    store.migrate().await.expect("and again");
    let applied: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{schema}\".sessions_migrations"
    )))
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(applied, 2, "each migration is recorded once");
    drop_schema(store.pool(), &schema).await;
}

#[tokio::test]
async fn bad_schema_and_table_names_are_invalid_input() {
    // No server needed: names are checked before any SQL is built.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect_lazy("postgres://nobody@127.0.0.1:1/none")
        .unwrap();
    for bad in ["", "x; DROP TABLE users", "a\"b", "1st", "naïve", "a.b"] {
        let schema = PostgresStore::new(pool.clone()).with_schema(bad);
        assert!(
            matches!(schema, Err(Error::InvalidInput(_))),
            "schema {bad:?}"
        );
        let table = PostgresStore::new(pool.clone()).with_table(bad);
        assert!(
            matches!(table, Err(Error::InvalidInput(_))),
            "table {bad:?}"
        );
    }
    assert!(PostgresStore::new(pool.clone())
        .with_table(&"t".repeat(49))
        .is_err());
    assert!(PostgresStore::new(pool).with_table("Sessions_v2").is_ok());
}

#[tokio::test]
async fn custom_table_names_work_side_by_side() {
    let Some(url) = url_or_skip("custom_table_names_work_side_by_side") else {
        return;
    };
    let schema = schema_name();
    let p = pool(&url).await;
    let a = PostgresStore::new(p.clone())
        .with_schema(&schema)
        .unwrap()
        .with_table("web")
        .unwrap();
    let b = PostgresStore::new(p.clone())
        .with_schema(&schema)
        .unwrap()
        .with_table("api")
        .unwrap();
    a.migrate().await.unwrap();
    b.migrate().await.unwrap();
    let now = Timestamp::now();
    let r = Record {
        key: SessionToken::generate().key(),
        id: SessionId::generate(),
        user: Some("alice".into()),
        created_at: now,
        expires_at: now.saturating_add(Duration::from_secs(60)),
        version: 1,
        data: vec![1],
    };
    a.create(&r).await.unwrap();
    assert!(b.load(&r.key).await.unwrap().is_none());
    assert_eq!(a.load(&r.key).await.unwrap(), Some(r));
    drop_schema(&p, &schema).await;
}

#[tokio::test]
async fn an_unreachable_server_is_a_transient_error_within_the_acquire_timeout() {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("postgres://nobody@127.0.0.1:1/none")
        .unwrap();
    let store = PostgresStore::new(pool);
    let started = std::time::Instant::now();
    let err = store
        .load(&SessionToken::generate().key())
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "the sqlx error is kept"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}
