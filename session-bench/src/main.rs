//! `session-bench`: our stores and HTTP layer against the raw clients (the
//! ceiling) and tower-sessions, measured in one process and one run, reported
//! as ratios. See BENCHMARKS.md.

mod http;
mod measure;
mod ours;
mod payload;
mod raw;
mod report;
mod targets;
#[cfg(feature = "compare")]
mod tower;

use std::sync::Arc;
use std::time::Duration;

use session_core::{MemoryStore, SessionConfig, SessionManager, SessionStore, SessionToken};
use sqlx::postgres::PgPoolOptions;
use sqlx::AssertSqlSafe;

use http::{Budget, Mix};
use measure::Phase;
use report::Run;

const USAGE: &str = "\
session-bench [--smoke] [--json] [--rounds N] [--sessions N] [--concurrency N]
              [--connections N] [--http-secs N]
              [--backends memory,sled,postgres,redis,cookie]
              [--implementations ours,ours-cached,raw,raw-cas,tower-sessions,none]
              [--postgres-url URL] [--redis-url URL] [--http-requests N]
              [--http-mix writes|read-mostly|both]

Defaults: 3 rounds, 10000 sessions, 32 tasks, 64 HTTP connections for 5 s
each (0 skips the HTTP workloads), every backend (`cookie`: client-side
sessions, HTTP only; the app without sessions runs with `memory`), every
implementation
(`none` is the HTTP app without sessions; `ours-cached` is our Redis store
with its local cache; `raw-cas` the raw client's smallest compare-and-set); URLs from SESSION_TEST_POSTGRES_URL /
SESSION_TEST_REDIS_URL, else postgres://postgres@127.0.0.1:5432/test and
redis://127.0.0.1:6379. Each rate is the median of the rounds; the
implementations take turns, in alternating order, and each ratio is the
median of the rounds' ratios. The run ends with the published targets
(BENCHMARKS.md) checked against its ratios.
--smoke: 1 round, 300 sessions, 1 s of HTTP (a seconds-long check that
everything runs; it checks no targets, whatever flags follow it); flags
after it override its sizes.
--implementations ours --http-secs 0 runs our store workload alone, to
profile it (see BENCHMARKS.md).
--http-requests N: only the HTTP workloads, each connection sending N
requests (not timed): for counting instructions per request under
callgrind (.ci/instructions.sh).
--http-mix: which HTTP workloads run (default both): `writes` (phase
http, every request increments) or `read-mostly` (phase http-read).
Build with --release (and --features compare for the tower-sessions columns).";

struct Args {
    rounds: usize,
    sessions: usize,
    concurrency: usize,
    connections: usize,
    http: Duration,
    /// Requests per connection instead of a duration; no store workload.
    http_requests: Option<usize>,
    mixes: Vec<Mix>,
    backends: Vec<String>,
    implementations: Vec<String>,
    json: bool,
    /// A seconds-long check that everything runs: too short to measure.
    smoke: bool,
    postgres: String,
    redis: String,
}

fn parse_args() -> Result<Args, String> {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
    let mut a = Args {
        rounds: 3,
        sessions: 10_000,
        concurrency: 32,
        connections: 64,
        http: Duration::from_secs(5),
        http_requests: None,
        mixes: vec![Mix::Writes, Mix::ReadMostly],
        backends: ["memory", "sled", "postgres", "redis", "cookie"]
            .map(String::from)
            .to_vec(),
        implementations: IMPLEMENTATIONS.map(String::from).to_vec(),
        json: false,
        smoke: false,
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
                a.smoke = true;
                a.rounds = 1;
                a.sessions = 300;
                a.http = Duration::from_secs(1);
            }
            "--json" => a.json = true,
            "--rounds" => a.rounds = number(value()?)?.max(1),
            "--sessions" => a.sessions = number(value()?)?,
            "--concurrency" => a.concurrency = number(value()?)?.max(1),
            "--connections" => a.connections = number(value()?)?.max(1),
            "--http-secs" => a.http = Duration::from_secs(number(value()?)? as u64),
            "--http-requests" => a.http_requests = Some(number(value()?)?),
            "--http-mix" => {
                a.mixes = match value()?.as_str() {
                    "writes" => vec![Mix::Writes],
                    "read-mostly" => vec![Mix::ReadMostly],
                    "both" => vec![Mix::Writes, Mix::ReadMostly],
                    other => return Err(format!("unknown --http-mix {other:?}")),
                }
            }
            "--backends" => a.backends = value()?.split(',').map(str::to_owned).collect(),
            "--implementations" => {
                a.implementations = value()?.split(',').map(str::to_owned).collect();
                if let Some(bad) = a
                    .implementations
                    .iter()
                    .find(|i| !IMPLEMENTATIONS.contains(&i.as_str()))
                {
                    return Err(format!(
                        "unknown implementation {bad:?} (known: {})",
                        IMPLEMENTATIONS.join(", ")
                    ));
                }
            }
            "--postgres-url" => a.postgres = value()?,
            "--redis-url" => a.redis = value()?,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown flag {other:?}\n\n{USAGE}")),
        }
    }
    Ok(a)
}

/// Every implementation a run can measure: ours, ours on Redis with the
/// local cache, the raw client (the store ceiling), the raw client's
/// smallest compare-and-set (Redis, the ceiling for versioned writes),
/// tower-sessions, and the HTTP app without sessions.
const IMPLEMENTATIONS: [&str; 6] = [
    "ours",
    "ours-cached",
    "raw",
    "raw-cas",
    "tower-sessions",
    "none",
];

impl Args {
    fn wants(&self, implementation: &str) -> bool {
        self.implementations.iter().any(|i| i == implementation)
    }
}

fn tag() -> String {
    SessionToken::generate().key().to_hex()[..10].to_owned()
}

fn manager(store: Arc<dyn SessionStore>) -> SessionManager {
    SessionManager::new(store, SessionConfig::default()).expect("default config")
}

/// One implementation's store workload on `backend`, on fresh state;
/// `None` when this build or backend has no such implementation.
async fn store_run(a: &Args, backend: &str, imp: &'static str) -> Option<Vec<Phase>> {
    let (n, c) = (a.sessions, a.concurrency);
    match (backend, imp) {
        ("memory", "ours") => Some(ours::workload(Arc::new(MemoryStore::new()), n, c).await),
        #[cfg(feature = "compare")]
        ("memory", "tower-sessions") => {
            Some(tower::workload(Arc::new(tower_sessions::MemoryStore::default()), n, c).await)
        }
        ("sled", "ours") => {
            let store = session_sled::SledStore::temporary(Default::default()).expect("sled");
            Some(ours::workload(Arc::new(store), n, c).await)
        }
        ("sled", "raw") => Some(raw::sled(n, c).await),
        ("postgres", "ours" | "raw") => {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .connect(&a.postgres)
                .await
                .expect("connect to PostgreSQL");
            let schema = format!("bench_{}", tag());
            let phases = if imp == "ours" {
                let store = session_sqlx::PostgresStore::new(pool.clone())
                    .with_schema(&schema)
                    .expect("schema name");
                store.migrate().await.expect("migrate");
                ours::workload(Arc::new(store), n, c).await
            } else {
                sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
                    .execute(&pool)
                    .await
                    .expect("create the raw schema");
                raw::postgres(pool.clone(), &schema, n, c).await
            };
            let _ = sqlx::query(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
                .execute(&pool)
                .await;
            Some(phases)
        }
        #[cfg(feature = "compare")]
        ("postgres", "tower-sessions") => {
            use tower_sessions_sqlx_store::sqlx as sqlx08;
            let pool08 = sqlx08::postgres::PgPoolOptions::new()
                .max_connections(16)
                .connect(&a.postgres)
                .await
                .expect("connect (sqlx 0.8)");
            let schema = format!("bench_tower_{}", tag());
            let store = tower_sessions_sqlx_store::PostgresStore::new(pool08.clone())
                .with_schema_name(&schema)
                .expect("schema name");
            store.migrate().await.expect("migrate tower-sessions");
            let phases = tower::workload(Arc::new(store), n, c).await;
            let _ = sqlx08::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                .execute(&pool08)
                .await;
            Some(phases)
        }
        ("redis", "ours") => {
            let store = our_redis(&a.redis, &format!("bench:{}:", tag())).await;
            Some(ours::workload(Arc::new(store), n, c).await)
        }
        ("redis", "ours-cached") => {
            let store = our_redis_cached(&a.redis, &format!("bench:{}:", tag())).await;
            Some(ours::workload(Arc::new(store), n, c).await)
        }
        ("redis", "raw") => {
            Some(raw::redis(&a.redis, &format!("bench-raw:{}:", tag()), n, c).await)
        }
        ("redis", "raw-cas") => {
            Some(raw::redis_cas(&a.redis, &format!("bench-cas:{}:", tag()), n, c).await)
        }
        #[cfg(feature = "compare")]
        ("redis", "tower-sessions") => {
            Some(tower::workload(Arc::new(tower_redis(&a.redis).await), n, c).await)
        }
        _ => None,
    }
}

/// The order in which `n` implementations take their turn in `round`:
/// forwards, then backwards, so none always runs first.
fn turn_order(round: usize, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if round % 2 == 1 {
        order.reverse();
    }
    order
}

/// The store workloads, `a.rounds` times per backend; the implementations
/// take turns, in alternating order, so none always runs on a warmer or
/// more tired server.
async fn store_runs(a: &Args) -> Vec<Run> {
    // Ours in the middle: in every round it runs near each baseline.
    let imps: Vec<&'static str> = ["raw", "raw-cas", "ours", "ours-cached", "tower-sessions"]
        .into_iter()
        .filter(|i| a.wants(i))
        .collect();
    let mut runs = Vec::new();
    if imps.is_empty() {
        return runs;
    }
    for backend in &a.backends {
        if backend == "cookie" {
            // Client-side sessions have no store: HTTP only.
            continue;
        }
        if !["memory", "sled", "postgres", "redis"].contains(&backend.as_str()) {
            eprintln!("unknown backend {backend:?}, skipped");
            continue;
        }
        let mut rounds: Vec<Vec<Vec<Phase>>> = vec![Vec::new(); imps.len()];
        for round in 0..a.rounds {
            eprintln!("store workload: {backend}, round {}", round + 1);
            for i in turn_order(round, imps.len()) {
                if let Some(phases) = store_run(a, backend, imps[i]).await {
                    rounds[i].push(phases);
                }
            }
        }
        for (&imp, seen) in imps.iter().zip(rounds) {
            if !seen.is_empty() {
                runs.push(Run::new(backend, imp, seen));
            }
        }
    }
    runs
}

/// Client-side sessions: the session sealed in the cookie, no store.
fn client_side_manager() -> SessionManager {
    let config = session_core::SessionConfig::default().sealing_keys(session_core::KeyRing::new(
        1,
        session_core::KeyRing::generate_key(),
    ));
    SessionManager::client_side(config, session_core::ClientSide::new()).expect("valid config")
}

/// Our Redis store on `url`, its keys under `prefix`.
async fn our_redis(url: &str, prefix: &str) -> session_redis::RedisStore {
    session_redis::RedisStore::connect(url, session_redis::RedisOptions::default().prefix(prefix))
        .await
        .expect("connect to Redis")
}

/// The same with the local cache on, large enough for every session of a
/// run (the default holds 10,000).
async fn our_redis_cached(url: &str, prefix: &str) -> session_redis::RedisStore {
    let cache = session_redis::LocalCache::default().max_entries(1_000_000);
    let options = session_redis::RedisOptions::default()
        .prefix(prefix)
        .local_cache(cache);
    session_redis::RedisStore::connect(url, options)
        .await
        .expect("connect to Redis with a local cache")
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

/// One HTTP run of `imp` on `store`, on a fresh store; `None` when this
/// build has no such implementation.
async fn http_run(a: &Args, store: &str, imp: &'static str, mix: Mix) -> Option<Phase> {
    let (k, budget) = match a.http_requests {
        Some(n) => (a.connections, Budget::Requests(n)),
        None => (a.connections, Budget::Time(a.http)),
    };
    let app = match (store, imp) {
        ("memory", "none") => http::bare(),
        ("memory", "ours") => http::ours(manager(Arc::new(MemoryStore::new()))),
        ("cookie", "ours") => http::ours(client_side_manager()),
        #[cfg(feature = "compare")]
        ("memory", "tower-sessions") => http::tower(tower_sessions::MemoryStore::default()),
        ("redis", "ours") => {
            let store = our_redis(&a.redis, &format!("bench-http:{}:", tag())).await;
            http::ours(manager(Arc::new(store)))
        }
        ("redis", "ours-cached") => {
            let store = our_redis_cached(&a.redis, &format!("bench-http:{}:", tag())).await;
            http::ours(manager(Arc::new(store)))
        }
        #[cfg(feature = "compare")]
        ("redis", "tower-sessions") => http::tower(tower_redis(&a.redis).await),
        _ => return None,
    };
    Some(http::drive(app, k, budget, mix).await)
}

/// The HTTP workloads, `a.rounds` times, taking turns as the store runs do.
async fn http_runs(a: &Args) -> Vec<Run> {
    let mut jobs = Vec::new();
    let has = |backend: &str| a.backends.iter().any(|b| b == backend);
    for &mix in &a.mixes {
        if has("memory") {
            jobs.extend([
                ("memory", "none", mix),
                ("memory", "ours", mix),
                ("memory", "tower-sessions", mix),
            ]);
        }
        if has("cookie") {
            jobs.push(("cookie", "ours", mix));
        }
        if has("redis") {
            jobs.extend([
                ("redis", "ours", mix),
                ("redis", "ours-cached", mix),
                ("redis", "tower-sessions", mix),
            ]);
        }
    }
    jobs.retain(|(_, imp, _)| a.wants(imp));
    if (a.http.is_zero() && a.http_requests.is_none()) || jobs.is_empty() {
        return Vec::new();
    }
    let mut rounds: Vec<Vec<Vec<Phase>>> = vec![Vec::new(); jobs.len()];
    for round in 0..a.rounds {
        eprintln!("HTTP workloads, round {}", round + 1);
        for i in turn_order(round, jobs.len()) {
            let (store, imp, mix) = jobs[i];
            if let Some(phase) = http_run(a, store, imp, mix).await {
                rounds[i].push(vec![phase]);
            }
        }
    }
    jobs.into_iter()
        .zip(rounds)
        .filter(|(_, seen)| !seen.is_empty())
        .map(|((store, imp, _), seen)| Run::new(store, imp, seen))
        .collect()
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
    let mut runs = if args.http_requests.is_some() {
        Vec::new()
    } else {
        store_runs(&args).await
    };
    runs.extend(http_runs(&args).await);
    // A smoke pass's ratios say nothing: its targets are left unchecked.
    let checked: &[targets::Target] = if args.smoke { &[] } else { &targets::TARGETS };
    let outcomes = targets::check(&runs, checked);
    if args.json {
        let doc = serde_json::json!({
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "rounds": args.rounds,
            "sessions": args.sessions,
            "concurrency": args.concurrency,
            "connections": args.connections,
            "http_secs": args.http.as_secs_f64(),
            "compare": cfg!(feature = "compare"),
            "runs": runs,
            "targets": outcomes,
        });
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
    } else {
        report::print_table(&runs, &args);
        targets::print(&outcomes);
    }
}
