//! [`PostgresStore`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use session_core::{
    check_user_name, Error, Record, Result, SessionId, SessionKey, SessionStore, Timestamp,
};
use sqlx::postgres::{PgArguments, PgPool, PgPoolOptions, PgRow};
use sqlx::Postgres;
use sqlx::{AssertSqlSafe, Row};

use crate::error::{db_err, is_unique_violation};
use crate::names::Ident;
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
/// to run from several processes at once.
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
    pool: PgPool,
    schema: Ident,
    table: Ident,
    sql: Arc<Queries>,
    purge_batch: i64,
}

/// Shows where the sessions live, never how to connect: the pool's connect
/// options hold the database password.
impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema.as_str())
            .field("table", &self.table.as_str())
            .field("purge_batch", &self.purge_batch)
            .finish_non_exhaustive()
    }
}

fn q(sql: &Arc<str>) -> AssertSqlSafe<Arc<str>> {
    // Only validated, quoted identifiers are interpolated (see `names`); every
    // value is a bind parameter.
    AssertSqlSafe(sql.clone())
}

fn version_param(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::InvalidInput(format!("version {v} exceeds int8")))
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// Binds `$1`..`$7` of the record statements: key, id, user, created ms,
/// expires ms, version, data.
fn bind_record<'q>(query: PgQuery<'q>, r: &'q Record) -> Result<PgQuery<'q>> {
    Ok(query
        .bind(r.key.as_bytes().as_slice())
        .bind(r.id.as_uuid())
        .bind(r.user.as_deref())
        .bind(r.created_at.as_millis())
        .bind(r.expires_at.as_millis())
        .bind(version_param(r.version)?)
        .bind(r.data.as_slice()))
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
        }
    }

    /// Connects a pool to `url` (5 s to acquire a connection, then a transient
    /// error) and uses `public.sessions`.
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .acquire_timeout(Duration::from_secs(5))
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

    /// Creates the schema, table and indexes, or brings them up to date.
    ///
    /// Versioned and idempotent: applied steps are recorded in
    /// `table_migrations`. Runs in one transaction under a PostgreSQL advisory
    /// lock on the schema name, so processes migrating at once wait for each
    /// other instead of failing.
    pub async fn migrate(&self) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // `IF NOT EXISTS` on every start makes the server send "already
        // exists, skipping" notices, which sqlx logs at INFO: not news.
        // Scoped to this transaction; warnings and errors still come through.
        sqlx::query("SET LOCAL client_min_messages = warning")
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("session-sqlx:{}", self.schema.as_str()))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        for stmt in [&self.sql.create_schema, &self.sql.migrations_table] {
            sqlx::query(q(stmt))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        let applied_sql = format!(
            "SELECT version FROM {}.\"{}_migrations\"",
            self.schema.quoted(),
            self.table.as_str()
        );
        let applied: Vec<i32> = sqlx::query_scalar(AssertSqlSafe(applied_sql.clone()))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        for (version, script) in &self.sql.migrations {
            if applied.contains(version) {
                continue;
            }
            sqlx::raw_sql(q(script))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            let record = format!(
                "INSERT INTO {}.\"{}_migrations\" (version) VALUES ($1)",
                self.schema.quoted(),
                self.table.as_str()
            );
            sqlx::query(AssertSqlSafe(record))
                .bind(version)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    /// The query plans PostgreSQL chooses for `load`, `update`,
    /// `list_user` and `purge_expired`, as `(operation, EXPLAIN text)`. For
    /// checking that a deployment uses the indexes.
    pub async fn query_plans(&self) -> Result<Vec<(&'static str, String)>> {
        let key = vec![0u8; 32];
        let mut out = Vec::new();
        for (name, sql) in [
            ("load", &self.sql.load),
            ("update", &self.sql.update),
            ("list_user", &self.sql.list_user),
            ("purge_expired", &self.sql.purge),
        ] {
            let explain = AssertSqlSafe(format!("EXPLAIN {sql}"));
            let query = sqlx::query_scalar::<_, String>(explain);
            let query = match name {
                "load" => query.bind(key.clone()),
                "list_user" => query.bind("u7"),
                "update" => query
                    .bind(key.clone())
                    .bind(uuid::Uuid::nil())
                    .bind(None::<String>)
                    .bind(0_i64)
                    .bind(0_i64)
                    .bind(2_i64)
                    .bind(Vec::<u8>::new())
                    .bind(1_i64),
                _ => query.bind(self.purge_batch),
            };
            let lines = query.fetch_all(&self.pool).await.map_err(db_err)?;
            out.push((name, lines.join("\n")));
        }
        Ok(out)
    }

    async fn try_rotate(&self, old_key: &SessionKey, record: &Record, expected: i64) -> Result<()> {
        // `$1` is the old key here; the new one goes in `$9`.
        let row = sqlx::query(q(&self.sql.rotate))
            .bind(old_key.as_bytes().as_slice())
            .bind(record.id.as_uuid())
            .bind(record.user.as_deref())
            .bind(record.created_at.as_millis())
            .bind(record.expires_at.as_millis())
            .bind(version_param(record.version)?)
            .bind(record.data.as_slice())
            .bind(expected)
            .bind(record.key.as_bytes().as_slice())
            .fetch_one(&self.pool)
            .await;
        let row = match row {
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
        let dropped = sqlx::query(q(&self.sql.drop_expired_at))
            .bind(key.as_bytes().as_slice())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(dropped.rows_affected() > 0)
    }

    /// Why a compare-and-set matched no row: a fresh read of the live
    /// version tells a conflict (another version is live) from a session
    /// that is gone.
    async fn failed_write(&self, key: &SessionKey) -> Result<()> {
        let current: Option<i64> = sqlx::query_scalar(q(&self.sql.live_version))
            .bind(key.as_bytes().as_slice())
            .fetch_optional(&self.pool)
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
        record.check_create()?;
        // A plain INSERT is the cheapest write there is; the key is taken
        // only by a collision (never, with random tokens) or by a test that
        // reuses an expired key, which is handled below.
        for _ in 0..2 {
            let inserted = bind_record(sqlx::query(q(&self.sql.create)), record)?
                .execute(&self.pool)
                .await;
            match inserted {
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
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        let row = sqlx::query(q(&self.sql.load))
            .bind(key.as_bytes().as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(record_from).transpose()
    }

    async fn update(&self, record: &Record, expected_version: u64) -> Result<()> {
        record.check_update(expected_version)?;
        let done = bind_record(sqlx::query(q(&self.sql.update)), record)?
            .bind(version_param(expected_version)?)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        match done.rows_affected() {
            0 => self.failed_write(&record.key).await,
            _ => Ok(()),
        }
    }

    async fn touch(&self, key: &SessionKey, expires_at: Timestamp) -> Result<()> {
        let done = sqlx::query(q(&self.sql.touch))
            .bind(key.as_bytes().as_slice())
            .bind(expires_at.as_millis())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        match done.rows_affected() {
            0 => Err(Error::NotFound),
            _ => Ok(()),
        }
    }

    async fn rotate(
        &self,
        old_key: &SessionKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<()> {
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
    }

    async fn delete(&self, key: &SessionKey) -> Result<bool> {
        let live: Option<bool> = sqlx::query_scalar(q(&self.sql.delete))
            .bind(key.as_bytes().as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(live.unwrap_or(false))
    }

    async fn list_user(&self, user: &str) -> Result<Vec<Record>> {
        if check_user_name(user).is_err() {
            // No record can hold such a name (and PostgreSQL text cannot
            // carry a NUL to compare with).
            return Ok(Vec::new());
        }
        let rows = sqlx::query(q(&self.sql.list_user))
            .bind(user)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(record_from).collect()
    }

    async fn delete_user(&self, user: &str, keep: Option<&SessionKey>) -> Result<u64> {
        if check_user_name(user).is_err() {
            return Ok(0);
        }
        let done = sqlx::query(q(&self.sql.delete_user))
            .bind(user)
            .bind(keep.map(|k| k.as_bytes().as_slice()))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }

    async fn delete_id(&self, user: &str, id: SessionId) -> Result<bool> {
        if check_user_name(user).is_err() {
            return Ok(false);
        }
        let done = sqlx::query(q(&self.sql.delete_id))
            .bind(user)
            .bind(id.as_uuid())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn purge_expired(&self) -> Result<u64> {
        let mut total = 0;
        loop {
            let (due, gone): (i64, i64) = sqlx::query_as(q(&self.sql.purge))
                .bind(self.purge_batch)
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)?;
            total += u64::try_from(gone).unwrap_or(0);
            if due < self.purge_batch {
                return Ok(total);
            }
        }
    }
}
