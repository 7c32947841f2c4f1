//! [`PostgresStore::migrate`] and [`PostgresStore::check_schema`]: bringing
//! the table up to date as its owner, and checking it as an application role
//! that may not create anything.

use std::fmt;

use session_core::{Error, Result};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Row};

use crate::error::{db_err, BACKEND};
use crate::exec::{inline, Param};
use crate::store::PostgresStore;

/// The comment [`PostgresStore::migrate`] puts on the table, followed by the
/// migration it is at. The system catalog is readable by every role, so an
/// application role with rights on the table alone can check it.
const COMMENT_PREFIX: &str = "session-sqlx schema ";

/// Where the table stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    /// No such table.
    Missing,
    /// At this migration, by the table's comment.
    At(i32),
    /// At this migration by the migrations table, but without the comment
    /// (migrated by an older release): `migrate` adds it.
    Unmarked(i32),
    /// The table exists, but neither its comment nor a readable migrations
    /// table says which migration it is at.
    Unknown,
}

/// The table is not at the migration this version of the store needs; says
/// what to run.
#[derive(Debug)]
pub(crate) struct SchemaError {
    table: String,
    found: Found,
    needed: i32,
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            table,
            found,
            needed,
        } = self;
        match found {
            Found::Missing => write!(f, "there is no sessions table {table}")?,
            Found::At(v) | Found::Unmarked(v) => write!(
                f,
                "the sessions table {table} is at migration {v}, this version needs {needed}"
            )?,
            Found::Unknown => write!(
                f,
                "the sessions table {table} carries no migration mark this role can read \
                 (this version needs migration {needed})"
            )?,
        }
        if matches!(found, Found::At(v) | Found::Unmarked(v) if v > needed) {
            f.write_str(": the table is newer than this version of session-sqlx; upgrade it")
        } else {
            f.write_str(": run `sessionctl migrate URL` as the table's owner")
        }
    }
}

impl std::error::Error for SchemaError {}

/// Runs one simple-protocol statement (values inlined as literals) on `conn`:
/// works directly and through any pooler.
async fn simple_one(
    conn: &mut PgConnection,
    sql: &str,
    params: &[Param<'_>],
) -> Result<sqlx::postgres::PgRow> {
    sqlx::raw_sql(AssertSqlSafe(inline(sql, params)))
        .fetch_one(conn)
        .await
        .map_err(db_err)
}

async fn simple_run(conn: &mut PgConnection, sql: &str, params: &[Param<'_>]) -> Result<()> {
    sqlx::raw_sql(AssertSqlSafe(inline(sql, params)))
        .execute(conn)
        .await
        .map(drop)
        .map_err(db_err)
}

fn get<'r, T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>>(
    row: &'r sqlx::postgres::PgRow,
    i: usize,
) -> Result<T> {
    row.try_get(i).map_err(db_err)
}

impl PostgresStore {
    /// The migration this version of the store needs the table at.
    pub const SCHEMA_VERSION: i32 = 3;

    fn migrations_name(&self) -> String {
        format!(
            "{}.\"{}_migrations\"",
            self.schema.quoted(),
            self.table.as_str()
        )
    }

    /// Where the table stands, from the catalog (readable by every role)
    /// and, for tables migrated before the catalog mark, the migrations
    /// table if this role may read it.
    async fn found(&self, conn: &mut PgConnection) -> Result<Found> {
        let table = self.table_name();
        let migrations = self.migrations_name();
        let row = simple_one(
            conn,
            "SELECT to_regclass($1) IS NOT NULL, obj_description(to_regclass($1), 'pg_class'),
                coalesce(has_table_privilege(to_regclass($2), 'SELECT'), false)",
            &[Param::Text(Some(&table)), Param::Text(Some(&migrations))],
        )
        .await?;
        let exists: bool = get(&row, 0)?;
        let comment: Option<String> = get(&row, 1)?;
        let readable: bool = get(&row, 2)?;
        if !exists {
            return Ok(Found::Missing);
        }
        if let Some(v) = comment
            .as_deref()
            .and_then(|c| c.strip_prefix(COMMENT_PREFIX))
            .and_then(|v| v.parse().ok())
        {
            return Ok(Found::At(v));
        }
        if !readable {
            return Ok(Found::Unknown);
        }
        let row = simple_one(conn, &format!("SELECT max(version) FROM {migrations}"), &[]).await?;
        Ok(get::<Option<i32>>(&row, 0)?.map_or(Found::Unknown, Found::Unmarked))
    }

    /// Checks that the table exists and is at [`SCHEMA_VERSION`](Self::SCHEMA_VERSION),
    /// changing nothing, so an application role with only `SELECT`, `INSERT`,
    /// `UPDATE` and `DELETE` on the table (and `USAGE` on its schema) can
    /// start without [`migrate`](Self::migrate).
    ///
    /// Otherwise a permanent backend error whose source says what to run,
    /// e.g. "the sessions table "public"."sessions" is at migration 2, this
    /// version needs 3: run `sessionctl migrate URL` as the table's owner".
    ///
    /// ```no_run
    /// # async fn demo() -> session_core::Result<()> {
    /// let store = session_sqlx::PostgresStore::connect("postgres://app@db/app").await?;
    /// store.check_schema().await?;
    /// # Ok(()) }
    /// ```
    pub async fn check_schema(&self) -> Result<()> {
        self.bounded(async {
            let mut conn = self.pool.acquire().await.map_err(db_err)?;
            match self.found(&mut conn).await? {
                Found::At(v) | Found::Unmarked(v) if v == Self::SCHEMA_VERSION => Ok(()),
                found => Err(self.schema_error(found)),
            }
        })
        .await
    }

    fn schema_error(&self, found: Found) -> Error {
        Error::backend(
            BACKEND,
            SchemaError {
                table: self.table_name(),
                found,
                needed: Self::SCHEMA_VERSION,
            },
        )
    }

    /// Creates the schema, table and indexes, or brings them up to date.
    ///
    /// Versioned and idempotent: applied steps are recorded in
    /// `table_migrations`, and the table's comment records the migration it
    /// is at. Runs in one transaction under a PostgreSQL advisory lock on the
    /// schema name, so processes migrating at once wait for each other
    /// instead of failing.
    ///
    /// On a table that is already up to date it changes nothing and needs no
    /// right beyond `USAGE` on the schema: no `CREATE SCHEMA` (the schema is
    /// looked up in `pg_namespace` first) and no other DDL. So an
    /// application role that may not create anything can call it too; the
    /// owner runs it (or `sessionctl migrate URL`) once per upgrade. Every
    /// statement is a simple-protocol message inside the transaction, so it
    /// works through a transaction-mode pooler as well.
    pub async fn migrate(&self) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // `IF NOT EXISTS` makes the server send "already exists, skipping"
        // notices, which sqlx logs at INFO: not news. Scoped to this
        // transaction; warnings and errors still come through.
        simple_run(&mut tx, "SET LOCAL client_min_messages = warning", &[]).await?;
        let lock = format!("session-sqlx:{}", self.schema.as_str());
        simple_one(
            &mut tx,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[Param::Text(Some(&lock))],
        )
        .await?;
        let found = self.found(&mut tx).await?;
        match found {
            Found::At(v) if v == Self::SCHEMA_VERSION => return tx.commit().await.map_err(db_err),
            Found::At(v) | Found::Unmarked(v) if v > Self::SCHEMA_VERSION => {
                return Err(self.schema_error(found))
            }
            _ => {}
        }
        let schema_exists: bool = get(
            &simple_one(
                &mut tx,
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                &[Param::Text(Some(self.schema.as_str()))],
            )
            .await?,
            0,
        )?;
        if !schema_exists {
            simple_run(&mut tx, &self.sql.create_schema, &[]).await?;
        }
        simple_run(&mut tx, &self.sql.migrations_table, &[]).await?;
        let migrations = self.migrations_name();
        let applied: Vec<i32> =
            sqlx::raw_sql(AssertSqlSafe(format!("SELECT version FROM {migrations}")))
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?
                .iter()
                .map(|row| get(row, 0))
                .collect::<Result<_>>()?;
        for (version, script) in &self.sql.migrations {
            if applied.contains(version) {
                continue;
            }
            simple_run(&mut tx, script, &[]).await?;
            simple_run(
                &mut tx,
                &format!("INSERT INTO {migrations} (version) VALUES ($1)"),
                &[Param::Int(i64::from(*version))],
            )
            .await?;
        }
        simple_run(
            &mut tx,
            &format!(
                "COMMENT ON TABLE {} IS '{COMMENT_PREFIX}{}'",
                self.table_name(),
                Self::SCHEMA_VERSION
            ),
            &[],
        )
        .await?;
        tx.commit().await.map_err(db_err)
    }
}
