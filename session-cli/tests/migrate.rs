//! `sessionctl migrate URL` on a fresh PostgreSQL database, and opening a
//! store URL with `migrate=false` before and after it.

use std::process::{Command, Output};

use session_cli::StoreUrl;
use session_core::SessionToken;
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};

const POSTGRES_VAR: &str = "SESSION_TEST_POSTGRES_URL";

fn sessionctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sessionctl"))
        .args(args)
        .output()
        .expect("run sessionctl")
}

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    let (server, _) = base.rsplit_once('/').expect("a URL with a database");
    format!("{server}/{db}")
}

fn error_text(e: &session_core::Error) -> String {
    session_cli::error_chain(e)
}

#[test]
fn sessionctl_migrate_creates_the_table_and_running_it_twice_is_fine() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(migrate_twice());
}

async fn migrate_twice() {
    let Some(url) = session_test_suite::url_or_skip(
        POSTGRES_VAR,
        "sessionctl_migrate_creates_the_table_and_running_it_twice_is_fine",
    ) else {
        return;
    };
    // A database of its own: `migrate` works on `public.sessions`.
    let db = format!(
        "sess_cli_{}",
        &SessionToken::generate().key().to_hex()[..12]
    );
    let mut admin = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let db_url = with_database(&url, &db);

    let checked = StoreUrl::parse(&format!("{db_url}?migrate=false")).unwrap();
    let before = checked.open().await.expect_err("no table yet");
    assert!(
        error_text(&before).contains("run `sessionctl migrate URL` as the table's owner"),
        "{}",
        error_text(&before)
    );

    for run in ["first", "second"] {
        let out = sessionctl(&["migrate", &db_url]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{run} run: {:?}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            stdout.trim_end(),
            "\"public\".\"sessions\" is at migration 3",
            "{run} run"
        );
    }
    let store = checked.open().await.expect("the table is there now");
    drop(store);
    StoreUrl::parse(&db_url)
        .unwrap()
        .open_without_migrating()
        .await
        .expect("and checks as up to date");

    sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE {db} WITH (FORCE)")))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
}

#[test]
fn sessionctl_migrate_on_a_store_without_a_schema_says_so() {
    let out = sessionctl(&["migrate", "memory:"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        "memory stores need no migration"
    );
}
