//! The Lua scripts. Each runs atomically on one server; `redis::Script` sends
//! them with `EVALSHA` and loads them again when a server answers `NOSCRIPT`.
//!
//! A record is a hash: `i` id (16 bytes), `u` user (absent for none), `c`
//! created ms, `e` expires ms, `v` version, `d` data, and in cluster mode `p`
//! while it is the pending target of a rotation (the old key's name). A
//! rotated-away key in cluster mode is a tombstone hash holding only `m` (the
//! new key's name). A record without `v` is never live.
//!
//! Standalone scripts maintain the per-user index inside the same script
//! (index key names are built from the prefix, so they are standalone-only).
//! Cluster scripts touch one key each; the client orders the index steps.

use redis::Script;

/// Shared Lua helpers, prepended to the scripts that need them.
const HELPERS: &str = r#"
local function index_add(idx, score, member)
  redis.call('ZADD', idx, 'GT', score, member)
  if redis.call('PTTL', idx) == -1 then
    redis.call('PEXPIREAT', idx, score)
  else
    redis.call('PEXPIREAT', idx, score, 'GT')
  end
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function write(key, a)
  -- a: id, has_user, user, created, expires, version, data. Overwrites the
  -- record's fields in one HSET; callers have ruled out a pending record.
  if a[2] == '1' then
    redis.call('HSET', key, 'i', a[1], 'c', a[4], 'e', a[5], 'v', a[6], 'd', a[7], 'u', a[3])
  else
    redis.call('HSET', key, 'i', a[1], 'c', a[4], 'e', a[5], 'v', a[6], 'd', a[7])
    redis.call('HDEL', key, 'u')
  end
  redis.call('PEXPIREAT', key, a[5])
end
"#;

fn with_helpers(body: &str) -> Script {
    Script::new(&format!("{HELPERS}\n{body}"))
}

/// All scripts, built once per store.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub create: Script,
    pub update: Script,
    pub touch: Script,
    pub rotate: Script,
    pub delete: Script,
    pub list_user: Script,
    pub delete_user: Script,
    pub index_add: Script,
    pub index_read: Script,
    pub prepare: Script,
    pub commit: Script,
    pub activate: Script,
    pub abort: Script,
    pub clear_tombstone: Script,
    pub delete_if_user: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            // KEYS[1] record. ARGV: id, has_user, user, created, expires,
            // version, data, member, index prefix ('' in cluster mode).
            create: with_helpers(
                r#"
if redis.call('HEXISTS', KEYS[1], 'i') == 1 then return 'EXISTS' end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('DEL', KEYS[1]) end
write(KEYS[1], ARGV)
if ARGV[9] ~= '' and ARGV[2] == '1' then index_add(ARGV[9] .. ARGV[3], ARGV[5], ARGV[8]) end
return 'OK'"#,
            ),
            // KEYS[1] record. ARGV: id, has_user, user, created, expires,
            // version, data, member, index prefix, expected version.
            update: with_helpers(
                r#"
local cur = redis.call('HMGET', KEYS[1], 'v', 'u', 'p')
if not cur[1] then return 'NOTFOUND' end
if cur[3] then return 'PENDING' end
if cur[1] ~= ARGV[10] then return 'CONFLICT' end
write(KEYS[1], ARGV)
if ARGV[9] ~= '' then
  if cur[2] and (ARGV[2] ~= '1' or cur[2] ~= ARGV[3]) then
    redis.call('ZREM', ARGV[9] .. cur[2], ARGV[8])
  end
  if ARGV[2] == '1' then index_add(ARGV[9] .. ARGV[3], ARGV[5], ARGV[8]) end
end
return 'OK'"#,
            ),
            // KEYS[1] record. ARGV: expires, member, index prefix, expected
            // user ('' = do not check; cluster mode passes '=' .. user or '-').
            touch: with_helpers(
                r#"
local cur = redis.call('HMGET', KEYS[1], 'v', 'u', 'p')
if not cur[1] then return 'NOTFOUND' end
if cur[3] then return 'PENDING' end
if ARGV[4] ~= '' then
  local seen = cur[2] and ('=' .. cur[2]) or '-'
  if seen ~= ARGV[4] then return 'RETRY' end
end
redis.call('HSET', KEYS[1], 'e', ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
if ARGV[3] ~= '' and cur[2] then index_add(ARGV[3] .. cur[2], ARGV[1], ARGV[2]) end
return 'OK'"#,
            ),
            // Standalone only. KEYS[1] old, KEYS[2] new. ARGV: id, has_user,
            // user, created, expires, version, data, new member, index prefix,
            // expected version, old member.
            rotate: with_helpers(
                r#"
local cur = redis.call('HMGET', KEYS[1], 'v', 'u', 'i')
if not cur[1] then return 'NOTFOUND' end
if cur[1] ~= ARGV[10] then return 'CONFLICT' end
if cur[3] ~= ARGV[1] then return 'BADID' end
if redis.call('HEXISTS', KEYS[2], 'i') == 1 then return 'EXISTS' end
redis.call('DEL', KEYS[1])
write(KEYS[2], ARGV)
if cur[2] then redis.call('ZREM', ARGV[9] .. cur[2], ARGV[11]) end
if ARGV[2] == '1' then index_add(ARGV[9] .. ARGV[3], ARGV[5], ARGV[8]) end
return 'OK'"#,
            ),
            // KEYS[1] record. ARGV: member, index prefix ('' in cluster mode).
            // Returns {status, user}: status 1 live record deleted, 0 nothing,
            // 'PENDING'. A tombstone is left for rotation readers.
            delete: with_helpers(
                r#"
local cur = redis.call('HMGET', KEYS[1], 'v', 'u', 'p')
if not cur[1] then return {0, false} end
if cur[3] then return {'PENDING', false} end
redis.call('DEL', KEYS[1])
if ARGV[2] ~= '' and cur[2] then redis.call('ZREM', ARGV[2] .. cur[2], ARGV[1]) end
return {1, cur[2]}"#,
            ),
            // Standalone only. KEYS[1] index. ARGV: record prefix, user.
            // Returns a flat list of (member, i, c, e, v, d) for live records.
            list_user: with_helpers(
                r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms())
local out = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local r = redis.call('HMGET', ARGV[1] .. m, 'i', 'u', 'c', 'e', 'v', 'd')
  if r[5] and r[2] == ARGV[2] then
    table.insert(out, m)
    for j = 1, 6 do if j ~= 2 then table.insert(out, r[j]) end end
  elseif not r[5] then
    redis.call('ZREM', KEYS[1], m)
  end
end
return out"#,
            ),
            // Standalone only. KEYS[1] index. ARGV: record prefix, user, keep
            // member ('' for none). Returns how many live records it deleted.
            delete_user: with_helpers(
                r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms())
local n = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if m ~= ARGV[3] then
    local key = ARGV[1] .. m
    local r = redis.call('HMGET', key, 'v', 'u')
    if r[1] and r[2] == ARGV[2] then
      redis.call('DEL', key)
      n = n + 1
    end
    if not r[1] or r[2] == ARGV[2] then redis.call('ZREM', KEYS[1], m) end
  end
end
return n"#,
            ),
            // Cluster: KEYS[1] index. ARGV: score, member.
            index_add: with_helpers("index_add(KEYS[1], ARGV[1], ARGV[2])\nreturn 1"),
            // Cluster: KEYS[1] index. Prunes entries whose deadline passed and
            // returns the rest.
            index_read: with_helpers(
                r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms())
return redis.call('ZRANGE', KEYS[1], 0, -1)"#,
            ),
            // Cluster: KEYS[1] new key. ARGV: id, has_user, user, created,
            // expires, version, data, old key name.
            prepare: with_helpers(
                r#"
if redis.call('HEXISTS', KEYS[1], 'i') == 1 then return 'EXISTS' end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('DEL', KEYS[1]) end
write(KEYS[1], ARGV)
redis.call('HSET', KEYS[1], 'p', ARGV[8])
return 'OK'"#,
            ),
            // Cluster: KEYS[1] old key. ARGV: expected version, id, new key
            // name, tombstone deadline. The rotation's commit point.
            commit: with_helpers(
                r#"
local cur = redis.call('HMGET', KEYS[1], 'v', 'u', 'i', 'p')
if not cur[1] then return {'NOTFOUND', false} end
if cur[4] then return {'PENDING', false} end
if cur[1] ~= ARGV[1] then return {'CONFLICT', false} end
if cur[3] ~= ARGV[2] then return {'BADID', false} end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'm', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return {'OK', cur[2]}"#,
            ),
            // Cluster: KEYS[1] new key. ARGV: old key name. Makes a committed
            // rotation target live; 1 if it did (or it already was), 0 if gone.
            activate: Script::new(
                r#"
local p = redis.call('HGET', KEYS[1], 'p')
if p == ARGV[1] then redis.call('HDEL', KEYS[1], 'p') return 1 end
if not p and redis.call('HEXISTS', KEYS[1], 'v') == 1 then return 1 end
return 0"#,
            ),
            // Cluster: KEYS[1] new key. ARGV: old key name. Drops an
            // uncommitted rotation target.
            abort: Script::new(
                r#"
if redis.call('HGET', KEYS[1], 'p') == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0"#,
            ),
            // Cluster: KEYS[1] old key. ARGV: new key name.
            clear_tombstone: Script::new(
                r#"
if redis.call('HGET', KEYS[1], 'm') == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0"#,
            ),
            // Cluster: KEYS[1] record. ARGV: user. Deletes the record if it
            // belongs to the user, pending or not, and returns its session id
            // (nil when nothing was deleted).
            delete_if_user: Script::new(
                r#"
local r = redis.call('HMGET', KEYS[1], 'v', 'u', 'i')
if not r[1] or r[2] ~= ARGV[1] then return false end
redis.call('DEL', KEYS[1])
return r[3]"#,
            ),
        }
    }
}
