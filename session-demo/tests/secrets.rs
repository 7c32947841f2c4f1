//! No store password reaches what the demo prints: the real binary, with
//! `RUST_LOG=trace`, is given PostgreSQL and Redis URLs holding a unique
//! password, serves a login cycle (or fails to start), stops, and no line of
//! its stdout or stderr holds the password.
//!
//! The servers come from `SESSION_TEST_POSTGRES_URL` and
//! `SESSION_TEST_REDIS_URL` (host and port only: the password is replaced by
//! the test's own, which a trust-auth PostgreSQL and a Redis without
//! `requirepass` ignore or refuse). Unset, the tests are skipped loudly, and
//! fail under `CI`. The Redis success path runs on a `redis-server
//! --requirepass` of its own.

mod common;
mod process;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::Client;
use process::{redis_host_port, unique_secret, DemoProcess, PgServer};
use serde_json::{json, Value};
use session_test_suite::{free_loopback_port, skip, url_or_skip};

const POSTGRES_VAR: &str = "SESSION_TEST_POSTGRES_URL";
const REDIS_VAR: &str = "SESSION_TEST_REDIS_URL";

/// Runs one SQL statement on the server of `url`, from a thread of its own
/// (so it works inside and outside a runtime, and from `Drop`).
fn admin(url: &str, sql: String) {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("connect to {POSTGRES_VAR}: {e}"));
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        });
    })
    .join()
    .expect("the admin statement ran");
}

/// A database of the test's own, dropped on drop.
struct TempDatabase {
    server_url: String,
    name: String,
}

impl TempDatabase {
    fn create(server_url: &str) -> Self {
        let name = format!(
            "session_demo_secrets_{}",
            &session_core::SessionToken::generate().key().to_hex()[..12]
        );
        admin(server_url, format!("CREATE DATABASE {name}"));
        Self {
            server_url: server_url.to_owned(),
            name,
        }
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let url = self.server_url.clone();
        // Never a panic while unwinding from another one.
        let _ = std::panic::catch_unwind(|| admin(&url, sql));
    }
}

/// A `redis-server --requirepass` of the test's own on a free loopback
/// port, killed on drop.
struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    async fn start(password: &str) -> Self {
        let port = free_loopback_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--requirepass", password])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let mut server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            let exited = server.child.try_wait().ok().flatten();
            assert!(exited.is_none(), "redis-server exited: {exited:?}");
            assert!(Instant::now() < deadline, "redis-server did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_server_installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A person's visit: look, log in, count, list sessions, log out.
async fn a_login_cycle(addr: SocketAddr) {
    let c = Client::at(addr, "secrets-test");
    let me = c.get("/api/me").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.json["user"], Value::Null);
    let login = c.login("alice").await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);
    assert_eq!(login.json, json!({ "user": "alice" }));
    assert_eq!(c.post_empty("/api/counter").await.json["count"], 1);
    assert_eq!(c.get("/api/sessions").await.status, StatusCode::OK);
    assert_eq!(
        c.post_empty("/api/logout").await.status,
        StatusCode::NO_CONTENT
    );
}

/// Serves `store` (which holds `secret`), runs a login cycle, stops, and
/// checks every line the demo printed.
async fn serve_and_scan(store: &str, secret: &str, shown: &str) {
    let mut demo = DemoProcess::spawn(store);
    if let Err(out) = demo.wait_serving().await {
        panic!("the demo did not serve:\n{}", out.all());
    }
    a_login_cycle(demo.addr).await;
    let out = demo.stop();
    out.assert_never_says(secret);
    let all = out.all();
    assert!(
        out.stdout.iter().any(|l| l.contains(shown)),
        "the store is logged, as {shown}:\n{all}"
    );
    assert!(
        all.contains("session committed") && all.contains("shutting down"),
        "TRACE events of the whole run were captured:\n{all}"
    );
}

#[tokio::test]
async fn a_postgres_password_never_reaches_the_demos_output_while_it_serves() {
    let Some(url) = url_or_skip(POSTGRES_VAR, "postgres password in the demo's output") else {
        return;
    };
    let server = PgServer::of(&url);
    let db = TempDatabase::create(&url);
    let secret = unique_secret();
    let store = server.url(Some(&secret), &db.name);
    let shown = format!("postgres://{}:***@", server.user);
    serve_and_scan(&store, &secret, &shown).await;
}

/// Starts the demo on `store`, which the Redis server refuses, and checks
/// that it exits with an error that names the store (redacted as `shown`)
/// and gives the cause, without `secret` anywhere.
fn refused_at_start_up(store: &str, secret: &str, shown: &str) {
    let out = DemoProcess::spawn(store).wait_exit(Duration::from_secs(60));
    out.assert_never_says(secret);
    let all = out.all();
    assert!(
        out.status.is_some_and(|s| !s.success()),
        "the demo exits with an error:\n{all}"
    );
    let error = out
        .stderr
        .iter()
        .find(|l| l.starts_with(&format!("session-demo: opening {shown}")))
        .unwrap_or_else(|| panic!("the start-up error names the store as {shown}:\n{all}"));
    assert!(
        error.contains("redis backend error: "),
        "the error shows its cause: {error}"
    );
}

#[tokio::test]
async fn a_redis_password_never_reaches_the_demos_output_while_it_serves_or_is_refused() {
    if !redis_server_installed() {
        skip(
            "redis password in the demo's output",
            "install redis-server",
        );
        return;
    }
    let secret = unique_secret();
    let redis = OwnRedis::start(&secret).await;
    let store = format!("redis://default:{secret}@127.0.0.1:{}", redis.port);
    serve_and_scan(&store, &secret, "redis://default:***@127.0.0.1:").await;

    // The wrong password (WRONGPASS): neither it nor the right one shows.
    let wrong = unique_secret();
    let store = format!("redis://default:{wrong}@127.0.0.1:{}", redis.port);
    refused_at_start_up(&store, &wrong, "redis://default:***@127.0.0.1:");
    refused_at_start_up(&store, &secret, "redis://default:***@127.0.0.1:");
}

#[tokio::test]
async fn a_redis_password_the_server_refuses_never_reaches_the_start_up_error() {
    let Some(url) = url_or_skip(REDIS_VAR, "redis password in a start-up error") else {
        return;
    };
    // A password alone is sent as `AUTH password`, which a server without
    // one refuses. (`default:password` would be accepted there: the default
    // user of a Redis without `requirepass` takes any password.)
    let secret = unique_secret();
    let store = format!("redis://:{secret}@{}", redis_host_port(&url));
    refused_at_start_up(&store, &secret, "redis://:***@");
}
