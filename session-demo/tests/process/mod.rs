//! The demo binary as a child process: every line of its stdout and stderr
//! collected, and the process stopped on drop (panics included). Plus a
//! folder removed on drop, and unique secrets.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a finished demo process said.
#[derive(Debug)]
pub struct Output {
    pub status: Option<ExitStatus>,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

impl Output {
    /// Every line, marked with its stream, for assertion messages.
    pub fn all(&self) -> String {
        let out = self.stdout.iter().map(|l| format!("stdout| {l}"));
        let err = self.stderr.iter().map(|l| format!("stderr| {l}"));
        out.chain(err).collect::<Vec<_>>().join("\n")
    }

    /// Panics, showing the lines that do, if any line holds `secret`.
    pub fn assert_never_says(&self, secret: &str) {
        let leaks: Vec<String> = self
            .stdout
            .iter()
            .chain(&self.stderr)
            .filter(|l| l.contains(secret))
            .cloned()
            .collect();
        assert!(
            leaks.is_empty(),
            "{} line(s) hold the secret:\n{}",
            leaks.len(),
            leaks.join("\n")
        );
    }
}

/// `session-demo --store STORE --listen 127.0.0.1:<free port>`, with
/// `RUST_LOG=trace`; killed on drop.
pub struct DemoProcess {
    child: Child,
    pub addr: SocketAddr,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

fn collect(stream: impl Read + Send + 'static, into: Arc<Mutex<Vec<String>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            into.lock().unwrap().push(text);
            line.clear();
        }
    })
}

impl DemoProcess {
    pub fn spawn(store: &str) -> Self {
        Self::spawn_with(store, &[], &[])
    }

    /// As [`spawn`](Self::spawn), with more flags and environment variables.
    pub fn spawn_with(store: &str, flags: &[&str], env: &[(&str, &str)]) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], session_test_suite::free_loopback_port()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_session-demo"))
            .args(["--store", store, "--listen", &addr.to_string()])
            .args(flags)
            .envs(env.iter().copied())
            .env("RUST_LOG", "trace")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the demo binary");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let readers = vec![
            collect(child.stdout.take().unwrap(), stdout.clone()),
            collect(child.stderr.take().unwrap(), stderr.clone()),
        ];
        Self {
            child,
            addr,
            stdout,
            stderr,
            readers,
        }
    }

    /// Waits until the demo accepts connections; `Err` with everything it
    /// said if it exited first or took over 30 s.
    pub async fn wait_serving(&mut self) -> Result<(), Output> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return Ok(());
            }
            let exited = self.child.try_wait().ok().flatten().is_some();
            if exited || Instant::now() > deadline {
                return Err(self.stop());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits up to `timeout` for the process to exit by itself, then stops
    /// it; what it said, with its exit status if it exited by itself.
    pub fn wait_exit(mut self, timeout: Duration) -> Output {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut out = self.stop();
                out.status = Some(status);
                return out;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut out = self.stop();
        out.status = None;
        out
    }

    /// Asks the demo to shut down (SIGTERM, so it finishes its requests and
    /// logs that), kills it after 10 s, and returns everything it said.
    pub fn stop(&mut self) -> Output {
        let mut status = self.child.try_wait().ok().flatten();
        if status.is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while status.is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
                status = self.child.try_wait().ok().flatten();
            }
            if status.is_none() {
                let _ = self.child.kill();
                status = self.child.wait().ok();
            }
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Output {
            status,
            stdout: std::mem::take(&mut *self.stdout.lock().unwrap()),
            stderr: std::mem::take(&mut *self.stderr.lock().unwrap()),
        }
    }
}

impl Drop for DemoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh folder under the system's temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "session-demo-{tag}-{}-{}",
            std::process::id(),
            &session_core::SessionToken::generate().key().to_hex()[..12]
        ));
        std::fs::create_dir_all(&dir).expect("create a scratch folder");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A password no log line could hold by chance.
pub fn unique_secret() -> String {
    format!(
        "pw{}",
        &session_core::SessionToken::generate().key().to_hex()[..24]
    )
}

/// `host:port` of a `redis://` URL (user info, database and options left
/// out).
pub fn redis_host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let host_port = rest.split(['/', '?']).next().unwrap_or(rest);
    if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:6379")
    }
}

/// Where a PostgreSQL URL points, to build others to the same server.
pub struct PgServer {
    pub user: String,
    pub host: String,
    pub port: u16,
    pub database: String,
}

impl PgServer {
    pub fn of(url: &str) -> Self {
        use std::str::FromStr as _;
        let o = sqlx::postgres::PgConnectOptions::from_str(url).expect("a PostgreSQL URL");
        Self {
            user: o.get_username().to_owned(),
            host: o.get_host().to_owned(),
            port: o.get_port(),
            database: o.get_database().unwrap_or("postgres").to_owned(),
        }
    }

    /// `postgres://user[:password]@host:port/database`.
    pub fn url(&self, password: Option<&str>, database: &str) -> String {
        let password = password.map(|p| format!(":{p}")).unwrap_or_default();
        format!(
            "postgres://{}{password}@{}:{}/{database}",
            self.user, self.host, self.port
        )
    }
}
