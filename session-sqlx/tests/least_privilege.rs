//! An application role that may not create anything: the owner migrates,
//! the app runs with only SELECT, INSERT, UPDATE and DELETE on the table
//! and USAGE on its schema.

mod common;

use std::str::FromStr;
use std::sync::Arc;

use common::{drop_schema, pool, schema_name, url_or_skip};
use session_core::{SessionStore, SessionToken};
use session_sqlx::PostgresStore;
use session_test_suite::{run_case, CASES};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};

/// A login role with no rights yet; [`Role::drop`] removes it, what it was
/// granted, and the test's schemas.
struct Role {
    name: String,
    admin: PgPool,
}

impl Role {
    async fn create(admin: &PgPool) -> Self {
        let name = format!(
            "sess_app_{}",
            &SessionToken::generate().key().to_hex()[..12]
        );
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE ROLE {name} LOGIN")))
            .execute(admin)
            .await
            .unwrap();
        Self {
            name,
            admin: admin.clone(),
        }
    }

    /// `USAGE` on `schema`; SELECT, INSERT, UPDATE, DELETE on its sessions table.
    async fn grant_app_rights(&self, schema: &str) {
        let name = &self.name;
        sqlx::raw_sql(AssertSqlSafe(format!(
            r#"GRANT USAGE ON SCHEMA "{schema}" TO {name};
            GRANT SELECT, INSERT, UPDATE, DELETE ON "{schema}".sessions TO {name};"#
        )))
        .execute(&self.admin)
        .await
        .unwrap();
    }

    /// A pool that logs in as this role (trust authentication).
    async fn pool(&self, url: &str) -> PgPool {
        let options = PgConnectOptions::from_str(url)
            .unwrap()
            .username(&self.name);
        PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .unwrap()
    }

    async fn drop(self, schemas: &[&str]) {
        for schema in schemas {
            drop_schema(&self.admin, schema).await;
        }
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP OWNED BY {0}; DROP ROLE {0}",
            self.name
        )))
        .execute(&self.admin)
        .await
        .unwrap();
    }
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    session_core::error_chain(e)
}

#[tokio::test]
async fn a_role_with_only_dml_rights_opens_checks_migrates_and_passes_the_suite() {
    let Some(url) =
        url_or_skip("a_role_with_only_dml_rights_opens_checks_migrates_and_passes_the_suite")
    else {
        return;
    };
    let admin = pool(&url).await;
    let role = Role::create(&admin).await;
    let (schema, empty) = (schema_name(), schema_name());
    // The owner migrates once.
    let owner = PostgresStore::new(admin.clone())
        .with_schema(&schema)
        .unwrap();
    owner.migrate().await.unwrap();
    role.grant_app_rights(&schema).await;
    sqlx::raw_sql(AssertSqlSafe(format!(
        r#"CREATE SCHEMA "{empty}"; GRANT USAGE ON SCHEMA "{empty}" TO {}"#,
        role.name
    )))
    .execute(&admin)
    .await
    .unwrap();

    let app_pool = role.pool(&url).await;
    let app = PostgresStore::new(app_pool.clone())
        .with_schema(&schema)
        .unwrap();
    // The role really may not create anything here.
    let denied = sqlx::raw_sql(AssertSqlSafe(format!(
        r#"CREATE TABLE "{schema}".nope (x int)"#
    )))
    .execute(&app_pool)
    .await
    .expect_err("the app role may not create tables");
    assert!(denied.to_string().contains("permission denied"), "{denied}");

    app.check_schema().await.expect("the schema is up to date");
    app.migrate()
        .await
        .expect("migrate on an up-to-date schema needs no CREATE right");
    app.check_schema().await.unwrap();

    // Every case of the suite needs only the four table rights; each gets
    // the table emptied first, as a fresh schema would be.
    let store: Arc<dyn SessionStore> = Arc::new(app.clone());
    let mut failures = Vec::new();
    for case in CASES {
        sqlx::raw_sql(AssertSqlSafe(format!(r#"DELETE FROM "{schema}".sessions"#)))
            .execute(&app_pool)
            .await
            .unwrap();
        let outcome = run_case(case.run, store.clone()).await;
        if let Some(failure) = outcome.failure {
            failures.push(format!("{}: {failure}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "as the app role:\n{}",
        failures.join("\n")
    );

    // Against a schema with no table, the check says what to run.
    let unmigrated = PostgresStore::new(app_pool.clone())
        .with_schema(&empty)
        .unwrap();
    let err = unmigrated.check_schema().await.unwrap_err();
    let text = chain(&err);
    assert!(!err.is_transient(), "{text}");
    assert!(
        text.contains("run `sessionctl migrate URL` as the table's owner"),
        "{text}"
    );
    // And migrating there is refused by the server, not attempted around it.
    let err = unmigrated.migrate().await.unwrap_err();
    assert!(!err.is_transient(), "{}", chain(&err));
    assert!(chain(&err).contains("permission denied"), "{}", chain(&err));

    app_pool.close().await;
    role.drop(&[&schema, &empty]).await;
}

#[tokio::test]
async fn a_table_behind_its_release_names_both_migrations_and_what_to_run() {
    let Some(url) = url_or_skip("a_table_behind_its_release_names_both_migrations_and_what_to_run")
    else {
        return;
    };
    let admin = pool(&url).await;
    let schema = schema_name();
    let store = PostgresStore::new(admin.clone())
        .with_schema(&schema)
        .unwrap();
    store.migrate().await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!(
        r#"COMMENT ON TABLE "{schema}".sessions IS 'session-sqlx schema 2'"#
    )))
    .execute(&admin)
    .await
    .unwrap();
    let text = chain(&store.check_schema().await.unwrap_err());
    assert!(
        text.contains("is at migration 2, this version needs 3: run `sessionctl migrate URL`"),
        "{text}"
    );
    drop_schema(&admin, &schema).await;
}

#[tokio::test]
async fn a_table_migrated_before_the_catalog_mark_checks_and_gets_the_mark() {
    let Some(url) =
        url_or_skip("a_table_migrated_before_the_catalog_mark_checks_and_gets_the_mark")
    else {
        return;
    };
    let admin = pool(&url).await;
    let schema = schema_name();
    let store = PostgresStore::new(admin.clone())
        .with_schema(&schema)
        .unwrap();
    store.migrate().await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!(
        r#"COMMENT ON TABLE "{schema}".sessions IS NULL"#
    )))
    .execute(&admin)
    .await
    .unwrap();
    // The owner can read the migrations table: the check passes.
    store.check_schema().await.unwrap();
    store.migrate().await.unwrap();
    let comment: Option<String> =
        sqlx::query_scalar("SELECT obj_description(to_regclass($1), 'pg_class')")
            .bind(store.table_name())
            .fetch_one(&admin)
            .await
            .unwrap();
    assert_eq!(comment.as_deref(), Some("session-sqlx schema 3"));
    drop_schema(&admin, &schema).await;
}
