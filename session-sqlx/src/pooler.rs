//! [`Pooler`]: what sits between the store and PostgreSQL.

use std::fmt;
use std::str::FromStr;

use session_core::{Error, Result};
use sqlx::postgres::PgConnectOptions;

/// How the store's connections reach PostgreSQL, which decides what server
/// state it may rely on between round trips.
///
/// - [`Session`](Self::Session) (the default): a direct connection, or a
///   pooler in session mode (pgbouncer `pool_mode = session`). Statements are
///   prepared once per connection and reused (sqlx's named statements,
///   `sqlx_s_N`), which saves the server a parse and plan per call.
/// - [`Transaction`](Self::Transaction): a pooler in transaction mode
///   (pgbouncer `pool_mode = transaction`, Supavisor, RDS Proxy, …), which
///   hands the client connection a different server connection after every
///   transaction. The store then never depends on server-side statement
///   state across round trips: every call is one simple-protocol message
///   (one round trip, values written into the statement as hex-encoded
///   literals, never as SQL text) and `migrate` runs in one explicit
///   transaction. Connections are opened without the `extra_float_digits`
///   startup parameter, which pgbouncer refuses by default.
///
/// Why one round trip rather than an explicit transaction per call: sqlx
/// sends an unnamed statement's `Parse` and its `Bind`/`Execute` in two
/// separately `Sync`ed messages, and outside a transaction a transaction
/// pooler may run them on two different server connections. Wrapping each
/// call in `BEGIN … COMMIT` pins one server connection but costs four round
/// trips (BEGIN, Parse, Bind/Execute, COMMIT) where the simple protocol needs
/// one; measured through pgbouncer on loopback it was the slower choice (see
/// the README).
///
/// In a store URL: `postgres://…?pooler=transaction` (or `pooler=session`).
///
/// ```
/// use session_sqlx::Pooler;
///
/// assert_eq!("transaction".parse::<Pooler>()?, Pooler::Transaction);
/// assert_eq!(Pooler::default(), Pooler::Session);
/// assert!("statement".parse::<Pooler>().is_err());
/// # Ok::<(), session_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Pooler {
    /// Direct connections, or a session-mode pooler: prepared statements are
    /// cached per connection.
    #[default]
    Session,
    /// A transaction-mode pooler: no server-side state is relied on between
    /// round trips, and no `extra_float_digits` startup parameter is sent.
    Transaction,
}

impl Pooler {
    /// The name used in store URLs: `"session"` or `"transaction"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Transaction => "transaction",
        }
    }

    /// `options` adjusted for this pooler: for [`Transaction`](Self::Transaction),
    /// without the `extra_float_digits` startup parameter. Use it when building your own pool for
    /// [`PostgresStore::new`](crate::PostgresStore::new) with
    /// [`with_pooler`](crate::PostgresStore::with_pooler).
    pub fn connect_options(self, options: PgConnectOptions) -> PgConnectOptions {
        match self {
            Self::Session => options,
            Self::Transaction => options.extra_float_digits(None),
        }
    }
}

impl FromStr for Pooler {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "session" => Ok(Self::Session),
            "transaction" => Ok(Self::Transaction),
            other => Err(Error::InvalidInput(format!(
                "pooler must be \"session\" or \"transaction\", not {other:?}"
            ))),
        }
    }
}

impl fmt::Display for Pooler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
