//! Every statement the store runs, built once per schema and table.
//!
//! Timestamps cross the wire as whole milliseconds (`int8`) and are converted
//! in SQL: `to_timestamp(ms / 1000.0)` in, `extract(epoch …) * 1000` out. Both
//! are exact for millisecond values (PostgreSQL keeps microseconds and rounds
//! to them).

use std::sync::Arc;

use crate::names::Ident;

fn ts(param: &str) -> String {
    format!("to_timestamp({param}::float8 / 1000)")
}

const COLUMNS: &str = r#"key, id, "user",
    (extract(epoch FROM created_at) * 1000)::int8 AS created_ms,
    (extract(epoch FROM expires_at) * 1000)::int8 AS expires_ms,
    version, data"#;

/// The statements, with names validated and quoted.
#[derive(Debug)]
pub(crate) struct Queries {
    pub migrations_table: Arc<str>,
    pub migrations: Vec<(i32, Arc<str>)>,
    pub create_schema: Arc<str>,
    pub create: Arc<str>,
    pub load: Arc<str>,
    pub update: Arc<str>,
    pub touch: Arc<str>,
    pub rotate: Arc<str>,
    pub drop_expired_at: Arc<str>,
    pub live_version: Arc<str>,
    pub delete: Arc<str>,
    pub list_user: Arc<str>,
    pub delete_user: Arc<str>,
    pub delete_id: Arc<str>,
    pub purge: Arc<str>,
}

impl Queries {
    pub(crate) fn new(schema: &Ident, table: &Ident) -> Self {
        let t = format!("{}.{}", schema.quoted(), table.quoted());
        let derived = |suffix: &str| format!("\"{}_{suffix}\"", table.as_str());
        let s = |x: String| Arc::<str>::from(x);
        let (created, expires) = (ts("$4"), ts("$5"));
        Self {
            migrations_table: s(format!(
                "CREATE TABLE IF NOT EXISTS {}.{} (
                    version int4 PRIMARY KEY,
                    applied_at timestamptz NOT NULL DEFAULT now())",
                schema.quoted(),
                derived("migrations")
            )),
            migrations: vec![
                (
                    1,
                    s(format!(
                        r#"CREATE TABLE IF NOT EXISTS {t} (
                        key bytea PRIMARY KEY CHECK (octet_length(key) = 32),
                        id uuid NOT NULL,
                        "user" text,
                        created_at timestamptz NOT NULL,
                        expires_at timestamptz NOT NULL,
                        version int8 NOT NULL,
                        data bytea NOT NULL);
                    CREATE INDEX IF NOT EXISTS {user_idx} ON {t} ("user");
                    CREATE INDEX IF NOT EXISTS {expires_idx} ON {t} (expires_at);"#,
                        user_idx = derived("user_idx"),
                        expires_idx = derived("expires_idx"),
                    )),
                ),
                // Anonymous sessions (no user) need no user-index entry: a partial
                // index saves one index write per anonymous create and update.
                (
                    2,
                    s(format!(
                        r#"DROP INDEX IF EXISTS {schema}.{user_idx};
                    CREATE INDEX {user_idx} ON {t} ("user") WHERE "user" IS NOT NULL;"#,
                        schema = schema.quoted(),
                        user_idx = derived("user_idx"),
                    )),
                ),
                // Purging goes by `purge_at`, a time at or before the deadline
                // that writes only ever lower: a request that extends the
                // deadline then changes no indexed column, so PostgreSQL can
                // update the row in place (HOT) instead of adding an entry to
                // every index; purge files extended rows again when they come
                // due. The spare page space (fillfactor) is what HOT updates use.
                (
                    3,
                    s(format!(
                        r#"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS purge_at timestamptz;
                    UPDATE {t} SET purge_at = expires_at WHERE purge_at IS NULL;
                    ALTER TABLE {t} ALTER COLUMN purge_at SET NOT NULL;
                    CREATE INDEX IF NOT EXISTS {purge_idx} ON {t} (purge_at);
                    DROP INDEX IF EXISTS {schema}.{expires_idx};
                    ALTER TABLE {t} SET (fillfactor = 90);"#,
                        schema = schema.quoted(),
                        purge_idx = derived("purge_idx"),
                        expires_idx = derived("expires_idx"),
                    )),
                ),
            ],
            create_schema: s(format!("CREATE SCHEMA IF NOT EXISTS {}", schema.quoted())),
            create: s(format!(
                r#"INSERT INTO {t} (key, id, "user", created_at, expires_at, purge_at, version, data)
                VALUES ($1, $2, $3, {created}, {expires}, {expires}, $6, $7)"#
            )),
            load: s(format!(
                "SELECT {COLUMNS} FROM {t} WHERE key = $1 AND expires_at > now()"
            )),
            update: s(format!(
                r#"UPDATE {t} SET id = $2, "user" = $3, created_at = {created},
                    expires_at = {expires}, purge_at = LEAST(purge_at, {expires}),
                    version = $6, data = $7
                WHERE key = $1 AND version = $8 AND expires_at > now()"#
            )),
            // A touch never moves a deadline earlier, so `purge_at` (at or
            // before the old deadline) needs no change.
            touch: s(format!(
                "UPDATE {t} SET expires_at = GREATEST(expires_at, {to})
                WHERE key = $1 AND expires_at > now()",
                to = ts("$2")
            )),
            rotate: s(format!(
                r#"WITH upd AS (
                    UPDATE {t} SET key = $9, "user" = $3, created_at = {created},
                        expires_at = {expires}, purge_at = {expires}, version = $6, data = $7
                    WHERE key = $1 AND version = $8 AND id = $2 AND expires_at > now()
                    RETURNING 1)
                SELECT EXISTS (SELECT 1 FROM upd), cur.version, cur.id
                FROM (SELECT 1) AS one
                LEFT JOIN {t} AS cur ON cur.key = $1 AND cur.expires_at > now()"#
            )),
            live_version: s(format!(
                "SELECT version FROM {t} WHERE key = $1 AND expires_at > now()"
            )),
            drop_expired_at: s(format!(
                "DELETE FROM {t} WHERE key = $1 AND expires_at <= now()"
            )),
            delete: s(format!(
                "DELETE FROM {t} WHERE key = $1 RETURNING expires_at > now()"
            )),
            list_user: s(format!(
                r#"SELECT {COLUMNS} FROM {t} WHERE "user" = $1 AND expires_at > now()"#
            )),
            delete_user: s(format!(
                r#"DELETE FROM {t}
                WHERE "user" = $1 AND expires_at > now() AND key IS DISTINCT FROM $2"#
            )),
            // The row lock makes this wait for a rotation of the same row
            // and then re-check the rotated row: its id and user are kept,
            // so it is deleted under its new key.
            delete_id: s(format!(
                r#"DELETE FROM {t} WHERE "user" = $1 AND id = $2 AND expires_at > now()"#
            )),
            // One batch of due rows, off the purge_at index and locked: the
            // expired ones are deleted, the extended ones filed at their
            // deadline. `= ANY(ARRAY(…))` makes both writes primary-key
            // lookups, so the table is never scanned whatever its size.
            // Returns (rows due in this batch, rows deleted).
            purge: s(format!(
                "WITH due AS (
                    SELECT key, expires_at <= now() AS expired FROM {t}
                    WHERE purge_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED),
                gone AS (
                    DELETE FROM {t} WHERE key = ANY(ARRAY(SELECT key FROM due WHERE expired))
                    RETURNING 1),
                moved AS (
                    UPDATE {t} SET purge_at = expires_at
                    WHERE key = ANY(ARRAY(SELECT key FROM due WHERE NOT expired))
                    RETURNING 1)
                SELECT (SELECT count(*) FROM due), (SELECT count(*) FROM gone)"
            )),
        }
    }
}
