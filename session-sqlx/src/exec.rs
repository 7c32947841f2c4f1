//! Running one statement the way the [`Pooler`] allows: a cached prepared
//! statement with bound parameters, or one simple-protocol message with the
//! values written in as literals.

use std::sync::Arc;

use sqlx::postgres::{PgArguments, PgPool, PgRow};
use sqlx::{AssertSqlSafe, Postgres};

use crate::guard::Guard;
use crate::pooler::Pooler;

/// One statement parameter (`$n` is `params[n - 1]`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Param<'a> {
    /// `bytea`, or `NULL::bytea`.
    Bytes(Option<&'a [u8]>),
    /// `uuid`.
    Uuid(uuid::Uuid),
    /// `text`, or `NULL::text`.
    Text(Option<&'a str>),
    /// `int8`.
    Int(i64),
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

impl Param<'_> {
    /// The value as a SQL expression of its type. Only hex digits, decimal
    /// digits, a minus sign and a hyphenated uuid come from the value, so
    /// nothing in it can end the literal.
    fn literal(&self) -> String {
        match self {
            Self::Bytes(Some(b)) => format!("decode('{}', 'hex')", hex(b)),
            Self::Bytes(None) => "NULL::bytea".to_owned(),
            Self::Uuid(u) => format!("'{}'::uuid", u.hyphenated()),
            Self::Text(Some(s)) => {
                format!(
                    "convert_from(decode('{}', 'hex'), 'UTF8')",
                    hex(s.as_bytes())
                )
            }
            Self::Text(None) => "NULL::text".to_owned(),
            Self::Int(i) => format!("({i})::int8"),
        }
    }

    fn bind<'q>(self, query: PgQuery<'q>) -> PgQuery<'q>
    where
        Self: 'q,
    {
        match self {
            Self::Bytes(b) => query.bind(b),
            Self::Uuid(u) => query.bind(u),
            Self::Text(s) => query.bind(s),
            Self::Int(i) => query.bind(i),
        }
    }
}

/// `sql` with every `$n` replaced by the literal of `params[n - 1]`. The
/// store's statements hold no string literals or dollar quotes, so every
/// `$` followed by digits is a parameter.
pub(crate) fn inline(sql: &str, params: &[Param<'_>]) -> String {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let param = after[..digits]
            .parse::<usize>()
            .ok()
            .and_then(|n| params.get(n.checked_sub(1)?));
        match param {
            Some(p) => out.push_str(&p.literal()),
            None => panic!("statement parameter ${} has no value", &after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// Runs statements on `pool` as `pooler` allows, and shows every error to
/// the store's [`Guard`].
#[derive(Clone, Copy)]
pub(crate) struct Exec<'a> {
    pub pool: &'a PgPool,
    pub pooler: Pooler,
    pub guard: &'a Guard,
}

impl Exec<'_> {
    fn prepared<'q>(sql: &Arc<str>, params: &[Param<'q>]) -> PgQuery<'q> {
        // The statement's text is shared, not copied: this is every call's path.
        params
            .iter()
            .fold(sqlx::query(AssertSqlSafe(Arc::clone(sql))), |query, p| {
                p.bind(query)
            })
    }

    fn simple(sql: &str, params: &[Param<'_>]) -> sqlx::RawSql {
        // Values are hex-encoded literals (see `Param::literal`); names are
        // validated identifiers.
        sqlx::raw_sql(AssertSqlSafe(inline(sql, params)))
    }

    /// `result`, after showing its error to the guard.
    fn seen<T>(&self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        if let Err(e) = &result {
            self.guard.saw(self.pool, e);
        }
        result
    }

    /// Runs `sql`; the number of rows it affected.
    pub async fn execute(&self, sql: &Arc<str>, params: &[Param<'_>]) -> Result<u64, sqlx::Error> {
        let done = match self.pooler {
            Pooler::Transaction => Self::simple(sql, params).execute(self.pool).await,
            _ => Self::prepared(sql, params).execute(self.pool).await,
        };
        self.seen(done).map(|d| d.rows_affected())
    }

    /// Runs `sql`; its first row, if any.
    pub async fn fetch_optional(
        &self,
        sql: &Arc<str>,
        params: &[Param<'_>],
    ) -> Result<Option<PgRow>, sqlx::Error> {
        self.seen(match self.pooler {
            Pooler::Transaction => Self::simple(sql, params).fetch_optional(self.pool).await,
            _ => Self::prepared(sql, params).fetch_optional(self.pool).await,
        })
    }

    /// Runs `sql`; its one row.
    pub async fn fetch_one(
        &self,
        sql: &Arc<str>,
        params: &[Param<'_>],
    ) -> Result<PgRow, sqlx::Error> {
        self.fetch_optional(sql, params)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// Runs `sql`; all its rows.
    pub async fn fetch_all(
        &self,
        sql: &Arc<str>,
        params: &[Param<'_>],
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        self.seen(match self.pooler {
            Pooler::Transaction => Self::simple(sql, params).fetch_all(self.pool).await,
            _ => Self::prepared(sql, params).fetch_all(self.pool).await,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inlined_values_are_hex_or_digits_and_every_placeholder_is_replaced() {
        let id = uuid::Uuid::nil();
        let sql = inline(
            "SELECT $1, $2, $3, $4, $10, $5",
            &[
                Param::Bytes(Some(&[0, 0xff, b'\''])),
                Param::Uuid(id),
                Param::Text(Some("o'brien\\")),
                Param::Int(-7),
                Param::Bytes(None),
                Param::Text(None),
                Param::Int(0),
                Param::Int(0),
                Param::Int(0),
                Param::Int(42),
            ],
        );
        assert_eq!(
            sql,
            "SELECT decode('00ff27', 'hex'), '00000000-0000-0000-0000-000000000000'::uuid, \
             convert_from(decode('6f27627269656e5c', 'hex'), 'UTF8'), (-7)::int8, (42)::int8, NULL::bytea"
        );
    }
}
