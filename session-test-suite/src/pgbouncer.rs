//! A pgbouncer of a test's own, in transaction pooling mode, in front of a
//! PostgreSQL server: for backend tests and for `sessionctl check` through a
//! pooler. Needs the `pgbouncer` binary, not sqlx.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use session_core::SessionToken;

/// The parts of `postgres://user[:password]@host[:port]/database[?…]` a
/// pgbouncer configuration needs (the password is not used: pgbouncer
/// trusts its clients and the server must trust pgbouncer).
struct ServerUrl {
    user: String,
    host: String,
    port: u16,
    database: String,
}

impl ServerUrl {
    fn parse(url: &str) -> Self {
        let rest = url
            .split_once("://")
            .map_or(url, |(_, rest)| rest)
            .split(['?', '#'])
            .next()
            .unwrap_or_default();
        let (userinfo, rest) = rest.rsplit_once('@').unwrap_or(("postgres", rest));
        let user = userinfo.split(':').next().unwrap_or("postgres");
        let (hostport, database) = rest.split_once('/').unwrap_or((rest, "postgres"));
        let port_of = |p: &str| p.parse().expect("a port number in the server URL");
        let (host, port) = match hostport.strip_prefix('[') {
            Some(v6) => match v6.split_once("]:") {
                Some((h, p)) => (h, port_of(p)),
                None => (v6.trim_end_matches(']'), 5432),
            },
            None => match hostport.rsplit_once(':') {
                Some((h, p)) => (h, port_of(p)),
                None => (hostport, 5432),
            },
        };
        Self {
            user: if user.is_empty() { "postgres" } else { user }.to_owned(),
            host: if host.is_empty() { "127.0.0.1" } else { host }.to_owned(),
            port,
            database: if database.is_empty() {
                "postgres"
            } else {
                database
            }
            .to_owned(),
        }
    }
}

/// Where the `pgbouncer` binary is: on `PATH`, or where Debian puts it.
fn binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    on_path
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("pgbouncer"))
        .find(|p| p.is_file())
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Uid:")
                    .map(|r| r.split_whitespace().next() == Some("0"))
            })
        })
        .unwrap_or(false)
}

/// A running pgbouncer; dropping it stops it and removes its folder.
///
/// It runs under a small shell that kills it when its standard input
/// closes, so it also goes away if the test process dies without
/// unwinding.
pub struct PgBouncer {
    /// `postgres://user@127.0.0.1:PORT/db` through the pooler.
    pub url: String,
    child: Child,
    stdin: Option<ChildStdin>,
    dir: PathBuf,
}

impl std::fmt::Debug for PgBouncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBouncer").field("url", &self.url).finish()
    }
}

impl PgBouncer {
    /// Starts pgbouncer (`pool_mode = transaction`, `default_pool_size =
    /// pool_size`, pgbouncer's other defaults, `extra` appended to the
    /// `[pgbouncer]` section) in front of the server at `server_url`. `Err`
    /// says why it cannot run (no binary), for a skip.
    pub fn start(server_url: &str, pool_size: u32, extra: &str) -> Result<Self, String> {
        let bin =
            binary().ok_or("the pgbouncer binary is not installed (apt-get install pgbouncer)")?;
        let server = ServerUrl::parse(server_url);
        let user = server.user.clone();
        let db = server.database.clone();
        let dir = std::env::temp_dir().join(format!(
            "session-pgbouncer-{}",
            &SessionToken::generate().key().to_hex()[..12]
        ));
        std::fs::create_dir_all(&dir).expect("create the pgbouncer folder");
        set_mode(&dir, 0o755);
        let port = crate::free_loopback_port();
        let userlist = dir.join("userlist.txt");
        std::fs::write(&userlist, format!("\"{user}\" \"\"\n")).expect("write the auth file");
        let ini = dir.join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n\
                 {db} = host={host} port={server_port} dbname={db}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {userlist}\n\
                 pool_mode = transaction\n\
                 default_pool_size = {pool_size}\n\
                 max_client_conn = 1000\n\
                 {extra}\n",
                host = server.host,
                server_port = server.port,
                userlist = userlist.display(),
            ),
        )
        .expect("write pgbouncer.ini");
        for file in [&userlist, &ini] {
            set_mode(file, 0o644);
        }
        let log = std::fs::File::create(dir.join("pgbouncer.log")).expect("create the log");
        // pgbouncer refuses to run as root: as root, `-u postgres` drops to
        // that user once the files are read.
        let mut args = vec![bin.display().to_string()];
        if running_as_root() {
            args.extend(["-u".to_owned(), "postgres".to_owned()]);
        }
        args.push(ini.display().to_string());
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#""$0" "$@" & p=$!; read _; kill "$p"; wait "$p""#)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn pgbouncer");
        let stdin = child.stdin.take();
        let mut bouncer = Self {
            url: format!("postgres://{user}@127.0.0.1:{port}/{db}"),
            child,
            stdin,
            dir,
        };
        bouncer.wait_until_listening(port);
        Ok(bouncer)
    }

    fn wait_until_listening(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "pgbouncer did not come up on port {port} ({exited:?}); its log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What pgbouncer wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // Closing its input makes the shell kill pgbouncer and wait for it.
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .expect("make the pgbouncer files readable");
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: u32) {}

#[cfg(test)]
mod tests {
    use super::ServerUrl;

    #[test]
    fn server_urls_give_user_host_port_and_database_with_postgres_defaults() {
        let u = ServerUrl::parse("postgres://app:secret@db.local:6543/sessions?sslmode=disable");
        assert_eq!(
            (
                u.user.as_str(),
                u.host.as_str(),
                u.port,
                u.database.as_str()
            ),
            ("app", "db.local", 6543, "sessions")
        );
        let u = ServerUrl::parse("postgresql://127.0.0.1");
        assert_eq!(
            (
                u.user.as_str(),
                u.host.as_str(),
                u.port,
                u.database.as_str()
            ),
            ("postgres", "127.0.0.1", 5432, "postgres")
        );
        let u = ServerUrl::parse("postgres://u@[::1]:5433/d");
        assert_eq!((u.host.as_str(), u.port), ("::1", 5433));
    }
}
