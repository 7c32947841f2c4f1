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
            ],
            create_schema: s(format!("CREATE SCHEMA IF NOT EXISTS {}", schema.quoted())),
            create: s(format!(
                r#"INSERT INTO {t} AS s (key, id, "user", created_at, expires_at, version, data)
                VALUES ($1, $2, $3, {created}, {expires}, $6, $7)
                ON CONFLICT (key) DO UPDATE SET
                    id = EXCLUDED.id, "user" = EXCLUDED."user",
                    created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at,
                    version = EXCLUDED.version, data = EXCLUDED.data
                WHERE s.expires_at <= now()"#
            )),
            load: s(format!(
                "SELECT {COLUMNS} FROM {t} WHERE key = $1 AND expires_at > now()"
            )),
            update: s(format!(
                r#"WITH upd AS (
                    UPDATE {t} SET id = $2, "user" = $3, created_at = {created},
                        expires_at = {expires}, version = $6, data = $7
                    WHERE key = $1 AND version = $8 AND expires_at > now()
                    RETURNING 1)
                SELECT EXISTS (SELECT 1 FROM upd),
                    (SELECT version FROM {t} WHERE key = $1 AND expires_at > now())"#
            )),
            touch: s(format!(
                "UPDATE {t} SET expires_at = {} WHERE key = $1 AND expires_at > now()",
                ts("$2")
            )),
            rotate: s(format!(
                r#"WITH upd AS (
                    UPDATE {t} SET key = $9, "user" = $3, created_at = {created},
                        expires_at = {expires}, version = $6, data = $7
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
            // `= ANY(ARRAY(…))` makes both halves index lookups: the batch
            // comes off the expires_at index, the delete goes by primary key,
            // and the table is never scanned whatever its size.
            purge: s(format!(
                "DELETE FROM {t} WHERE key = ANY(ARRAY(
                    SELECT key FROM {t} WHERE expires_at <= now()
                    LIMIT $1 FOR UPDATE SKIP LOCKED))"
            )),
        }
    }
}
