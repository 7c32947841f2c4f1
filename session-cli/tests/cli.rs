//! The built `sessionctl` binary: `check` against every backend (servers from
//! the `SESSION_TEST_*` variables), leaving nothing behind, and the admin
//! commands on a sled folder filled through the library.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Duration;

use session_cli::StoreUrl;
use session_core::{Record, SessionStore, SessionToken};
use session_test_suite::CASES;

const POSTGRES_VAR: &str = "SESSION_TEST_POSTGRES_URL";
const REDIS_VAR: &str = "SESSION_TEST_REDIS_URL";
const CLUSTER_VAR: &str = "SESSION_TEST_REDIS_CLUSTER_URLS";

/// `check` runs many timing-sensitive cases; one `check` at a time keeps the
/// tests from starving each other on a small machine.
static ONE_CHECK_AT_A_TIME: Mutex<()> = Mutex::new(());

fn sessionctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sessionctl"))
        .args(args)
        .output()
        .expect("run sessionctl")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `sessionctl check URL` and asserts a clean pass: exit 0, a row
/// `name | ok` for every case, and the exact summary line.
fn check_passes(url: &str) {
    let output = {
        let _one = ONE_CHECK_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        sessionctl(&["check", url])
    };
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(
        output.status.success(),
        "sessionctl check {url} failed ({:?})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    for case in CASES {
        let row = stdout
            .lines()
            .find(|l| l.split(' ').next() == Some(case.name));
        let row = row.unwrap_or_else(|| panic!("no row for {} in\n{stdout}", case.name));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 3, "row {row:?}");
        assert_eq!(cells[1], "ok", "row {row:?}");
        cells[2]
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("milliseconds in {row:?}"));
    }
    let summary = format!("{} passed, 0 failed", CASES.len());
    assert!(
        stdout.lines().any(|l| l == summary),
        "no line {summary:?} in\n{stdout}"
    );
    assert_eq!(stdout.lines().last(), Some(summary.as_str()));
}

fn server_or_skip(var: &str, test: &str) -> Option<String> {
    session_test_suite::url_or_skip(var, test)
}

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "sessionctl-{tag}-{}-{}",
            std::process::id(),
            &SessionToken::generate().key().to_hex()[..12]
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    fn url(&self) -> String {
        format!("sled:{}", self.0.display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sled_tree_names(path: &Path) -> Vec<String> {
    let db = sled::open(path).expect("open the sled folder");
    db.tree_names()
        .into_iter()
        .map(|n| String::from_utf8_lossy(&n).into_owned())
        .filter(|n| n != "__sled__default")
        .collect()
}

#[test]
fn check_memory_passes_every_case() {
    check_passes("memory:");
}

#[test]
fn check_sled_passes_every_case_and_leaves_no_trees_behind() {
    let dir = TempDir::new("check");
    check_passes(&dir.url());
    assert_eq!(sled_tree_names(&dir.0), Vec::<String>::new());
}

#[test]
fn check_sled_keeps_the_stores_own_sessions_untouched() {
    let dir = TempDir::new("keep");
    let rt = runtime();
    let record = rt.block_on(async {
        let store = session_sled::SledStore::open(&dir.0).expect("open");
        let r = record(Some("alice"), Duration::from_secs(3600));
        store.create(&r).await.expect("create");
        store.flush().await.expect("flush");
        r
    });
    check_passes(&dir.url());
    let names: BTreeSet<String> = sled_tree_names(&dir.0).into_iter().collect();
    let expected: BTreeSet<String> = ["sessions.records", "sessions.users", "sessions.expiry"]
        .map(String::from)
        .into();
    assert_eq!(names, expected, "only the store's own trees remain");
    rt.block_on(async {
        let store = session_sled::SledStore::open(&dir.0).expect("reopen");
        assert_eq!(store.load(&record.key).await.expect("load"), Some(record));
    });
}

async fn postgres_schemas(url: &str) -> BTreeSet<String> {
    let pool = sqlx::PgPool::connect(url).await.expect("connect");
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT schema_name::text FROM information_schema.schemata \
         WHERE schema_name LIKE 'sessionctl\\_check\\_%'",
    )
    .fetch_all(&pool)
    .await
    .expect("list schemas");
    pool.close().await;
    names.into_iter().collect()
}

#[test]
fn check_postgres_passes_every_case_and_drops_its_schemas() {
    let test = "check_postgres_passes_every_case_and_drops_its_schemas";
    let Some(url) = server_or_skip(POSTGRES_VAR, test) else {
        return;
    };
    let rt = runtime();
    let before = rt.block_on(postgres_schemas(&url));
    check_passes(&url);
    let after = rt.block_on(postgres_schemas(&url));
    let left: Vec<_> = after.difference(&before).collect();
    assert!(left.is_empty(), "check left schemas behind: {left:?}");
}

/// Keys matching `pattern` on each of `nodes`.
async fn redis_keys(nodes: &[String], pattern: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for node in nodes {
        let client = redis::Client::open(node.as_str()).expect("node URL");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .expect("scan");
            keys.extend(batch);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
    }
    keys
}

fn check_redis_leaves_no_keys(url: &str, nodes: &[String]) {
    let rt = runtime();
    let before = rt.block_on(redis_keys(nodes, "sessionctl-check:*"));
    check_passes(url);
    let after = rt.block_on(redis_keys(nodes, "sessionctl-check:*"));
    let left: Vec<_> = after.difference(&before).take(10).collect();
    assert!(left.is_empty(), "check left keys behind, e.g. {left:?}");
}

#[test]
fn check_redis_passes_every_case_and_deletes_its_keys() {
    let test = "check_redis_passes_every_case_and_deletes_its_keys";
    let Some(url) = server_or_skip(REDIS_VAR, test) else {
        return;
    };
    check_redis_leaves_no_keys(&url, std::slice::from_ref(&url));
}

#[test]
fn check_redis_cluster_passes_every_case_and_deletes_its_keys_on_every_node() {
    let test = "check_redis_cluster_passes_every_case_and_deletes_its_keys_on_every_node";
    let Some(list) = server_or_skip(CLUSTER_VAR, test) else {
        return;
    };
    let nodes: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    let hosts: Vec<&str> = nodes
        .iter()
        .map(|n| {
            n.strip_prefix("redis://")
                .unwrap_or(n)
                .trim_end_matches('/')
        })
        .collect();
    let url = format!("redis+cluster://{}", hosts.join(","));
    assert!(matches!(
        StoreUrl::parse(&url),
        Ok(StoreUrl::RedisCluster(_))
    ));
    check_redis_leaves_no_keys(&url, &nodes);
}

#[test]
fn check_with_a_filter_runs_only_matching_cases() {
    let output = sessionctl(&["check", "--filter", "rotate_", "memory:"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let expected = CASES.iter().filter(|c| c.name.contains("rotate_")).count();
    assert!(expected > 0);
    assert!(
        stdout
            .lines()
            .any(|l| l == format!("{expected} passed, 0 failed")),
        "{stdout}"
    );
    assert!(!stdout.contains("create_then_load_returns_every_field_exactly"));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn record(user: Option<&str>, ttl: Duration) -> Record {
    session_test_suite::cases::record_expiring_in(user, ttl)
}

/// Alice: two live sessions and one that expires at once; Bob: one live.
fn fill_sled(dir: &TempDir) -> Vec<Record> {
    let rt = runtime();
    rt.block_on(async {
        let url = StoreUrl::parse(&dir.url()).expect("sled URL");
        let store = url.open().await.expect("open through the library");
        let hour = Duration::from_secs(3600);
        let mut alice1 = record(Some("alice"), hour);
        alice1.version = 3;
        let alice2 = record(Some("alice"), hour * 2);
        let alice_gone = record(Some("alice"), Duration::from_millis(1));
        let bob = record(Some("bob"), hour);
        for r in [&alice1, &alice2, &alice_gone, &bob] {
            store.create(r).await.expect("create");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        vec![alice1, alice2, alice_gone, bob]
    })
    // The store is dropped here, which flushes and unlocks the folder.
}

#[test]
fn admin_commands_work_on_a_sled_folder() {
    let dir = TempDir::new("admin");
    let records = fill_sled(&dir);
    let url = dir.url();
    let (alice1, alice2, bob) = (&records[0], &records[1], &records[3]);

    // list-user: one line per live session, with id and version, no keys.
    let out = sessionctl(&["list-user", &url, "alice"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("2 live sessions of user \"alice\""),
        "{stdout}"
    );
    let row1 = stdout
        .lines()
        .find(|l| l.starts_with(&alice1.id.to_string()))
        .unwrap_or_else(|| panic!("no row for {} in\n{stdout}", alice1.id));
    assert!(row1.trim_end().ends_with(" 3"), "version 3 in {row1:?}");
    assert!(
        row1.contains('T') && row1.contains('Z'),
        "UTC times in {row1:?}"
    );
    assert!(stdout.contains(&alice2.id.to_string()));
    assert!(
        !stdout.contains(&records[2].id.to_string()),
        "expired listed"
    );
    assert!(!stdout.contains(&bob.id.to_string()), "another user listed");
    for r in &records {
        assert!(!stdout.contains(&r.key.to_hex()), "a key was printed");
    }

    // stats: four records, consistent indexes.
    let out = sessionctl(&["stats", &url]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("backend: sled"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("records (live or expired)") && l.ends_with(" 4")),
        "{stdout}"
    );
    assert!(stdout.contains("indexes: consistent"), "{stdout}");

    // purge: the expired one.
    let out = sessionctl(&["purge", &url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "removed 1 expired session");

    // revoke-user: both of Alice's; Bob stays.
    let out = sessionctl(&["revoke-user", &url, "alice"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        "revoked 2 sessions of user \"alice\""
    );
    let out = sessionctl(&["list-user", &url, "alice"]);
    assert!(text(&out.stdout).contains("0 live sessions of user \"alice\""));
    let out = sessionctl(&["list-user", &url, "bob"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("1 live session of user \"bob\""),
        "{stdout}"
    );
    assert!(stdout.contains(&bob.id.to_string()));

    let out = sessionctl(&["stats", &url]);
    let stdout = text(&out.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("records (live or expired)") && l.ends_with(" 1")),
        "{stdout}"
    );
}

#[test]
fn admin_commands_refuse_a_missing_sled_folder_and_create_nothing() {
    let dir = TempDir::new("missing");
    let missing = dir.0.join("not-there");
    let out = sessionctl(&["stats", &format!("sled:{}", missing.display())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no sled database"));
    assert!(!missing.exists());
}

#[test]
fn a_sled_folder_another_process_holds_is_reported_with_its_cause_and_a_hint() {
    let dir = TempDir::new("locked");
    let held = sled::open(&dir.0).expect("open the sled folder");
    let out = sessionctl(&["stats", &dir.url()]);
    drop(held);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("could not acquire lock"), "{stderr}");
    assert!(
        stderr.trim_end().ends_with("is the app still running?)"),
        "{stderr}"
    );
}

#[test]
fn bad_usage_exits_2_with_a_message() {
    for args in [
        &[][..],
        &["nope"][..],
        &["check"][..],
        &["check", "mysql://h/db"][..],
        &["check", "--jobs", "x", "memory:"][..],
        &["list-user", "memory:"][..],
        &["purge", "memory:", "extra"][..],
    ] {
        let out = sessionctl(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(stderr.contains("--help"), "{args:?}: {stderr}");
    }
}

#[test]
fn help_lists_every_command_and_exits_0() {
    let out = sessionctl(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in [
        "check",
        "list-user",
        "revoke-user",
        "purge",
        "stats",
        "redis+cluster://",
    ] {
        assert!(help.contains(word), "{word} missing from help");
    }
    assert_eq!(text(&sessionctl(&["check", "--help"]).stdout), help);
}

#[test]
fn a_bad_password_never_reaches_the_output() {
    let out = sessionctl(&["stats", "redis://:topsecret@127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(1));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("redis://:***@127.0.0.1:1"), "{all}");
    assert!(!all.contains("topsecret"), "{all}");
}

#[test]
fn revoke_all_needs_yes_then_ends_every_session_of_every_user() {
    let dir = TempDir::new("revoke-all");
    let records = fill_sled(&dir);
    let url = dir.url();

    let out = sessionctl(&["revoke-all", &url]);
    assert_eq!(out.status.code(), Some(2), "refused without --yes");
    assert!(text(&out.stderr).contains("--yes"), "{}", text(&out.stderr));
    let out = sessionctl(&["list-user", &url, "alice"]);
    assert!(
        text(&out.stdout).contains("2 live sessions of user \"alice\""),
        "nothing was deleted without --yes"
    );

    let out = sessionctl(&["revoke-all", "--yes", &url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("revoked {} sessions of all users", records.len())
    );
    for user in ["alice", "bob"] {
        let out = sessionctl(&["list-user", &url, user]);
        assert!(text(&out.stdout).contains(&format!("0 live sessions of user \"{user}\"")));
    }
    let out = sessionctl(&["stats", &url]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("indexes: consistent"), "{stdout}");

    // No record loads any more.
    let runtime = runtime();
    let store = session_sled::SledStore::open(&dir.0).unwrap();
    for r in &records {
        assert!(runtime.block_on(store.load(&r.key)).unwrap().is_none());
    }
}

/// Issue 20, item 7: `sessionctl stats` warns when the server's eviction
/// policy would drop session keys (silently logging users out), and says
/// nothing under `noeviction`.
#[test]
fn stats_warns_when_the_redis_eviction_policy_drops_sessions() {
    const TEST: &str = "stats_warns_when_the_redis_eviction_policy_drops_sessions";
    // Needs only the redis-server binary, which CI has with the shared server.
    if server_or_skip("SESSION_TEST_REDIS_URL", TEST).is_none() {
        return;
    }
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    for (policy, warned) in [
        ("allkeys-lru", true),
        ("volatile-ttl", true),
        ("noeviction", false),
    ] {
        let port = session_test_suite::free_loopback_port();
        let _server = Killed(
            Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                ])
                .args(["--maxmemory", "64mb", "--maxmemory-policy", policy])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("start redis-server"),
        );
        let url = format!("redis://127.0.0.1:{port}");
        let mut out = sessionctl(&["stats", &url]);
        for _ in 0..100 {
            if out.status.success() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            out = sessionctl(&["stats", &url]);
        }
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "a warning is not a failure: {stdout}{}",
            text(&out.stderr)
        );
        let warning = stdout
            .lines()
            .find(|l| l.starts_with("warning: maxmemory-policy"));
        assert_eq!(warning.is_some(), warned, "policy {policy}:\n{stdout}");
        if let Some(w) = warning {
            assert!(w.contains(policy) && w.contains("logs users out"), "{w}");
        }
    }
}
