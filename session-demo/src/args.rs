//! Command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use session_cli::StoreUrl;

/// What `session-demo` was asked to do.
///
/// The store URL is kept parsed, so `Debug` (like the logs) shows it with
/// its password as `***`.
#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    /// Store (`memory:`, `sled:PATH`, `postgres://…`, `redis://…`,
    /// `redis+cluster://h:p,h:p`).
    pub store: StoreUrl,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Plain-http cookies (no `Secure`, no `__Host-` prefix).
    pub dev_cookies: bool,
    /// Idle timeout.
    pub idle: Duration,
    /// Absolute timeout.
    pub absolute: Duration,
    /// Open the store without creating or migrating its table (PostgreSQL):
    /// only check that it is at the version this release needs.
    pub no_migrate: bool,
    /// Client-side sessions: the session sealed in the cookie, keys from
    /// [`KEYS_VAR`](crate::keys::KEYS_VAR); no store unless
    /// `revocation_list`.
    pub client_side: bool,
    /// With `client_side`: keep a revocation list in `store`.
    pub revocation_list: bool,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            store: StoreUrl::Sled(PathBuf::from("session-demo-data")),
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            dev_cookies: false,
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(24 * 3600),
            no_migrate: false,
            client_side: false,
            revocation_list: false,
        }
    }
}

/// Usage text for `--help` and for mistakes.
pub const USAGE: &str = "\
session-demo: a small web app on the session layer

USAGE: session-demo [--store URL] [--listen ADDR] [--dev-cookies]
                    [--idle-timeout SECS] [--absolute-timeout SECS]
                    [--no-migrate] [--client-side [--revocation-list]]

  --store URL              memory:, sled:PATH, postgres://..., redis://...,
                           redis+cluster://host:port,host:port
                           (default: sled:session-demo-data)
  --listen ADDR            address to serve on (default: 127.0.0.1:3000)
  --dev-cookies            cookies without Secure and the __Host- prefix, for
                           plain http on browsers that need it (loopback only)
  --idle-timeout SECS      end sessions idle this long (default: 1800)
  --absolute-timeout SECS  end sessions this long after creation (default: 86400)
  --no-migrate             do not create or migrate the PostgreSQL table, only
                           check it (for a role that may not create anything;
                           its owner runs `sessionctl migrate URL`)
  --client-side            keep each session sealed in its cookie, with no
                           store; the keys come from SESSION_DEMO_KEYS
                           (ID:BASE64 of 32 random bytes, comma-separated,
                           the highest ID seals: add one to rotate)
  --revocation-list        with --client-side: refuse cookies ended by logout,
                           login or log-out-everywhere, with a list kept in
                           --store
";

impl Args {
    /// Parses flags (without the program name). `Err` holds the message to
    /// print; `Ok(None)` means `--help` was asked for.
    pub fn parse(mut flags: impl Iterator<Item = String>) -> Result<Option<Self>, String> {
        let mut args = Self::default();
        while let Some(flag) = flags.next() {
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
                _ => (flag.clone(), None),
            };
            let mut value = |what: &str| {
                inline
                    .clone()
                    .or_else(|| flags.next())
                    .ok_or_else(|| format!("{name} needs {what}"))
            };
            match name.as_str() {
                "-h" | "--help" => return Ok(None),
                "--store" => {
                    args.store = StoreUrl::parse(&value("a store URL")?)
                        .map_err(|e| format!("--store: {e}"))?;
                }
                "--listen" => {
                    let v = value("an address")?;
                    args.listen = v.parse().map_err(|_| {
                        format!("--listen: {v:?} is not an address like 127.0.0.1:3000")
                    })?;
                }
                "--dev-cookies" => args.dev_cookies = true,
                "--no-migrate" => args.no_migrate = true,
                "--client-side" => args.client_side = true,
                "--revocation-list" => args.revocation_list = true,
                "--idle-timeout" => args.idle = seconds(&name, &value("seconds")?)?,
                "--absolute-timeout" => args.absolute = seconds(&name, &value("seconds")?)?,
                other => return Err(format!("unknown flag {other:?}")),
            }
        }
        if args.idle > args.absolute {
            return Err(format!(
                "--idle-timeout ({}s) is longer than --absolute-timeout ({}s): a session \
                 ends at the absolute timeout whatever its activity, so the idle timeout \
                 would never apply; lower it or raise --absolute-timeout",
                args.idle.as_secs(),
                args.absolute.as_secs()
            ));
        }
        if args.revocation_list && !args.client_side {
            return Err(
                "--revocation-list is for client-side sessions: add --client-side, or drop it \
                 (server-side sessions end at once in the store)"
                    .into(),
            );
        }
        if args.dev_cookies && !args.listen.ip().is_loopback() {
            return Err(format!(
                "--dev-cookies sends session cookies without Secure: only on a loopback \
                 address, not {}",
                args.listen
            ));
        }
        Ok(Some(args))
    }
}

fn seconds(flag: &str, v: &str) -> Result<Duration, String> {
    match v.parse::<u64>() {
        Ok(s) if s > 0 => Ok(Duration::from_secs(s)),
        _ => Err(format!(
            "{flag}: {v:?} is not a whole number of seconds above 0"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(flags: &[&str]) -> Result<Option<Args>, String> {
        Args::parse(flags.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn defaults_serve_sled_on_loopback_3000_with_secure_cookies() {
        assert_eq!(parse(&[]).unwrap(), Some(Args::default()));
        assert_eq!(Args::default().listen.to_string(), "127.0.0.1:3000");
    }

    #[test]
    fn every_flag_parses_in_both_forms() {
        let a = parse(&[
            "--store",
            "memory:",
            "--listen=127.0.0.2:8080",
            "--dev-cookies",
            "--idle-timeout",
            "60",
            "--absolute-timeout=600",
            "--no-migrate",
            "--client-side",
            "--revocation-list",
        ])
        .unwrap()
        .unwrap();
        assert!(a.client_side && a.revocation_list);
        assert_eq!(a.store, StoreUrl::Memory);
        assert_eq!(a.listen.port(), 8080);
        assert!(a.dev_cookies);
        assert_eq!(a.idle, Duration::from_secs(60));
        assert_eq!(a.absolute, Duration::from_secs(600));
        assert!(a.no_migrate);
    }

    #[test]
    fn mistakes_are_clear_errors() {
        assert!(parse(&["--listen", "nowhere"])
            .unwrap_err()
            .contains("--listen"));
        assert!(parse(&["--idle-timeout", "0"])
            .unwrap_err()
            .contains("--idle-timeout"));
        assert!(parse(&["--store"]).unwrap_err().contains("needs"));
        assert!(parse(&["--store", "mysql://db"])
            .unwrap_err()
            .contains("--store"));
        assert!(parse(&["--frobnicate"])
            .unwrap_err()
            .contains("unknown flag"));
        assert_eq!(parse(&["--help"]).unwrap(), None);
        assert!(parse(&["--revocation-list"])
            .unwrap_err()
            .contains("--client-side"));
        let exposed = parse(&["--listen", "0.0.0.0:3000", "--dev-cookies"]).unwrap_err();
        assert!(exposed.contains("loopback"), "{exposed}");
    }

    #[test]
    fn an_idle_timeout_longer_than_the_absolute_one_is_refused_with_both_values() {
        let e = parse(&["--idle-timeout", "7200", "--absolute-timeout", "3600"]).unwrap_err();
        assert!(e.contains("--idle-timeout (7200s)"), "{e}");
        assert!(e.contains("--absolute-timeout (3600s)"), "{e}");
        // Equal is fine, and so is a short absolute timeout with a shorter idle one.
        assert!(parse(&["--idle-timeout", "60", "--absolute-timeout", "60"]).is_ok());
        assert!(parse(&["--idle-timeout", "30", "--absolute-timeout", "60"]).is_ok());
        // The default idle timeout (30 min) against a short absolute one.
        assert!(parse(&["--absolute-timeout", "60"]).is_err());
    }

    #[test]
    fn debug_of_args_never_shows_the_store_password() {
        let a = parse(&["--store", "postgres://app:pw-in-args@db/app"])
            .unwrap()
            .unwrap();
        let debug = format!("{a:?}");
        assert!(!debug.contains("pw-in-args"), "{debug}");
        assert!(debug.contains("postgres://app:***@db/app"), "{debug}");
    }
}
