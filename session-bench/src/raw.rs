//! The ceilings: the least a session store must do, with the raw clients.
//! Keys are 32 bytes like our token hashes; values are the same payload.

use std::sync::Arc;

use redis::AsyncCommands;
use session_core::SessionToken;
use sqlx::{AssertSqlSafe, PgPool};

use crate::measure::{run, Phase};
use crate::payload;

const TTL_SECS: u64 = 1800;

fn keys(n: usize) -> Vec<(usize, [u8; 32])> {
    (0..n)
        .map(|i| (i, *SessionToken::generate().key().as_bytes()))
        .collect()
}

fn repeat<T: Clone>(items: &[T], times: usize) -> Vec<T> {
    (0..times).flat_map(|_| items.iter().cloned()).collect()
}

/// sled `insert` / `get` / `insert` after `get` / `remove` on one tree.
pub async fn sled(sessions: usize, concurrency: usize) -> Vec<Phase> {
    let db = sled::Config::new()
        .temporary(true)
        .open()
        .expect("temporary sled");
    let tree = Arc::new(db.open_tree("raw").expect("tree"));
    let ks = keys(sessions);
    let only_keys: Vec<[u8; 32]> = ks.iter().map(|(_, k)| *k).collect();
    let mut out = Vec::new();
    let t = tree.clone();
    out.push(
        run("create", ks, concurrency, move |(i, k)| {
            let t = t.clone();
            async move {
                t.insert(k, payload::bytes(i)).expect("insert");
            }
        })
        .await,
    );
    let t = tree.clone();
    out.push(
        run("load", repeat(&only_keys, 5), concurrency, move |k| {
            let t = t.clone();
            async move {
                assert!(t.get(k).expect("get").is_some());
            }
        })
        .await,
    );
    let t = tree.clone();
    out.push(
        run("update", repeat(&only_keys, 2), concurrency, move |k| {
            let t = t.clone();
            async move {
                let v = t.get(k).expect("get").expect("present");
                t.insert(k, payload::changed(&v)).expect("insert");
            }
        })
        .await,
    );
    let t = tree.clone();
    out.push(
        run("delete", only_keys, concurrency, move |k| {
            let t = t.clone();
            async move {
                assert!(t.remove(k).expect("remove").is_some());
            }
        })
        .await,
    );
    out
}

/// `INSERT` / `SELECT` / `SELECT` + `UPDATE` / `DELETE` on a bare table.
pub async fn postgres(
    pool: PgPool,
    schema: &str,
    sessions: usize,
    concurrency: usize,
) -> Vec<Phase> {
    let table = format!("\"{schema}\".raw_sessions");
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TABLE {table} (key bytea PRIMARY KEY, data bytea NOT NULL, expires_at timestamptz NOT NULL)"
    )))
    .execute(&pool)
    .await
    .expect("create the raw table");
    let insert: Arc<str> = format!(
        "INSERT INTO {table} (key, data, expires_at) VALUES ($1, $2, now() + interval '30 minutes')"
    )
    .into();
    let select: Arc<str> =
        format!("SELECT data FROM {table} WHERE key = $1 AND expires_at > now()").into();
    let update: Arc<str> = format!(
        "UPDATE {table} SET data = $2, expires_at = now() + interval '30 minutes' WHERE key = $1"
    )
    .into();
    let delete: Arc<str> = format!("DELETE FROM {table} WHERE key = $1").into();
    let ks = keys(sessions);
    let only_keys: Vec<[u8; 32]> = ks.iter().map(|(_, k)| *k).collect();
    let mut out = Vec::new();
    let (p, q) = (pool.clone(), insert);
    out.push(
        run("create", ks, concurrency, move |(i, k)| {
            let (p, q) = (p.clone(), q.clone());
            async move {
                sqlx::query(AssertSqlSafe(q))
                    .bind(&k[..])
                    .bind(payload::bytes(i))
                    .execute(&p)
                    .await
                    .expect("insert");
            }
        })
        .await,
    );
    let (p, q) = (pool.clone(), select.clone());
    out.push(
        run("load", repeat(&only_keys, 5), concurrency, move |k| {
            let (p, q) = (p.clone(), q.clone());
            async move {
                let row: Option<Vec<u8>> = sqlx::query_scalar(AssertSqlSafe(q))
                    .bind(&k[..])
                    .fetch_optional(&p)
                    .await
                    .expect("select");
                assert!(row.is_some());
            }
        })
        .await,
    );
    let (p, s, u) = (pool.clone(), select, update);
    out.push(
        run("update", repeat(&only_keys, 2), concurrency, move |k| {
            let (p, s, u) = (p.clone(), s.clone(), u.clone());
            async move {
                let data: Vec<u8> = sqlx::query_scalar(AssertSqlSafe(s))
                    .bind(&k[..])
                    .fetch_one(&p)
                    .await
                    .expect("select");
                sqlx::query(AssertSqlSafe(u))
                    .bind(&k[..])
                    .bind(payload::changed(&data))
                    .execute(&p)
                    .await
                    .expect("update");
            }
        })
        .await,
    );
    let (p, q) = (pool.clone(), delete);
    out.push(
        run("delete", only_keys, concurrency, move |k| {
            let (p, q) = (p.clone(), q.clone());
            async move {
                sqlx::query(AssertSqlSafe(q))
                    .bind(&k[..])
                    .execute(&p)
                    .await
                    .expect("delete");
            }
        })
        .await,
    );
    out
}

/// redis-rs multiplexed `SET NX EX` / `GET` / `GET` + `SET EX` / `DEL`.
pub async fn redis(url: &str, prefix: &str, sessions: usize, concurrency: usize) -> Vec<Phase> {
    let client = redis::Client::open(url).expect("redis URL");
    let conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to redis");
    let ks: Vec<(usize, String)> = keys(sessions)
        .iter()
        .map(|(i, k)| (*i, format!("{prefix}{}", hex(k))))
        .collect();
    let names: Vec<String> = ks.iter().map(|(_, n)| n.clone()).collect();
    let mut out = Vec::new();
    let c = conn.clone();
    out.push(
        run("create", ks, concurrency, move |(i, name)| {
            let mut c = c.clone();
            async move {
                let ok: Option<String> = redis::cmd("SET")
                    .arg(&name)
                    .arg(payload::bytes(i))
                    .arg("NX")
                    .arg("EX")
                    .arg(TTL_SECS)
                    .query_async(&mut c)
                    .await
                    .expect("SET NX EX");
                assert!(ok.is_some());
            }
        })
        .await,
    );
    let c = conn.clone();
    out.push(
        run("load", repeat(&names, 5), concurrency, move |name| {
            let mut c = c.clone();
            async move {
                let v: Option<Vec<u8>> = c.get(&name).await.expect("GET");
                assert!(v.is_some());
            }
        })
        .await,
    );
    let c = conn.clone();
    out.push(
        run("update", repeat(&names, 2), concurrency, move |name| {
            let mut c = c.clone();
            async move {
                let v: Vec<u8> = c.get(&name).await.expect("GET");
                let _: () = c
                    .set_ex(&name, payload::changed(&v), TTL_SECS)
                    .await
                    .expect("SET EX");
            }
        })
        .await,
    );
    let c = conn.clone();
    out.push(
        run("delete", names, concurrency, move |name| {
            let mut c = c.clone();
            async move {
                let n: i64 = c.del(&name).await.expect("DEL");
                assert_eq!(n, 1);
            }
        })
        .await,
    );
    out
}

/// The smallest compare-and-set a versioned session write needs: the value
/// starts with an 8-byte version, and one script replaces it only if that
/// version is the one read. `create` (`SET NX EX` of version 1) and `update`
/// (`GET`, then the script) only: the ceiling for our versioned `update`,
/// which a plain `SET` (that can lose updates) is not.
pub async fn redis_cas(url: &str, prefix: &str, sessions: usize, concurrency: usize) -> Vec<Phase> {
    const CAS: &str = "if redis.call('GETRANGE', KEYS[1], 0, 7) ~= ARGV[1] then return 0 end \
                       redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1";
    let client = redis::Client::open(url).expect("redis URL");
    let conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to redis");
    let script = Arc::new(redis::Script::new(CAS));
    let versioned = |version: u64, body: &[u8]| {
        let mut v = version.to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    };
    let ks: Vec<(usize, String)> = keys(sessions)
        .iter()
        .map(|(i, k)| (*i, format!("{prefix}{}", hex(k))))
        .collect();
    let names: Vec<String> = ks.iter().map(|(_, n)| n.clone()).collect();
    let mut out = Vec::new();
    let c = conn.clone();
    out.push(
        run("create", ks, concurrency, move |(i, name)| {
            let mut c = c.clone();
            async move {
                let ok: Option<String> = redis::cmd("SET")
                    .arg(&name)
                    .arg(versioned(1, &payload::bytes(i)))
                    .arg("NX")
                    .arg("EX")
                    .arg(TTL_SECS)
                    .query_async(&mut c)
                    .await
                    .expect("SET NX EX");
                assert!(ok.is_some());
            }
        })
        .await,
    );
    let c = conn.clone();
    out.push(
        run("update", repeat(&names, 2), concurrency, move |name| {
            let (mut c, script) = (c.clone(), script.clone());
            async move {
                let v: Vec<u8> = c.get(&name).await.expect("GET");
                let (version, body) = v.split_at(8);
                let next = u64::from_be_bytes(version.try_into().expect("8 bytes")) + 1;
                // 0 only if another update of this key ran in between.
                let _done: i64 = script
                    .key(&name)
                    .arg(version)
                    .arg(versioned(next, &payload::changed(body)))
                    .arg(TTL_SECS)
                    .invoke_async(&mut c)
                    .await
                    .expect("compare-and-set");
            }
        })
        .await,
    );
    let mut c = conn.clone();
    for name in &names {
        let _: i64 = c.del(name).await.expect("DEL");
    }
    out
}

fn hex(k: &[u8; 32]) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}
