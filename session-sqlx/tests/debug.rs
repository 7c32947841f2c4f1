//! `Debug` of a [`PostgresStore`] shows where the sessions live and never
//! the database password its pool connects with.

mod common;

use std::str::FromStr;

use common::url_or_skip;
use session_sqlx::PostgresStore;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// `url` with its password replaced by `password` (a trust-auth server, as
/// in CI, ignores it).
fn with_password(url: &str, password: &str) -> String {
    let o = PgConnectOptions::from_str(url).expect("a PostgreSQL URL");
    format!(
        "postgres://{}:{password}@{}:{}/{}",
        o.get_username(),
        o.get_host(),
        o.get_port(),
        o.get_database().unwrap_or("postgres")
    )
}

fn secret() -> String {
    format!(
        "pw{}",
        &session_core::SessionToken::generate().key().to_hex()[..20]
    )
}

#[tokio::test]
async fn debug_of_a_store_on_a_lazy_pool_never_shows_the_password() {
    let secret = secret();
    let pool = PgPoolOptions::new()
        .connect_lazy(&format!("postgres://app:{secret}@127.0.0.1:1/app"))
        .unwrap();
    let store = PostgresStore::new(pool).with_schema("tenant_a").unwrap();
    let debug = format!("{store:?}");
    assert!(!debug.contains(&secret), "{debug}");
    assert!(
        debug.contains("tenant_a") && debug.contains("sessions"),
        "schema and table: {debug}"
    );
    let pretty = format!("{store:#?}");
    assert!(!pretty.contains(&secret), "{pretty}");
}

#[tokio::test]
async fn debug_of_a_store_connected_with_a_password_url_never_shows_the_password() {
    let Some(url) = url_or_skip("debug_of_a_store_connected_with_a_password_url") else {
        return;
    };
    let secret = secret();
    let store = PostgresStore::connect(&with_password(&url, &secret))
        .await
        .expect("connect with a password in the URL (needs a trust-auth server)");
    let debug = format!("{store:?} {store:#?}");
    assert!(!debug.contains(&secret), "{debug}");
    assert!(debug.contains("public"), "{debug}");
    store.pool().close().await;
}
