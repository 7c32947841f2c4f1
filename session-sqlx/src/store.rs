//! [`PostgresStore`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use session_core::{
    check_user_name, Error, Record, Result, SessionId, SessionKey, SessionStore, Timestamp,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;

use crate::error::{db_err, is_unique_violation};
use crate::exec::{Exec, Param};
use crate::guard::{Guard, DEFAULT_CALL_TIMEOUT};
use crate::names::Ident;
use crate::pooler::Pooler;
use crate::sql::Queries;

const DEFAULT_PURGE_BATCH: i64 = 1_000;

/// A [`SessionStore`] on PostgreSQL, through a sqlx
/// [`PgPool`](https://docs.rs/sqlx/0.9/sqlx/type.PgPool.html).
///
/// One row per session in `schema.table` (default `public.sessions`):
/// `key bytea` primary key (the token's SHA-256, never the token),
/// `id uuid`, `"user" text` (indexed where set), `created_at` / `expires_at
/// timestamptz`, `purge_at timestamptz` (indexed; at or before `expires_at`),
/// `version int8`, `data bytea`.
///
/// The usual path of every operation is one statement, so one round trip:
/// `create` is a plain `INSERT` (an expired row under the same key is
/// removed and the insert retried); `update` and `rotate` are
/// compare-and-set `UPDATE`s, and only one that matches nothing reads the
/// row again to tell a conflict from a missing session; `delete_user` is
/// one `DELETE`. "Now" is the database server's `now()`.
///
/// Writes only ever lower `purge_at`, so the usual update (new data, a later
/// deadline) changes no indexed column and PostgreSQL can make it a HOT
/// update, touching no index. `purge_expired` works in batches (default
/// 1,000) through the `purge_at` index: it deletes the rows that expired and
/// files the ones whose deadline moved later at that deadline, so its cost
/// grows with the rows due, not with the rows stored.
///
/// Call [`migrate`](Self::migrate) once at start-up; it is idempotent and safe
/// to run from several processes at once. An application role that may not
/// create anything calls [`check_schema`](Self::check_schema) instead, after
/// the owner ran `sessionctl migrate URL`.
///
/// Behind a transaction-mode pooler (pgbouncer `pool_mode = transaction`),
/// open it with [`Pooler::Transaction`] ([`connect_with`](Self::connect_with),
/// or `?pooler=transaction` in a store URL): see [`Pooler`] for what changes.
///
/// ```no_run
/// # async fn demo() -> session_core::Result<()> {
/// use std::sync::Arc;
/// use session_core::{SessionConfig, SessionManager};
/// use session_sqlx::PostgresStore;
///
/// let store = PostgresStore::connect("postgres://app@localhost/app").await?;
/// store.migrate().await?;
/// let manager = SessionManager::new(Arc::new(store), SessionConfig::default())?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    pub(crate) pool: PgPool,
    pub(crate) schema: Ident,
    pub(crate) table: Ident,
    pub(crate) sql: Arc<Queries>,
    purge_batch: i64,
    pooler: Pooler,
    guard: Guard,
}

/// Shows where the sessions live, never how to connect: the pool's connect
/// options hold the database password.
impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema.as_str())
            .field("table", &self.table.as_str())
            .field("purge_batch", &self.purge_batch)
            .field("pooler", &self.pooler)
            .field("call_timeout", &self.guard.call_timeout)
            .finish_non_exhaustive()
    }
}

fn version_param(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::InvalidInput(format!("version {v} exceeds int8")))
}

/// `$1`..`$7` of the record statements: key, id, user, created ms, expires
/// ms, version, data; then `extra`.
fn record_params<'q>(r: &'q Record, extra: &[Param<'q>]) -> Result<Vec<Param<'q>>> {
    let mut params = vec![
        Param::Bytes(Some(r.key.as_bytes().as_slice())),
        Param::Uuid(*r.id.as_uuid()),
        Param::Text(r.user.as_deref()),
        Param::Int(r.created_at.as_millis()),
        Param::Int(r.expires_at.as_millis()),
        Param::Int(version_param(r.version)?),
        Param::Bytes(Some(r.data.as_slice())),
    ];
    params.extend_from_slice(extra);
    Ok(params)
}

fn key_param(key: &SessionKey) -> Param<'_> {
    Param::Bytes(Some(key.as_bytes().as_slice()))
}

fn record_from(row: &PgRow) -> Result<Record> {
    let decode = |e: sqlx::Error| Error::decode_with("postgres session row", e);
    let key: Vec<u8> = row.try_get("key").map_err(decode)?;
    let id: uuid::Uuid = row.try_get("id").map_err(decode)?;
    let version: i64 = row.try_get("version").map_err(decode)?;
    Ok(Record {
        key: SessionKey::from_slice(&key).ok_or_else(|| Error::decode("postgres session key"))?,
        id: SessionId::from_uuid(id),
        user: row.try_get("user").map_err(decode)?,
        created_at: Timestamp::from_millis(row.try_get("created_ms").map_err(decode)?),
        expires_at: Timestamp::from_millis(row.try_get("expires_ms").map_err(decode)?),
        version: u64::try_from(version).map_err(|_| Error::decode("postgres session version"))?,
        data: row.try_get("data").map_err(decode)?,
    })
}

impl PostgresStore {
    /// A store on `pool`, in table `public.sessions`.
    pub fn new(pool: PgPool) -> Self {
        let schema = Ident::new("schema", "public").expect("valid default");
        let table = Ident::new("table", "sessions").expect("valid default");
        Self {
            sql: Arc::new(Queries::new(&schema, &table)),
            pool,
            schema,
            table,
            purge_batch: DEFAULT_PURGE_BATCH,
            pooler: Pooler::Session,
            guard: Guard::new(),
        }
    }

    /// Connects a pool with `options` adjusted for `pooler` (see
    /// [`Pooler::connect_options`]; 5 s to acquire a connection, then a
    /// transient error), uses `public.sessions`, and runs every statement
    /// as `pooler` allows.
    ///
    /// ```no_run
    /// # async fn demo() -> session_core::Result<()> {
    /// use session_sqlx::{Pooler, PostgresStore};
    ///
    /// let options = "postgres://app@pgbouncer:6432/app".parse().expect("a URL");
    /// let store = PostgresStore::connect_with(options, Pooler::Transaction).await?;
    /// store.check_schema().await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with(options: PgConnectOptions, pooler: Pooler) -> Result<Self> {
        Self::connect_with_pool(options, pooler, PgPoolOptions::new(), DEFAULT_CALL_TIMEOUT).await
    }

    /// Like [`connect_with`](Self::connect_with), with the pool built from
    /// `pool` (say, to set its size) and every call bounded by
    /// `call_timeout` (see [`with_call_timeout`](Self::with_call_timeout)).
    /// The pool's acquire timeout, and so the wait for the first connection,
    /// is capped at `call_timeout`.
    ///
    /// ```no_run
    /// # async fn demo() -> session_core::Result<()> {
    /// use std::time::Duration;
    /// use session_sqlx::{Pooler, PostgresStore};
    /// use sqlx::postgres::PgPoolOptions;
    ///
    /// let options = "postgres://app@db/app".parse().expect("a URL");
    /// let pool = PgPoolOptions::new().max_connections(4);
    /// let store =
    ///     PostgresStore::connect_with_pool(options, Pooler::Session, pool, Duration::from_secs(2))
    ///         .await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_with_pool(
        options: PgConnectOptions,
        pooler: Pooler,
        pool: PgPoolOptions,
        call_timeout: Duration,
    ) -> Result<Self> {
        let acquire = pool.get_acquire_timeout().min(call_timeout);
        let pool = pool
            .acquire_timeout(acquire)
            .connect_with(pooler.connect_options(options))
            .await
            .map_err(db_err)?;
        Ok(Self::new(pool)
            .with_pooler(pooler)
            .with_call_timeout(call_timeout))
    }

    /// Runs every statement as `pooler` allows (default
    /// [`Pooler::Session`]). The pool's connections must have been opened
    /// with [`Pooler::connect_options`] for a transaction-mode pooler, which
    /// refuses sqlx's default `extra_float_digits` startup parameter.
    pub fn with_pooler(mut self, pooler: Pooler) -> Self {
        self.pooler = pooler;
        self
    }

    /// The [`Pooler`] this store runs its statements for.
    pub fn pooler(&self) -> Pooler {
        self.pooler
    }

    /// Bounds every call of this store (and its clones made afterwards) to
    /// `timeout` (default 5 s): a call that gets no answer in time returns a
    /// transient [`Error::Backend`] whose source says "no answer within
    /// 5s", whatever the server or a pooler does. The timer runs on the
    /// client, so it works through any pooler. Give the pool an acquire
    /// timeout no longer than this (the store's own constructors use the
    /// default call timeout); a longer one is cut short by the call timeout.
    ///
    /// The same bound decides when PostgreSQL counts as unreachable: after a
    /// connection-level error, a timeout, or a call slower than 50 ms, one
    /// background task connects and runs `SELECT 1`. If that gets no answer,
    /// every call fails at once with a transient error ("PostgreSQL
    /// unreachable since …; retrying in the background") without touching
    /// the pool, the calls waiting are woken with it, and the task tries
    /// again every 100 ms until the server answers. Query-level errors and a
    /// slow statement on a server that answers change nothing.
    ///
    /// ```no_run
    /// # async fn demo() -> session_core::Result<()> {
    /// use std::time::Duration;
    /// use session_sqlx::PostgresStore;
    ///
    /// let store = PostgresStore::connect("postgres://app@db/app")
    ///     .await?
    ///     .with_call_timeout(Duration::from_secs(2));
    /// assert_eq!(store.call_timeout(), Duration::from_secs(2));
    /// # Ok(()) }
    /// ```
    pub fn with_call_timeout(mut self, timeout: Duration) -> Self {
        self.guard.call_timeout = timeout;
        self
    }

    /// How long one call may take (see
    /// [`with_call_timeout`](Self::with_call_timeout)).
    pub fn call_timeout(&self) -> Duration {
        self.guard.call_timeout
    }

    /// Whether the store currently holds PostgreSQL for unreachable and
    /// fails calls at once (see [`with_call_timeout`](Self::with_call_timeout)).
    pub fn is_unreachable(&self) -> bool {
        self.guard.is_down()
    }

    fn exec(&self) -> Exec<'_> {
        Exec {
            pool: &self.pool,
            pooler: self.pooler,
            guard: &self.guard,
        }
    }

    /// Runs one call of this store within its bound.
    pub(crate) async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        self.guard.run(&self.pool, call).await
    }

    /// Connects a pool to `url` (5 s to acquire a connection, then a transient
    /// error) and uses `public.sessions`.
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .acquire_timeout(DEFAULT_CALL_TIMEOUT)
            .connect(url)
            .await
            .map_err(db_err)?;
        Ok(Self::new(pool))
    }

    /// Uses schema `schema`. [`Error::InvalidInput`] unless it is a plain
    /// identifier (ASCII letters, digits, `_`; 1 to 63 characters).
    pub fn with_schema(mut self, schema: &str) -> Result<Self> {
        self.schema = Ident::new("schema", schema)?;
        self.sql = Arc::new(Queries::new(&self.schema, &self.table));
        Ok(self)
    }

    /// Uses table `table` (and `table_migrations` beside it). Same rules as
    /// for schemas, at most 48 characters so that derived index names fit.
    pub fn with_table(mut self, table: &str) -> Result<Self> {
        if table.len() > 48 {
            return Err(Error::InvalidInput(format!(
                "table name {table:?} is longer than 48 characters"
            )));
        }
        self.table = Ident::new("table", table)?;
        self.sql = Arc::new(Queries::new(&self.schema, &self.table));
        Ok(self)
    }

    /// How many rows one `purge_expired` statement deletes at most (default
    /// 1,000); it repeats until fewer remain.
    pub fn with_purge_batch(mut self, batch: u32) -> Self {
        self.purge_batch = i64::from(batch.max(1));
        self
    }

    /// The pool underneath.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The quoted `schema.table` this store uses.
    pub fn table_name(&self) -> String {
        format!("{}.{}", self.schema.quoted(), self.table.quoted())
    }

    /// The query plans PostgreSQL chooses for `load`, `update`,
    /// `list_user` and `purge_expired`, as `(operation, EXPLAIN text)`. For
    /// checking that a deployment uses the indexes.
    pub async fn query_plans(&self) -> Result<Vec<(&'static str, String)>> {
        self.bounded(self.explain_all()).await
    }

    async fn explain_all(&self) -> Result<Vec<(&'static str, String)>> {
        let key = [0u8; 32];
        let mut out = Vec::new();
        for (name, sql) in [
            ("load", &self.sql.load),
            ("update", &self.sql.update),
            ("list_user", &self.sql.list_user),
            ("purge_expired", &self.sql.purge),
        ] {
            let params = match name {
                "load" => vec![Param::Bytes(Some(&key))],
                "list_user" => vec![Param::Text(Some("u7"))],
                "update" => vec![
                    Param::Bytes(Some(&key)),
                    Param::Uuid(uuid::Uuid::nil()),
                    Param::Text(None),
                    Param::Int(0),
                    Param::Int(0),
                    Param::Int(2),
                    Param::Bytes(Some(&[])),
                    Param::Int(1),
                ],
                _ => vec![Param::Int(self.purge_batch)],
            };
            let rows = self
                .exec()
                .fetch_all(&Arc::from(format!("EXPLAIN {sql}")), &params)
                .await
                .map_err(db_err)?;
            let lines = rows
                .iter()
                .map(|row| row.try_get::<String, _>(0).map_err(db_err))
                .collect::<Result<Vec<_>>>()?;
            out.push((name, lines.join("\n")));
        }
        Ok(out)
    }

    async fn try_rotate(&self, old_key: &SessionKey, record: &Record, expected: i64) -> Result<()> {
        // `$1` is the old key here; the new one goes in `$9`.
        let mut params = record_params(record, &[Param::Int(expected), key_param(&record.key)])?;
        params[0] = key_param(old_key);
        let row = match self.exec().fetch_one(&self.sql.rotate, &params).await {
            Ok(row) => row,
            Err(e) if is_unique_violation(&e) => return Err(Error::AlreadyExists),
            Err(e) => return Err(db_err(e)),
        };
        let rotated: bool = row.try_get(0).map_err(db_err)?;
        let current: Option<i64> = row.try_get(1).map_err(db_err)?;
        let id: Option<uuid::Uuid> = row.try_get(2).map_err(db_err)?;
        match (rotated, current, id) {
            (true, ..) => Ok(()),
            (false, None, _) => Err(Error::NotFound),
            (false, Some(v), _) if v != expected => Err(Error::Conflict),
            (false, Some(_), Some(id)) if id != *record.id.as_uuid() => Err(Error::InvalidInput(
                "rotate must keep the session id of the old record".into(),
            )),
            // The row changed after the statement's snapshot was taken.
            (false, Some(_), _) => self.failed_write(old_key).await,
        }
    }

    /// Removes the row under `key` if it has expired; whether it did.
    async fn drop_expired(&self, key: &SessionKey) -> Result<bool> {
        let dropped = self
            .exec()
            .execute(&self.sql.drop_expired_at, &[key_param(key)])
            .await
            .map_err(db_err)?;
        Ok(dropped > 0)
    }

    /// Why a compare-and-set matched no row: a fresh read of the live
    /// version tells a conflict (another version is live) from a session
    /// that is gone.
    async fn failed_write(&self, key: &SessionKey) -> Result<()> {
        let current = self
            .exec()
            .fetch_optional(&self.sql.live_version, &[key_param(key)])
            .await
            .map_err(db_err)?;
        Err(match current {
            Some(_) => Error::Conflict,
            None => Error::NotFound,
        })
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn create(&self, record: &Record) -> Result<()> {
        self.bounded(async {
            record.check_create()?;
            let params = record_params(record, &[])?;
            // A plain INSERT is the cheapest write there is; the key is taken
            // only by a collision (never, with random tokens) or by a test that
            // reuses an expired key, which is handled below.
            for _ in 0..2 {
                match self.exec().execute(&self.sql.create, &params).await {
                    Ok(_) => return Ok(()),
                    Err(e) if is_unique_violation(&e) => {
                        if !self.drop_expired(&record.key).await? {
                            return Err(Error::AlreadyExists);
                        }
                    }
                    Err(e) => return Err(db_err(e)),
                }
            }
            Err(Error::AlreadyExists)
        })
        .await
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        self.bounded(async {
            let row = self
                .exec()
                .fetch_optional(&self.sql.load, &[key_param(key)])
                .await
                .map_err(db_err)?;
            row.as_ref().map(record_from).transpose()
        })
        .await
    }

    async fn update(&self, record: &Record, expected_version: u64) -> Result<()> {
        self.bounded(async {
            record.check_update(expected_version)?;
            let params = record_params(record, &[Param::Int(version_param(expected_version)?)])?;
            let done = self
                .exec()
                .execute(&self.sql.update, &params)
                .await
                .map_err(db_err)?;
            match done {
                0 => self.failed_write(&record.key).await,
                _ => Ok(()),
            }
        })
        .await
    }

    async fn touch(&self, key: &SessionKey, expires_at: Timestamp) -> Result<()> {
        self.bounded(async {
            let done = self
                .exec()
                .execute(
                    &self.sql.touch,
                    &[key_param(key), Param::Int(expires_at.as_millis())],
                )
                .await
                .map_err(db_err)?;
            match done {
                0 => Err(Error::NotFound),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn rotate(
        &self,
        old_key: &SessionKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<()> {
        self.bounded(async {
            record.check_rotate(old_key, expected_version)?;
            let expected = version_param(expected_version)?;
            match self.try_rotate(old_key, record, expected).await {
                Err(Error::AlreadyExists) => {
                    // The new key is taken. An expired row there does not count:
                    // remove it and try once more; a live one is a real clash.
                    if !self.drop_expired(&record.key).await? {
                        return Err(Error::AlreadyExists);
                    }
                    self.try_rotate(old_key, record, expected).await
                }
                other => other,
            }
        })
        .await
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool> {
        self.bounded(async {
            let row = self
                .exec()
                .fetch_optional(&self.sql.delete, &[key_param(key)])
                .await
                .map_err(db_err)?;
            match row {
                Some(row) => row.try_get::<bool, _>(0).map_err(db_err),
                None => Ok(false),
            }
        })
        .await
    }

    async fn list_user(&self, user: &str) -> Result<Vec<Record>> {
        self.bounded(async {
            if check_user_name(user).is_err() {
                // No record can hold such a name (and PostgreSQL text cannot
                // carry a NUL to compare with).
                return Ok(Vec::new());
            }
            let rows = self
                .exec()
                .fetch_all(&self.sql.list_user, &[Param::Text(Some(user))])
                .await
                .map_err(db_err)?;
            rows.iter().map(record_from).collect()
        })
        .await
    }

    async fn delete_user(&self, user: &str, keep: Option<&SessionKey>) -> Result<u64> {
        self.bounded(async {
            if check_user_name(user).is_err() {
                return Ok(0);
            }
            let keep = Param::Bytes(keep.map(|k| k.as_bytes().as_slice()));
            self.exec()
                .execute(&self.sql.delete_user, &[Param::Text(Some(user)), keep])
                .await
                .map_err(db_err)
        })
        .await
    }

    async fn delete_id(&self, user: &str, id: SessionId) -> Result<bool> {
        self.bounded(async {
            if check_user_name(user).is_err() {
                return Ok(false);
            }
            let done = self
                .exec()
                .execute(
                    &self.sql.delete_id,
                    &[Param::Text(Some(user)), Param::Uuid(*id.as_uuid())],
                )
                .await
                .map_err(db_err)?;
            Ok(done > 0)
        })
        .await
    }

    async fn purge_expired(&self) -> Result<u64> {
        self.bounded(async {
            let mut total = 0;
            loop {
                let row = self
                    .exec()
                    .fetch_one(&self.sql.purge, &[Param::Int(self.purge_batch)])
                    .await
                    .map_err(db_err)?;
                let due: i64 = row.try_get(0).map_err(db_err)?;
                let gone: i64 = row.try_get(1).map_err(db_err)?;
                total += u64::try_from(gone).unwrap_or(0);
                if due < self.purge_batch {
                    return Ok(total);
                }
            }
        })
        .await
    }
}
