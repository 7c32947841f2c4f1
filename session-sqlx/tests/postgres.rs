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
            s.login(format!("user{i}")).unwrap();
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
        "INSERT INTO {} (key, id, \"user\", created_at, expires_at, purge_at, version, data)
         SELECT sha256(g::text::bytea), gen_random_uuid(), 'u' || (g % 500), now(), d, d, 1, '\\x00'
         FROM generate_series(1, 20000) AS g,
              LATERAL (SELECT now() + interval '1 hour'
                              - (g % 100 = 0)::int * interval '2 hours' AS d) AS deadline",
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
            "purge_expired" => "sessions_purge_idx",
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
    assert_eq!(applied, 3, "each migration is recorded once");
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

/// Counters PostgreSQL's statistics report for the store's table:
/// (updates, of which HOT).
async fn update_counts(store: &PostgresStore, schema: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
         WHERE schemaname = $1 AND relname = 'sessions'",
    )
    .bind(schema)
    .fetch_one(store.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn updates_that_extend_the_deadline_are_hot_and_touch_no_index() {
    let Some(url) = url_or_skip("updates_that_extend_the_deadline_are_hot_and_touch_no_index")
    else {
        return;
    };
    let (store, schema) = migrated(&url).await;
    let mut r =
        session_test_suite::cases::record_expiring_in(Some("alice"), Duration::from_secs(60));
    store.create(&r).await.unwrap();
    for _ in 0..50 {
        r.version += 1;
        r.expires_at = r.expires_at.saturating_add(Duration::from_secs(1));
        r.data.push(b'x');
        store.update(&r, r.version - 1).await.unwrap();
    }
    // Statistics reach the shared counters when a backend goes idle, at most
    // about once a second.
    let mut counts = (0, 0);
    for _ in 0..100 {
        counts = update_counts(&store, &schema).await;
        if counts.0 >= 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (updates, hot) = counts;
    assert!(updates >= 50, "{counts:?}");
    assert!(
        hot * 10 >= updates * 9,
        "at least 90% of the updates are HOT: {counts:?}"
    );
    assert_eq!(store.load(&r.key).await.unwrap(), Some(r));
    drop_schema(store.pool(), &schema).await;
}

#[tokio::test]
async fn purge_deletes_the_expired_and_files_the_extended_again() {
    let Some(url) = url_or_skip("purge_deletes_the_expired_and_files_the_extended_again") else {
        return;
    };
    let (store, schema) = migrated(&url).await;
    let short = Duration::from_millis(300);
    let expiring = session_test_suite::cases::record_expiring_in(Some("bob"), short);
    let mut extended = session_test_suite::cases::record_expiring_in(Some("bob"), short);
    store.create(&expiring).await.unwrap();
    store.create(&extended).await.unwrap();
    extended.version = 2;
    extended.expires_at = extended.expires_at.saturating_add(Duration::from_secs(60));
    store.update(&extended, 1).await.unwrap();
    // The server's own clock decides what is due.
    tokio::time::sleep(Duration::from_millis(400)).await;

    assert_eq!(store.purge_expired().await.unwrap(), 1);
    assert_eq!(store.load(&expiring.key).await.unwrap(), None);
    assert_eq!(
        store.load(&extended.key).await.unwrap(),
        Some(extended.clone())
    );
    let filed: bool = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT purge_at = expires_at FROM {} WHERE key = $1",
        store.table_name()
    )))
    .bind(extended.key.as_bytes().as_slice())
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert!(filed, "the extended row is filed at its new deadline");
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    assert_eq!(store.list_user("bob").await.unwrap(), vec![extended]);
    drop_schema(store.pool(), &schema).await;
}

#[tokio::test]
async fn a_table_from_before_purge_at_is_migrated_with_its_sessions() {
    let Some(url) = url_or_skip("a_table_from_before_purge_at_is_migrated_with_its_sessions")
    else {
        return;
    };
    let schema = schema_name();
    let pool = pool(&url).await;
    // The layout migrations 1 and 2 left, with one live session in it.
    sqlx::raw_sql(AssertSqlSafe(format!(
        r#"CREATE SCHEMA "{schema}";
        CREATE TABLE "{schema}".sessions_migrations (
            version int4 PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
        INSERT INTO "{schema}".sessions_migrations (version) VALUES (1), (2);
        CREATE TABLE "{schema}".sessions (
            key bytea PRIMARY KEY CHECK (octet_length(key) = 32), id uuid NOT NULL,
            "user" text, created_at timestamptz NOT NULL, expires_at timestamptz NOT NULL,
            version int8 NOT NULL, data bytea NOT NULL);
        CREATE INDEX sessions_user_idx ON "{schema}".sessions ("user") WHERE "user" IS NOT NULL;
        CREATE INDEX sessions_expires_idx ON "{schema}".sessions (expires_at);"#
    )))
    .execute(&pool)
    .await
    .unwrap();
    let r = session_test_suite::cases::record_expiring_in(Some("carol"), Duration::from_secs(600));
    sqlx::query(AssertSqlSafe(format!(
        r#"INSERT INTO "{schema}".sessions (key, id, "user", created_at, expires_at, version, data)
        VALUES ($1, $2, $3, to_timestamp($4::float8 / 1000), to_timestamp($5::float8 / 1000), 1, $6)"#
    )))
    .bind(r.key.as_bytes().as_slice())
    .bind(r.id.as_uuid())
    .bind(r.user.as_deref())
    .bind(r.created_at.as_millis())
    .bind(r.expires_at.as_millis())
    .bind(r.data.as_slice())
    .execute(&pool)
    .await
    .unwrap();

    let store = PostgresStore::new(pool).with_schema(&schema).unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.load(&r.key).await.unwrap(), Some(r.clone()));
    assert_eq!(store.list_user("carol").await.unwrap(), vec![r.clone()]);
    let mut next = r.clone();
    next.version = 2;
    next.expires_at = next.expires_at.saturating_add(Duration::from_secs(60));
    store.update(&next, 1).await.unwrap();
    assert_eq!(store.load(&r.key).await.unwrap(), Some(next));
    drop_schema(store.pool(), &schema).await;
}

#[tokio::test]
async fn server_errors_read_without_the_servers_source_line_and_keep_the_sqlstate() {
    let Some(url) =
        url_or_skip("server_errors_read_without_the_servers_source_line_and_keep_the_sqlstate")
    else {
        return;
    };
    // Never migrated: the table does not exist.
    let store = PostgresStore::new(pool(&url).await)
        .with_schema(&schema_name())
        .unwrap();
    let err = store
        .load(&SessionToken::generate().key())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backend { .. }), "{err:?}");
    let mut chain = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = next {
        chain.push(e.to_string());
        next = e.source();
    }
    let text = chain.join(": ");
    assert!(
        chain.len() >= 2,
        "the server's error is kept as a source: {text}"
    );
    assert!(text.contains("does not exist (SQLSTATE 42P01)"), "{text}");
    assert!(!text.contains(" at line "), "{text}");
}
