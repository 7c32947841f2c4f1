//! Soak test: 200 concurrent clients drive the demo binary over loopback HTTP
//! (login, counter increments, listing sessions, revoking one, logout) on
//! sled, PostgreSQL and Redis. Every client checks every answer; the test
//! wants zero 5xx, zero lost increments and a stable resident set.
//!
//! Each backend runs `SESSION_SOAK_SECS` seconds (default 60 under `CI`, 10
//! otherwise) with `SESSION_SOAK_CLIENTS` clients (default 200). The backends
//! run one after the other, never together.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as Hyper;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use session_test_suite::{ci_mode, url_or_skip};

/// The cookie name with `--dev-cookies`.
const COOKIE: &str = "session";
const INCREMENTS: u64 = 5;

/// Backends take turns: each soak gets the whole machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn seconds() -> u64 {
    std::env::var("SESSION_SOAK_SECS")
        .ok()
        .map(|s| s.parse().expect("SESSION_SOAK_SECS is a number of seconds"))
        .unwrap_or(if ci_mode() { 60 } else { 10 })
}

fn clients() -> usize {
    std::env::var("SESSION_SOAK_CLIENTS")
        .ok()
        .map(|s| s.parse().expect("SESSION_SOAK_CLIENTS is a number"))
        .unwrap_or(200)
}

/// The demo binary, killed on drop.
struct DemoProcess {
    child: Child,
    addr: SocketAddr,
}

impl DemoProcess {
    fn spawn(store: &str, extra: &[&str], log: &PathBuf) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], session_test_suite::free_loopback_port()));
        let log = std::fs::File::create(log).expect("create the demo log");
        let child = Command::new(env!("CARGO_BIN_EXE_session-demo"))
            .args([
                "--store",
                store,
                "--listen",
                &addr.to_string(),
                "--dev-cookies",
            ])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the demo");
        Self { child, addr }
    }

    /// Resident set size in KiB, from `/proc`.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read the demo's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc status")
    }
}

impl Drop for DemoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Default)]
struct Totals {
    requests: AtomicU64,
    server_errors: AtomicU64,
    /// Any other answer the client did not expect (wrong status, wrong body,
    /// timeout, connection error).
    unexpected: AtomicU64,
    lost_increments: AtomicU64,
    cycles: AtomicU64,
    first_problem: Mutex<Option<String>>,
}

impl Totals {
    fn problem(&self, what: String) {
        self.unexpected.fetch_add(1, Ordering::Relaxed);
        self.first_problem.lock().unwrap().get_or_insert(what);
    }
}

type Http = Hyper<HttpConnector, Full<Bytes>>;

/// One browser: a cookie jar of one session cookie.
struct Jar {
    http: Http,
    addr: SocketAddr,
    token: Option<String>,
    totals: Arc<Totals>,
}

impl Jar {
    /// Sends a request; `None` (after counting a problem) if it failed
    /// without an HTTP answer or answered 5xx.
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Option<(StatusCode, Value)> {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(format!("http://{}{path}", self.addr));
        if method != Method::GET {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(t) = &self.token {
            req = req.header(header::COOKIE, format!("{COOKIE}={t}"));
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        self.totals.requests.fetch_add(1, Ordering::Relaxed);
        let res = match tokio::time::timeout(Duration::from_secs(30), self.http.request(req)).await
        {
            Ok(Ok(res)) => res,
            Ok(Err(e)) => {
                self.totals.problem(format!("{method} {path}: {e}"));
                return None;
            }
            Err(_) => {
                self.totals
                    .problem(format!("{method} {path}: no answer in 30 s"));
                return None;
            }
        };
        let status = res.status();
        for value in res.headers().get_all(header::SET_COOKIE) {
            let c = cookie::Cookie::parse(value.to_str().unwrap().to_owned()).unwrap();
            if c.name() == COOKIE {
                self.token = (!c.value().is_empty()).then(|| c.value().to_owned());
            }
        }
        let bytes = res.into_body().collect().await.ok()?.to_bytes();
        if status.is_server_error() {
            self.totals.server_errors.fetch_add(1, Ordering::Relaxed);
            self.totals.problem(format!(
                "{method} {path}: {status} {}",
                String::from_utf8_lossy(&bytes)
            ));
            return None;
        }
        Some((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// `send`, wanting `want`; `None` after counting a problem otherwise.
    async fn expect(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Value>,
        want: StatusCode,
    ) -> Option<Value> {
        let (status, json) = self.send(method.clone(), path, body).await?;
        if status != want {
            self.totals.problem(format!(
                "{method} {path}: {status} where {want} was expected: {json}"
            ));
            return None;
        }
        Some(json)
    }

    async fn login(&mut self, user: &str) -> Option<()> {
        let body = json!({ "username": user, "password": format!("{user}-password") });
        self.expect(Method::POST, "/api/login", Some(body), StatusCode::OK)
            .await?;
        Some(())
    }

    async fn me(&mut self) -> Option<Value> {
        self.expect(Method::GET, "/api/me", None, StatusCode::OK)
            .await
    }
}

/// One client's cycle; `None` when a problem was counted.
async fn cycle(http: &Http, addr: SocketAddr, user: &str, totals: &Arc<Totals>) -> Option<()> {
    let jar = || Jar {
        http: http.clone(),
        addr,
        token: None,
        totals: totals.clone(),
    };
    let mut main = jar();
    main.login(user).await?;
    let mut counted = 0;
    for want in 1..=INCREMENTS {
        let got = main
            .expect(Method::POST, "/api/counter", None, StatusCode::OK)
            .await?;
        let count = got["count"].as_u64().unwrap_or(0);
        if count != want {
            totals.problem(format!(
                "counter answered {count} where {want} was expected"
            ));
            return None;
        }
        counted = count;
    }
    let list = main
        .expect(Method::GET, "/api/sessions", None, StatusCode::OK)
        .await?;
    let current = list.as_array().map_or(0, |l| {
        l.iter().filter(|s| s["current"] == json!(true)).count()
    });
    if current != 1 {
        totals.problem(format!("the session list marks {current} sessions current"));
        return None;
    }

    // A second device, revoked from the first.
    let mut other = jar();
    other.login(user).await?;
    let id = other.me().await?["session"].as_str()?.to_owned();
    main.expect(
        Method::DELETE,
        &format!("/api/sessions/{id}"),
        None,
        StatusCode::NO_CONTENT,
    )
    .await?;
    if !other.me().await?["user"].is_null() {
        totals.problem("a revoked session is still logged in".into());
        return None;
    }

    // Every increment is there, then logout ends the session.
    let count = main.me().await?["count"].as_u64().unwrap_or(0);
    if count != counted {
        totals
            .lost_increments
            .fetch_add(counted.saturating_sub(count), Ordering::Relaxed);
        totals.problem(format!(
            "the final count is {count}, {counted} were acknowledged"
        ));
        return None;
    }
    main.expect(Method::POST, "/api/logout", None, StatusCode::NO_CONTENT)
        .await?;
    if !main.me().await?["user"].is_null() {
        totals.problem("still logged in after logout".into());
        return None;
    }
    totals.cycles.fetch_add(1, Ordering::Relaxed);
    Some(())
}

struct Report {
    requests: u64,
    cycles: u64,
    server_errors: u64,
    unexpected: u64,
    lost_increments: u64,
    rss_start_kib: u64,
    rss_mid_kib: u64,
    rss_end_kib: u64,
    rss_peak_kib: u64,
    first_problem: Option<String>,
}

async fn wait_until_serving(addr: SocketAddr) {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the demo did not start listening on {addr}");
}

async fn soak(name: &str, store: &str, extra: &[&str]) -> Report {
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("soak-{name}.log"));
    let demo = DemoProcess::spawn(store, extra, &log);
    wait_until_serving(demo.addr).await;
    let http: Http = Hyper::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build_http();
    let totals = Arc::new(Totals::default());
    let duration = Duration::from_secs(seconds());
    let started = Instant::now();
    let deadline = started + duration;
    let rss_start = demo.rss_kib();

    let workers: Vec<_> = (0..clients())
        .map(|n| {
            let (http, totals) = (http.clone(), totals.clone());
            let user = if n % 2 == 0 { "alice" } else { "bob" };
            let addr = demo.addr;
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    if cycle(&http, addr, user, &totals).await.is_none() {
                        // Do not hammer a failing server.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            })
        })
        .collect();

    let mut rss_mid = rss_start;
    let mut rss_peak = rss_start;
    let mut mid_taken = false;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss = demo.rss_kib();
        rss_peak = rss_peak.max(rss);
        if !mid_taken && started.elapsed() >= duration / 2 {
            rss_mid = rss;
            mid_taken = true;
        }
    }
    for w in workers {
        w.await.expect("a client panicked");
    }
    let rss_end = demo.rss_kib();
    let first_problem = totals.first_problem.lock().unwrap().clone();
    Report {
        requests: totals.requests.load(Ordering::Relaxed),
        cycles: totals.cycles.load(Ordering::Relaxed),
        server_errors: totals.server_errors.load(Ordering::Relaxed),
        unexpected: totals.unexpected.load(Ordering::Relaxed),
        lost_increments: totals.lost_increments.load(Ordering::Relaxed),
        rss_start_kib: rss_start,
        rss_mid_kib: rss_mid,
        rss_end_kib: rss_end.max(1),
        rss_peak_kib: rss_peak.max(rss_end),
        first_problem,
    }
}

fn check(name: &str, r: &Report) {
    let secs = seconds();
    let _ = writeln!(
        std::io::stderr(),
        "soak {name}: {} clients for {secs} s: {} requests ({:.0}/s), {} cycles, {} 5xx, \
         {} other problems, {} lost increments; demo RSS {} KiB at start, {} at half time, \
         {} at the end (peak {})",
        clients(),
        r.requests,
        r.requests as f64 / secs as f64,
        r.cycles,
        r.server_errors,
        r.unexpected,
        r.lost_increments,
        r.rss_start_kib,
        r.rss_mid_kib,
        r.rss_end_kib,
        r.rss_peak_kib,
    );
    assert_eq!(r.server_errors, 0, "{name}: no 5xx ({:?})", r.first_problem);
    assert_eq!(r.lost_increments, 0, "{name}: no lost increments");
    assert_eq!(
        r.unexpected, 0,
        "{name}: every answer as expected ({:?})",
        r.first_problem
    );
    assert!(r.cycles > 0, "{name}: clients completed cycles");
    // Stable memory: the second half of the run may not grow the resident
    // set by more than a quarter plus 16 MiB (warm-up, caches and pools fill
    // in the first half).
    assert!(
        r.rss_end_kib <= r.rss_mid_kib + r.rss_mid_kib / 4 + 16 * 1024,
        "{name}: the demo's memory kept growing: {} KiB at half time, {} KiB at the end",
        r.rss_mid_kib,
        r.rss_end_kib
    );
}

fn run(name: &str, store: &str) {
    run_with(name, store, &[]);
}

/// As [`run`], with more arguments for the demo.
fn run_with(name: &str, store: &str, extra: &[&str]) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(soak(name, store, extra));
    check(name, &report);
}

#[test]
fn soak_sled_200_clients_no_5xx_no_lost_increments_stable_memory() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("soak-sled-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    run("sled", &format!("sled:{}", dir.display()));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `sql` on `url` (one connection, simple protocol).
fn admin_sql(url: &str, sql: String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
            .await
            .expect("connect to PostgreSQL");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .expect("run the set-up SQL");
    });
}

/// The role `.ci/pgbouncer.sh` is told to trust (pgbouncer wants its users
/// listed, even under trust).
const APP_ROLE: &str = "session_soak_app";

/// Issue 20, items 1 and 2 together, as production runs: the owner migrates
/// once, directly; the demo then runs with `--no-migrate` as a role that may
/// only SELECT, INSERT, UPDATE and DELETE on the table, through pgbouncer in
/// transaction mode with a server pool of 5, and serves 200 clients with no
/// error. `SESSION_TEST_PGBOUNCER_URL` names the pooler
/// (`postgres://127.0.0.1:PORT`), which `.ci/run` starts.
#[test]
fn soak_postgres_through_pgbouncer_as_a_dml_only_role_200_clients_no_errors() {
    const TEST: &str = "soak_postgres_through_pgbouncer_as_a_dml_only_role";
    let Some(direct) = url_or_skip("SESSION_TEST_POSTGRES_URL", TEST) else {
        return;
    };
    let Some(pooler) = url_or_skip("SESSION_TEST_PGBOUNCER_URL", TEST) else {
        return;
    };
    let db = format!("session_soak_pool_{}", std::process::id());
    let (base, _) = direct.rsplit_once('/').expect("a database in the URL");
    admin_sql(
        &direct,
        format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
    admin_sql(&direct, format!("CREATE DATABASE {db}"));
    let owner_url = format!("{base}/{db}");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let url = session_cli::StoreUrl::parse(&owner_url).expect("the owner's URL");
            url.open().await.expect("the owner migrates");
        });
    admin_sql(
        &owner_url,
        format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') \
             THEN CREATE ROLE {APP_ROLE} LOGIN; END IF; END $$; \
             GRANT CONNECT ON DATABASE {db} TO {APP_ROLE}; \
             GRANT USAGE ON SCHEMA public TO {APP_ROLE}; \
             GRANT SELECT, INSERT, UPDATE, DELETE ON public.sessions TO {APP_ROLE};"
        ),
    );
    // `postgres://[user@]host:port[/…]` → `host:port`.
    let after_scheme = pooler
        .split_once("://")
        .map_or(pooler.as_str(), |(_, rest)| rest);
    let host = after_scheme
        .rsplit('@')
        .next()
        .and_then(|h| h.split('/').next())
        .unwrap_or_default()
        .to_owned();
    let app_url = format!("postgres://{APP_ROLE}@{host}/{db}?pooler=transaction");
    run_with(
        "postgres via pgbouncer as a DML-only role",
        &app_url,
        &["--no-migrate"],
    );
    admin_sql(
        &direct,
        format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
}

#[test]
fn soak_postgres_200_clients_no_5xx_no_lost_increments_stable_memory() {
    let Some(url) = url_or_skip("SESSION_TEST_POSTGRES_URL", "soak_postgres") else {
        return;
    };
    // A database of its own, dropped afterwards.
    let db = format!("session_soak_{}", std::process::id());
    let admin = |sql: String| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
                .await
                .expect("connect to SESSION_TEST_POSTGRES_URL");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect("create or drop the soak database");
        });
    };
    admin(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
    admin(format!("CREATE DATABASE {db}"));
    let (base, _) = url.rsplit_once('/').expect("a database in the URL");
    run("postgres", &format!("{base}/{db}"));
    admin(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
}

#[test]
fn soak_redis_200_clients_no_5xx_no_lost_increments_stable_memory() {
    let Some(url) = url_or_skip("SESSION_TEST_REDIS_URL", "soak_redis") else {
        return;
    };
    run("redis", &url);
}
