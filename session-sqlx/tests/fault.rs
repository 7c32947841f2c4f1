//! Fault tests on a PostgreSQL server of the test's own: a stream of session
//! operations runs while the server crashes (`pg_ctl stop -m immediate`) and
//! comes back. Needs the PostgreSQL server binaries (found through
//! `SESSION_TEST_PG_BINDIR`, `pg_config --bindir` or
//! `/usr/lib/postgresql/*/bin`), not the shared server.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use session_core::SessionStore;
use session_sqlx::PostgresStore;
use session_test_suite::fault;
use session_test_suite::skip;
use tokio::process::Command;

/// A PostgreSQL cluster in a temporary directory on a free loopback port,
/// removed on drop. As root, its commands run as user `postgres` (the server
/// refuses to run as root).
struct OwnPostgres {
    bindir: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn bindir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("SESSION_TEST_PG_BINDIR") {
        return Some(PathBuf::from(dir));
    }
    let from_pg_config = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let candidates = from_pg_config.into_iter().chain(
        std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin")),
    );
    candidates
        .filter(|d| d.join("pg_ctl").exists() && d.join("initdb").exists())
        .max()
}

impl OwnPostgres {
    async fn init(bindir: PathBuf) -> Self {
        let uid = std::process::Command::new("id").arg("-u").output();
        let as_postgres = uid.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let port = session_test_suite::free_loopback_port();
        let dir =
            std::env::temp_dir().join(format!("session-pg-fault-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the data directory");
        let this = Self {
            bindir,
            dir,
            port,
            as_postgres,
        };
        if as_postgres {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(&this.dir)
                .status()
                .await
                .expect("chown the data directory");
            assert!(status.success(), "chown the data directory to postgres");
        }
        let dir = this.dir.display().to_string();
        this.run(
            "initdb",
            &["-D", &dir, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        )
        .await;
        this
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bindir.join(program);
        let mut c = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        c.kill_on_drop(true);
        c
    }

    async fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program)
            .args(args)
            .output()
            .await
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    async fn start(&self) {
        let dir = self.dir.display().to_string();
        let log = self.dir.join("server.log").display().to_string();
        let options = format!("-p {} -c listen_addresses=127.0.0.1 -k {dir}", self.port);
        self.run(
            "pg_ctl",
            &[
                "-D", &dir, "-l", &log, "-o", &options, "-w", "-t", "60", "start",
            ],
        )
        .await;
    }

    /// Stops the server the way a crash does: no checkpoint, no goodbye to
    /// clients; committed work survives only through the WAL.
    async fn crash(&self) {
        let dir = self.dir.display().to_string();
        self.run("pg_ctl", &["-D", &dir, "-m", "immediate", "-w", "stop"])
            .await;
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let path = self.bindir.join("pg_ctl");
        let mut c = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            std::process::Command::new(path)
        };
        let _ = c
            .arg("-D")
            .arg(&self.dir)
            .args(["-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(Path::new(&self.dir));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_server_crash_calls_fail_fast_while_it_is_down_and_the_same_store_recovers_within_a_second(
) {
    const TEST: &str =
        "acknowledged_writes_survive_a_server_crash_calls_fail_fast_while_it_is_down";
    let Some(bindir) = bindir() else {
        skip(
            TEST,
            "the PostgreSQL server binaries (initdb, pg_ctl) are not installed",
        );
        return;
    };
    let server = OwnPostgres::init(bindir).await;
    server.start().await;
    let store = PostgresStore::connect(&server.url()).await.unwrap();
    store.migrate().await.unwrap();
    // No call outlives the call timeout (5 s) by more than scheduling.
    let bound = store.call_timeout() + Duration::from_secs(1);
    let store: Arc<dyn SessionStore> = Arc::new(store);

    let ((), outage) = fault::outage(
        store.clone(),
        Duration::from_secs(8),
        bound,
        server.crash(),
        server.start(),
    )
    .await;
    // Every acknowledged write is there after the crash; writes whose
    // outcome was lost show their old or their new state.
    outage.report.assert_durable(store.as_ref()).await;
    let during = outage.during();
    let recovery = outage.recovery();
    let _ = writeln!(
        std::io::stderr(),
        "postgres fault: {}\npostgres fault: calls during the outage after the first failure: \
         {during}; first success {recovery:?} after the server was back",
        outage.summary()
    );
    // Issue 20: after the first refused connection calls fail within
    // 100 ms, and the store is back within 1 s of the server.
    assert!(during.count > 0, "calls ran during the outage");
    assert!(
        during.p99 < Duration::from_millis(100),
        "calls during the outage fail fast: {during}"
    );
    let recovery = recovery.expect("a call succeeded after the restart");
    assert!(
        recovery < Duration::from_secs(1),
        "the first success came {recovery:?} after the server was back"
    );
}
