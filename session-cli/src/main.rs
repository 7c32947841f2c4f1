//! `sessionctl`: check a live session store against the conformance suite,
//! list and revoke a user's sessions, purge expired ones, show statistics.
//!
//! Run `sessionctl --help` for usage.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;

use session_cli::{check, error_chain, CaseResult, Connection, StoreUrl};
use session_core::{Error, Timestamp};
use session_test_suite::CASES;

const HELP: &str = "\
sessionctl: check and administer session stores

Usage:
  sessionctl check [--jobs N] [--filter TEXT] URL
  sessionctl migrate URL
  sessionctl list-user URL USER
  sessionctl revoke-user URL USER
  sessionctl revoke-all --yes URL
  sessionctl purge URL
  sessionctl stats URL
  sessionctl help [COMMAND]
  sessionctl --version

Commands:
  check        Run the conformance suite against the store. Each case runs in a
               fresh namespace of its own (a random sled tree prefix, PostgreSQL
               schema or Redis key prefix) that is removed afterwards, so the
               store's own sessions are never read or changed. Prints a table
               (case, result, milliseconds), the failures, then the line
               \"N passed, M failed\". Exits 1 if any case failed.
  migrate      Create the PostgreSQL session table, or bring it up to date; run
               it as the table's owner, once per upgrade, so the application
               can run as a role with only SELECT, INSERT, UPDATE and DELETE
               on the table (open its URL with migrate=false). Safe to run
               twice or from several hosts at once. Prints the table and the
               migration it is at. Other backends need no migration.
  list-user    List a user's live sessions: id, created, expires, version.
               Never prints keys or tokens.
  revoke-user  Delete all of a user's sessions (\"log out everywhere\"); prints
               how many were revoked.
  revoke-all   Delete every session of every user, anonymous ones included
               (after a breach, say). Needs --yes. Prints how many sessions
               were deleted.
  purge        Remove expired sessions; prints how many were removed.
  stats        Backend-specific numbers: sled records and index consistency,
               PostgreSQL live and expired rows, Redis session and index keys.
               Exits 1 if a problem was found.

URL (one syntax everywhere):
  memory:                                   a new, empty store in this process
  sled:PATH                                 sled database in folder PATH
  postgres://user:pass@host:5432/db         PostgreSQL, table public.sessions
      ?pooler=transaction                   behind pgbouncer in transaction mode
      ?migrate=false                        never create or migrate the table
  redis://[user:pass@]host:6379[/db]        Redis (also rediss://), keys session:*
  redis+cluster://[user:pass@]h:p,h:p       Redis Cluster, keys session:*

  list-user, revoke-user, revoke-all, purge and stats work on the default
  namespace, as an application opening the same URL sees it. They create
  nothing: a missing sled folder or PostgreSQL table is an error.

Options of check:
  -j, --jobs N       run up to N cases at a time (default 4)
  -f, --filter TEXT  run only the cases whose name contains TEXT

Exit status: 0 success, 1 failure or error, 2 bad usage.
";

const DEFAULT_JOBS: usize = 4;

fn usage_of(command: &str) -> &'static str {
    match command {
        "check" => "sessionctl check [--jobs N] [--filter TEXT] URL",
        "migrate" => "sessionctl migrate URL",
        "list-user" => "sessionctl list-user URL USER",
        "revoke-user" => "sessionctl revoke-user URL USER",
        "revoke-all" => "sessionctl revoke-all --yes URL",
        "purge" => "sessionctl purge URL",
        "stats" => "sessionctl stats URL",
        _ => "sessionctl COMMAND ARGS (see sessionctl --help)",
    }
}

#[derive(Debug)]
enum Command {
    Help,
    Version,
    Check {
        url: StoreUrl,
        jobs: usize,
        filter: Option<String>,
    },
    Migrate {
        url: StoreUrl,
    },
    ListUser {
        url: StoreUrl,
        user: String,
    },
    RevokeUser {
        url: StoreUrl,
        user: String,
    },
    RevokeAll {
        url: StoreUrl,
    },
    Purge {
        url: StoreUrl,
    },
    Stats {
        url: StoreUrl,
    },
}

impl Command {
    fn url(&self) -> Option<&StoreUrl> {
        match self {
            Self::Help | Self::Version => None,
            Self::Check { url, .. }
            | Self::Migrate { url }
            | Self::ListUser { url, .. }
            | Self::RevokeUser { url, .. }
            | Self::RevokeAll { url }
            | Self::Purge { url }
            | Self::Stats { url } => Some(url),
        }
    }
}

/// Bad usage: what is wrong, and for which command.
#[derive(Debug)]
struct Usage {
    command: String,
    message: String,
}

fn usage(command: &str, message: impl Into<String>) -> Usage {
    Usage {
        command: command.to_owned(),
        message: message.into(),
    }
}

fn parse_args(args: &[String]) -> Result<Command, Usage> {
    let Some((command, rest)) = args.split_first() else {
        return Err(usage("", "no command given"));
    };
    let command = command.as_str();
    match command {
        "-h" | "--help" | "help" => return Ok(Command::Help),
        "-V" | "--version" => return Ok(Command::Version),
        "check" | "migrate" | "list-user" | "revoke-user" | "revoke-all" | "purge" | "stats" => {}
        other => return Err(usage("", format!("unknown command {other:?}"))),
    }

    let mut positional = Vec::new();
    let mut jobs = DEFAULT_JOBS;
    let mut filter = None;
    let mut confirmed = false;
    let mut rest = rest.iter();
    let mut options_done = false;
    while let Some(arg) = rest.next() {
        if options_done || !arg.starts_with('-') || arg == "-" {
            positional.push(arg.clone());
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let mut value = |what: &str| -> Result<String, Usage> {
            inline
                .clone()
                .or_else(|| rest.next().cloned())
                .ok_or_else(|| usage(command, format!("{name} needs {what}")))
        };
        match (command, name) {
            (_, "-h" | "--help") => return Ok(Command::Help),
            (_, "--") => options_done = true,
            ("check", "-j" | "--jobs") => {
                let v = value("a number")?;
                jobs = match v.parse::<usize>() {
                    Ok(n) if n >= 1 => n,
                    _ => {
                        return Err(usage(
                            command,
                            format!("{name} takes a whole number of at least 1, not {v:?}"),
                        ))
                    }
                };
            }
            ("check", "-f" | "--filter") => filter = Some(value("some text")?),
            ("revoke-all", "--yes") => confirmed = true,
            _ => {
                return Err(usage(
                    command,
                    format!("unknown option {name:?} for {command}"),
                ))
            }
        }
    }

    let wanted = match command {
        "list-user" | "revoke-user" => 2,
        _ => 1,
    };
    if positional.len() != wanted {
        let what = if wanted == 2 {
            "a URL and a USER"
        } else {
            "a URL"
        };
        let got = match positional.len() {
            0 => "nothing".to_owned(),
            n => format!("{n} arguments"),
        };
        return Err(usage(command, format!("{command} takes {what}, got {got}")));
    }
    if command == "revoke-all" && !confirmed {
        return Err(usage(
            command,
            "revoke-all ends every session of every user; add --yes to confirm",
        ));
    }
    let url = StoreUrl::parse(&positional[0]).map_err(|e| match e {
        Error::InvalidInput(why) => usage(command, format!("bad store URL: {why}")),
        other => usage(command, format!("bad store URL: {other}")),
    })?;
    let user = positional.get(1).cloned().unwrap_or_default();
    Ok(match command {
        "check" => Command::Check { url, jobs, filter },
        "migrate" => Command::Migrate { url },
        "list-user" => Command::ListUser { url, user },
        "revoke-user" => Command::RevokeUser { url, user },
        "revoke-all" => Command::RevokeAll { url },
        "purge" => Command::Purge { url },
        _ => Command::Stats { url },
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = match std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect()
    {
        Ok(args) => args,
        Err(bad) => {
            eprintln!("error: argument {bad:?} is not valid UTF-8");
            return ExitCode::from(2);
        }
    };
    let command = match parse_args(&args) {
        Ok(command) => command,
        Err(Usage { command, message }) => {
            eprintln!("error: {message}");
            eprintln!("usage: {}", usage_of(&command));
            eprintln!("Run 'sessionctl --help' for more.");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Command::Version => {
            println!("sessionctl {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(WORKER_THREAD)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the Tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let url = command.url().cloned();
    match runtime.block_on(run(command)) {
        Ok(code) => code,
        Err(e) => {
            match url {
                Some(url) => eprintln!("error: {url}: {}", url.explain_error(&e)),
                None => eprintln!("error: {}", error_chain(&e)),
            }
            ExitCode::FAILURE
        }
    }
}

const WORKER_THREAD: &str = "sessionctl-worker";

async fn run(command: Command) -> Result<ExitCode, Error> {
    match command {
        Command::Check { url, jobs, filter } => run_check(&url, jobs, filter.as_deref()).await,
        Command::Migrate { url } => {
            match url.connect().await?.migrate().await? {
                Some(table) => println!(
                    "{table} is at migration {}",
                    session_sqlx::PostgresStore::SCHEMA_VERSION
                ),
                None => println!("{} stores need no migration", url.backend()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::ListUser { url, user } => {
            let store = connect_existing(&url).await?.store().await?;
            let mut sessions = store.list_user(&user).await?;
            sessions.sort_by_key(|r| (r.created_at, r.expires_at));
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "{:<36}  {:<24}  {:<24}  version",
                "id", "created (UTC)", "expires (UTC)"
            );
            for r in &sessions {
                let _ = writeln!(
                    out,
                    "{:<36}  {:<24}  {:<24}  {}",
                    r.id.to_string(),
                    format_time(r.created_at),
                    format_time(r.expires_at),
                    r.version
                );
            }
            let _ = writeln!(
                out,
                "{} live {} of user {user:?}",
                sessions.len(),
                plural(sessions.len() as u64, "session", "sessions")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::RevokeUser { url, user } => {
            let store = connect_existing(&url).await?.store().await?;
            let revoked = store.delete_user(&user, None).await?;
            println!(
                "revoked {revoked} {} of user {user:?}",
                plural(revoked, "session", "sessions")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::RevokeAll { url } => {
            let deleted = connect_existing(&url).await?.revoke_all().await?;
            println!(
                "revoked {deleted} {} of all users",
                plural(deleted, "session", "sessions")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Purge { url } => {
            let store = connect_existing(&url).await?.store().await?;
            let removed = store.purge_expired().await?;
            println!(
                "removed {removed} expired {}",
                plural(removed, "session", "sessions")
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats { url } => {
            let stats = connect_existing(&url).await?.stats().await?;
            print!("{stats}");
            Ok(if stats.is_healthy() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Help | Command::Version => Ok(ExitCode::SUCCESS),
    }
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// Connects for an admin command, which must not create a store that is not
/// there: a sled folder must already hold a database.
async fn connect_existing(url: &StoreUrl) -> Result<Connection, Error> {
    match url {
        StoreUrl::Sled(path) if !is_sled_database(path) => {
            return Err(Error::InvalidInput(format!(
                "no sled database in {} (this command creates none)",
                path.display()
            )))
        }
        StoreUrl::Memory => {
            eprintln!("note: memory: is a new, empty store in this process; it holds nothing")
        }
        _ => {}
    }
    url.connect().await
}

fn is_sled_database(path: &Path) -> bool {
    path.is_dir() && (path.join("conf").is_file() || path.join("db").is_file())
}

/// Panic messages and locations of failed cases, so the failure list can say
/// where a case gave up.
static PANICS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

/// Case failures are panics on the runtime's worker threads: record them
/// for the report instead of printing them in the middle of the table.
fn quiet_case_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() != Some(WORKER_THREAD) {
            return default_hook(info);
        }
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        if let Ok(mut panics) = PANICS.lock() {
            panics.push((message, location));
        }
    }));
}

fn panic_location(message: &str) -> Option<String> {
    let panics = PANICS.lock().ok()?;
    panics
        .iter()
        .find(|(m, _)| m == message)
        .map(|(_, at)| at.clone())
        .filter(|at| !at.is_empty())
}

async fn run_check(url: &StoreUrl, jobs: usize, filter: Option<&str>) -> Result<ExitCode, Error> {
    let cases: Vec<_> = CASES
        .iter()
        .copied()
        .filter(|c| filter.is_none_or(|f| c.name.contains(f)))
        .collect();
    if cases.is_empty() {
        return Err(Error::InvalidInput(format!(
            "no case name contains {:?}",
            filter.unwrap_or_default()
        )));
    }
    let conn = url.connect().await?;
    let jobs = jobs.min(cases.len());
    println!(
        "checking {url} against {} {}, {jobs} at a time, each in a fresh namespace",
        cases.len(),
        plural(cases.len() as u64, "case", "cases")
    );
    println!();

    let width = cases.iter().map(|c| c.name.len()).max().unwrap_or(4).max(4);
    println!("{:<width$} | result |     ms", "case");
    println!("{}-+--------+-------", "-".repeat(width));
    quiet_case_panics();
    let started = Instant::now();
    let results = check(&conn, &cases, jobs, |r: &CaseResult| {
        let verdict = if r.passed() { "ok" } else { "FAIL" };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{:<width$} | {verdict:<6} | {:>6}",
            r.name,
            r.elapsed.as_millis()
        );
        let _ = out.flush();
    })
    .await;
    let wall = started.elapsed();

    let failed: Vec<&CaseResult> = results.iter().filter(|r| !r.passed()).collect();
    if !failed.is_empty() {
        println!();
        println!("failures:");
        for r in &failed {
            let message = r.failure.as_deref().unwrap_or_default();
            println!();
            println!("---- {}", r.name);
            println!("{message}");
            if let Some(at) = panic_location(message) {
                println!("  (at {at})");
            }
        }
    }
    println!();
    println!("ran in {:.1} s", wall.as_secs_f64());
    println!(
        "{} passed, {} failed",
        results.len() - failed.len(),
        failed.len()
    );
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `2024-05-01T12:00:00.123Z`.
fn format_time(ts: Timestamp) -> String {
    let ms = ts.as_millis();
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m as u32, d as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn format_time_prints_utc_to_the_millisecond() {
        assert_eq!(format_time(Timestamp::EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_time(Timestamp::from_millis(951_782_400_123)),
            "2000-02-29T00:00:00.123Z"
        );
        assert_eq!(
            format_time(Timestamp::from_millis(1_714_564_800_000)),
            "2024-05-01T12:00:00.000Z"
        );
        assert_eq!(
            format_time(Timestamp::from_millis(-1)),
            "1969-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn check_options_parse_in_either_form() {
        match parse_args(&args(&["check", "--jobs=2", "-f", "rotate", "memory:"])) {
            Ok(Command::Check { url, jobs, filter }) => {
                assert_eq!(url, StoreUrl::Memory);
                assert_eq!(jobs, 2);
                assert_eq!(filter.as_deref(), Some("rotate"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_user_name_starting_with_a_dash_follows_double_dash() {
        match parse_args(&args(&["list-user", "memory:", "--", "-bob"])) {
            Ok(Command::ListUser { user, .. }) => assert_eq!(user, "-bob"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_usage_is_an_error_naming_the_problem() {
        for (bad, needle) in [
            (&[][..], "no command"),
            (&["frobnicate"][..], "unknown command"),
            (&["check"][..], "takes a URL"),
            (&["check", "--jobs", "0", "memory:"][..], "at least 1"),
            (&["check", "--jobs"][..], "needs a number"),
            (&["purge", "--force", "memory:"][..], "unknown option"),
            (&["list-user", "memory:"][..], "a URL and a USER"),
            (&["stats", "mysql://x"][..], "bad store URL"),
        ] {
            match parse_args(&args(bad)) {
                Err(u) => assert!(u.message.contains(needle), "{bad:?}: {}", u.message),
                Ok(c) => panic!("{bad:?} parsed as {c:?}"),
            }
        }
    }
}
