//! `session-bench`: our stores and HTTP layer against the raw clients (the
//! ceiling) and tower-sessions, measured in one process and one run, reported
//! as ratios. See BENCHMARKS.md.

mod http;
mod measure;
mod ours;
mod payload;
mod raw;
#[cfg(feature = "compare")]
mod tower;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use session_core::{MemoryStore, SessionConfig, SessionManager, SessionStore, SessionToken};
use sqlx::postgres::PgPoolOptions;
use sqlx::AssertSqlSafe;

use measure::Phase;

const USAGE: &str = "\
session-bench [--smoke] [--json] [--sessions N] [--concurrency N]
              [--connections N] [--http-secs N] [--backends memory,sled,postgres,redis]
              [--postgres-url URL] [--redis-url URL]

Defaults: 10000 sessions, 32 tasks, 64 HTTP connections for 5 s each, all four
backends; URLs from SESSION_TEST_POSTGRES_URL / SESSION_TEST_REDIS_URL, else
postgres://postgres@127.0.0.1:5432/test and redis://127.0.0.1:6379.
--smoke: 300 sessions, 1 s of HTTP (a seconds-long check that everything runs).
Build with --release (and --features compare for the tower-sessions columns).";

struct Args {
    sessions: usize,
    concurrency: usize,
    connections: usize,
    http: Duration,
    backends: Vec<String>,
    json: bool,
    postgres: String,
    redis: String,
}

fn parse_args() -> Result<Args, String> {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let mut a = Args {
        sessions: 10_000,
        concurrency: 32,
        connections: 64,
        http: Duration::from_secs(5),
        backends: ["memory", "sled", "postgres", "redis"]
            .map(String::from)
            .to_vec(),
        json: false,
        postgres: env(
            "SESSION_TEST_POSTGRES_URL",
            "postgres://postgres@127.0.0.1:5432/test",
        ),
        redis: env("SESSION_TEST_REDIS_URL", "redis://127.0.0.1:6379"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<usize>()
                .map_err(|_| format!("{v:?} is not a number"))
        };
        match flag.as_str() {
            "--smoke" => {
                a.sessions = 300;
                a.http = Duration::from_secs(1);
            }
            "--json" => a.json = true,
            "--sessions" => a.sessions = number(value()?)?,
            "--concurrency" => a.concurrency = number(value()?)?.max(1),
            "--connections" => a.connections = number(value()?)?.max(1),
            "--http-secs" => a.http = Duration::from_secs(number(value()?)? as u64),
            "--backends" => a.backends = value()?.split(',').map(str::to_owned).collect(),
            "--postgres-url" => a.postgres = value()?,
            "--redis-url" => a.redis = value()?,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown flag {other:?}\n\n{USAGE}")),
        }
    }
    Ok(a)
}

#[derive(Serialize)]
struct Run {
    backend: String,
    implementation: &'static str,
    phases: Vec<Phase>,
}

fn tag() -> String {
    SessionToken::generate().key().to_hex()[..10].to_owned()
}

fn manager(store: Arc<dyn SessionStore>) -> SessionManager {
    SessionManager::new(store, SessionConfig::default()).expect("default config")
}

async fn store_runs(a: &Args) -> Vec<Run> {
    let (n, c) = (a.sessions, a.concurrency);
    let mut runs = Vec::new();
    let mut push = |backend: &str, implementation, phases| {
        runs.push(Run {
            backend: backend.to_owned(),
            implementation,
            phases,
        })
    };
    for backend in &a.backends {
        eprintln!("store workload: {backend}");
        match backend.as_str() {
            "memory" => {
                push(
                    backend,
                    "ours",
                    ours::workload(Arc::new(MemoryStore::new()), n, c).await,
                );
                #[cfg(feature = "compare")]
                push(
                    backend,
                    "tower-sessions",
                    tower::workload(Arc::new(tower_sessions::MemoryStore::default()), n, c).await,
                );
            }
            "sled" => {
                let store = session_sled::SledStore::temporary(Default::default()).expect("sled");
                push(backend, "ours", ours::workload(Arc::new(store), n, c).await);
                push(backend, "raw", raw::sled(n, c).await);
            }
            "postgres" => {
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .connect(&a.postgres)
                    .await
                    .expect("connect to PostgreSQL");
                let schema = format!("bench_{}", tag());
                let store = session_sqlx::PostgresStore::new(pool.clone())
                    .with_schema(&schema)
                    .expect("schema name");
                store.migrate().await.expect("migrate");
                push(backend, "ours", ours::workload(Arc::new(store), n, c).await);
                push(
                    backend,
                    "raw",
                    raw::postgres(pool.clone(), &schema, n, c).await,
                );
                #[cfg(feature = "compare")]
                {
                    use tower_sessions_sqlx_store::sqlx as sqlx08;
                    let pool08 = sqlx08::postgres::PgPoolOptions::new()
                        .max_connections(16)
                        .connect(&a.postgres)
                        .await
                        .expect("connect (sqlx 0.8)");
                    let tschema = format!("bench_tower_{}", tag());
                    let store = tower_sessions_sqlx_store::PostgresStore::new(pool08.clone())
                        .with_schema_name(&tschema)
                        .expect("schema name");
                    store.migrate().await.expect("migrate tower-sessions");
                    push(
                        backend,
                        "tower-sessions",
                        tower::workload(Arc::new(store), n, c).await,
                    );
                    let _ = sqlx08::query(&format!("DROP SCHEMA \"{tschema}\" CASCADE"))
                        .execute(&pool08)
                        .await;
                }
                let _ = sqlx::query(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
                    .execute(&pool)
                    .await;
            }
            "redis" => {
                let prefix = format!("bench:{}:", tag());
                let store = session_redis::RedisStore::connect(
                    &a.redis,
                    session_redis::RedisOptions::default().prefix(prefix.clone()),
                )
                .await
                .expect("connect to Redis");
                push(backend, "ours", ours::workload(Arc::new(store), n, c).await);
                push(
                    backend,
                    "raw",
                    raw::redis(&a.redis, &format!("bench-raw:{}:", tag()), n, c).await,
                );
                #[cfg(feature = "compare")]
                push(
                    backend,
                    "tower-sessions",
                    tower::workload(Arc::new(tower_redis(&a.redis).await), n, c).await,
                );
            }
            other => eprintln!("unknown backend {other:?}, skipped"),
        }
    }
    runs
}

#[cfg(feature = "compare")]
async fn tower_redis(
    url: &str,
) -> tower_sessions_redis_store::RedisStore<tower_sessions_redis_store::fred::prelude::Pool> {
    use tower_sessions_redis_store::fred::prelude::*;
    let pool = Pool::new(
        Config::from_url(url).expect("redis URL"),
        None,
        None,
        None,
        1,
    )
    .expect("fred pool");
    pool.init().await.expect("connect (fred)");
    tower_sessions_redis_store::RedisStore::new(pool)
}

async fn http_runs(a: &Args) -> Vec<Run> {
    let (k, d) = (a.connections, a.http);
    let mut runs = Vec::new();
    let mut push = |backend: &str, implementation, phase| {
        runs.push(Run {
            backend: backend.to_owned(),
            implementation,
            phases: vec![phase],
        })
    };
    eprintln!("HTTP workload");
    push("memory", "none", http::drive(http::bare(), k, d).await);
    push(
        "memory",
        "ours",
        http::drive(http::ours(manager(Arc::new(MemoryStore::new()))), k, d).await,
    );
    #[cfg(feature = "compare")]
    push(
        "memory",
        "tower-sessions",
        http::drive(http::tower(tower_sessions::MemoryStore::default()), k, d).await,
    );
    if a.backends.iter().any(|b| b == "redis") {
        let store = session_redis::RedisStore::connect(
            &a.redis,
            session_redis::RedisOptions::default().prefix(format!("bench-http:{}:", tag())),
        )
        .await
        .expect("connect to Redis");
        push(
            "redis",
            "ours",
            http::drive(http::ours(manager(Arc::new(store))), k, d).await,
        );
        #[cfg(feature = "compare")]
        push(
            "redis",
            "tower-sessions",
            http::drive(http::tower(tower_redis(&a.redis).await), k, d).await,
        );
    }
    runs
}

fn find<'a>(
    runs: &'a [Run],
    backend: &str,
    implementation: &str,
    phase: &str,
) -> Option<&'a Phase> {
    runs.iter()
        .filter(|r| r.backend == backend && r.implementation == implementation)
        .find_map(|r| r.phases.iter().find(|p| p.phase == phase))
}

fn ratio(a: Option<&Phase>, b: Option<&Phase>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b.ops_per_sec > 0.0 => {
            format!("{:.2}x", a.ops_per_sec / b.ops_per_sec)
        }
        _ => "-".to_owned(),
    }
}

fn rate(p: Option<&Phase>) -> String {
    p.map_or("-".to_owned(), |p| format!("{:.0}", p.ops_per_sec))
}

fn print_table(runs: &[Run], a: &Args) {
    println!(
        "\nstore workload: {} sessions, ~{} B payload, {} tasks",
        a.sessions,
        payload::bytes(0).len(),
        a.concurrency
    );
    println!(
        "{:<9} {:<7} {:>10} {:>8} {:>8} {:>10} {:>9} {:>10} {:>10}",
        "backend",
        "phase",
        "ours op/s",
        "p50 us",
        "p99 us",
        "raw op/s",
        "ours/raw",
        "tower op/s",
        "ours/tower"
    );
    for backend in &a.backends {
        for phase in ["create", "load", "update", "delete"] {
            let ours = find(runs, backend, "ours", phase);
            let raw = find(runs, backend, "raw", phase);
            let tower = find(runs, backend, "tower-sessions", phase);
            println!(
                "{:<9} {:<7} {:>10} {:>8} {:>8} {:>10} {:>9} {:>10} {:>10}",
                backend,
                phase,
                rate(ours),
                ours.map_or(0, |p| p.p50_us),
                ours.map_or(0, |p| p.p99_us),
                rate(raw),
                ratio(ours, raw),
                rate(tower),
                ratio(ours, tower)
            );
        }
    }
    println!(
        "\nHTTP workload: {} connections for {:?}, read one value + increment a counter",
        a.connections, a.http
    );
    println!(
        "{:<9} {:>10} {:>8} {:>8} {:>12} {:>10} {:>10} {:>10}",
        "store", "ours req/s", "p50 us", "p99 us", "no-session", "ours/none", "tower", "ours/tower"
    );
    let none = find(runs, "memory", "none", "http");
    for store in ["memory", "redis"] {
        let ours = find(runs, store, "ours", "http");
        if ours.is_none() {
            continue;
        }
        let tower = find(runs, store, "tower-sessions", "http");
        println!(
            "{:<9} {:>10} {:>8} {:>8} {:>12} {:>10} {:>10} {:>10}",
            store,
            rate(ours),
            ours.map_or(0, |p| p.p50_us),
            ours.map_or(0, |p| p.p99_us),
            rate(none),
            ratio(ours, none),
            rate(tower),
            ratio(ours, tower)
        );
    }
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2);
        }
    };
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; run with --release for real figures");
    }
    let mut runs = store_runs(&args).await;
    runs.extend(http_runs(&args).await);
    if args.json {
        let doc = serde_json::json!({
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "sessions": args.sessions,
            "concurrency": args.concurrency,
            "connections": args.connections,
            "http_secs": args.http.as_secs_f64(),
            "compare": cfg!(feature = "compare"),
            "runs": runs,
        });
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
    } else {
        print_table(&runs, &args);
    }
}
