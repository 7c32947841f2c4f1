//! The Lua scripts. Each runs atomically on one server. A [`Call`] is one
//! `EVALSHA` of a script; the store sends it and loads the script again when
//! a server answers `NOSCRIPT`.
//!
//! A record is one string (layout in `value.rs`); scripts read its kind,
//! version, id, link and user at fixed offsets through `parse`, and get
//! every value they write fully encoded from the client. Kinds: `L` live,
//! `P` pending rotation target and `T` tombstone (both cluster only). Expiry
//! is native (`PXAT`/`PEXPIREAT`), so a string that exists is not expired.
//!
//! Standalone scripts maintain the per-user index inside the same script
//! (index key names are built from the prefix, so they are standalone-only).
//! Cluster scripts touch one key each; the client orders the index steps.

use redis::{Cmd, Script, ToRedisArgs};

use crate::value::EXPIRES_AT;

/// Shared Lua helpers: `(name, code)`, in dependency order. A script gets
/// the ones it calls, and no others: Lua builds every `local function` of a
/// script on each call, which is measurable at these speeds.
const HELPERS: &[(&str, &str)] = &[
    (
        "index_add",
        r#"
local function index_add(idx, score, member)
  redis.call('ZADD', idx, 'GT', score, member)
  if redis.call('PTTL', idx) == -1 then
    redis.call('PEXPIREAT', idx, score)
  else
    redis.call('PEXPIREAT', idx, score, 'GT')
  end
end"#,
    ),
    (
        "now_ms",
        r#"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end"#,
    ),
    (
        "u32",
        r#"
local function u32(s, i)
  local a, b, c, d = string.byte(s, i, i + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end"#,
    ),
    (
        "i64",
        // A big-endian signed 64-bit integer at byte i (counted from 1), as
        // a Lua number: exact for any millisecond timestamp (below 2^53).
        r#"
local function i64(s, i)
  local hi = u32(s, i)
  if hi >= 2147483648 then hi = hi - 4294967296 end
  return hi * 4294967296 + u32(s, i + 4)
end"#,
    ),
    (
        "parse",
        // kind ('L', 'P', 'T', 'R' or nil for anything else), version (8 bytes),
        // user (nil for none), link. Offsets are value.rs's, counted from 1.
        r#"
local function parse(v)
  if type(v) ~= 'string' then return nil end
  local kind = string.sub(v, 1, 1)
  if kind == 'T' then return 'T', nil, nil, string.sub(v, 2) end
  if kind == 'R' and #v == 1 then return 'R' end
  if (kind ~= 'L' and kind ~= 'P') or #v < 46 then return nil end
  local at = 46 + u32(v, 42)
  if at > #v then return nil end
  local user = nil
  if string.byte(v, at) == 1 then
    if at + 4 > #v then return nil end
    user = string.sub(v, at + 5, at + 4 + u32(v, at + 1))
  end
  return kind, string.sub(v, 2, 9), user, string.sub(v, 46, at - 1)
end"#,
    ),
    (
        "id_of",
        "\nlocal function id_of(v) return string.sub(v, 26, 41) end",
    ),
    (
        "read",
        // The string under key, or nil; a key of another type reads as nil.
        r#"
local function read(key)
  local v = redis.pcall('GET', key)
  if type(v) == 'string' then return v end
  return nil
end"#,
    ),
];

/// One of our scripts, and how many of its arguments are keys.
#[derive(Debug)]
pub(crate) struct Lua {
    script: Script,
    keys: usize,
}

impl Lua {
    /// A call of this script, with room for `data` bytes of arguments.
    ///
    /// The call is built straight into one `EVALSHA` command. (`redis`'s own
    /// `ScriptInvocation` copies each argument into a buffer of its own and
    /// then copies them all again into the command: about ten allocations
    /// and a second copy of the record on every write.)
    pub(crate) fn call(&self, data: usize) -> Call<'_> {
        // Up to 14 arguments (rotate's) and their text: key names, hex keys,
        // a prefix, a user, a record header.
        let mut cmd = Cmd::with_capacity(3 + 14, 512 + data);
        cmd.arg("EVALSHA")
            .arg(self.script.get_hash())
            .arg(self.keys);
        Call {
            lua: self,
            cmd,
            keys: 0,
            args: 0,
        }
    }
}

/// An `EVALSHA` being built: its keys first, then its arguments.
pub(crate) struct Call<'s> {
    lua: &'s Lua,
    cmd: Cmd,
    keys: usize,
    args: usize,
}

impl Call<'_> {
    /// Adds the next key (`KEYS[i]`); keys come before arguments.
    pub(crate) fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self {
        self.cmd.arg(key);
        if self.args == 0 {
            self.keys += 1;
        } else {
            // Counted as a misplaced key: `cmd` refuses the call.
            self.keys = usize::MAX;
        }
        self
    }

    /// Adds the next argument (`ARGV[i]`).
    pub(crate) fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        self.cmd.arg(arg);
        self.args += 1;
        self
    }

    /// The command to send. An error, not a command, if the keys given are
    /// not the script's: the server would read arguments as keys.
    pub(crate) fn cmd(&self) -> Result<&Cmd, String> {
        if self.keys == self.lua.keys {
            Ok(&self.cmd)
        } else {
            Err(format!(
                "a script taking {} key(s) was called with {} before its arguments",
                self.lua.keys, self.keys
            ))
        }
    }

    /// The script, to load when a server answers `NOSCRIPT`.
    pub(crate) fn script(&self) -> &Script {
        &self.lua.script
    }
}

/// `body` after the helpers it calls (directly or through another helper),
/// taking `keys` keys.
fn with_helpers(keys: usize, body: &str) -> Lua {
    let mut needed: Vec<&str> = Vec::new();
    let mut code = body.to_owned();
    // Walk backwards so a helper's own calls are seen before its dependencies.
    for (name, helper) in HELPERS.iter().rev() {
        if code.contains(&format!("{name}(")) {
            needed.push(helper);
            code.push_str(helper);
        }
    }
    needed.reverse();
    Lua {
        script: Script::new(&format!("{}\n{body}", needed.concat())),
        keys,
    }
}

/// All scripts, built once per store.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub create: Lua,
    pub update: Lua,
    pub touch: Lua,
    pub rotate: Lua,
    pub delete: Lua,
    pub list_user: Lua,
    pub delete_user: Lua,
    pub index_add: Lua,
    pub index_read: Lua,
    pub prepare: Lua,
    pub commit: Lua,
    pub activate: Lua,
    pub abort: Lua,
    pub clear_tombstone: Lua,
    pub delete_if_user: Lua,
    pub delete_id: Lua,
    pub delete_if_id: Lua,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            // KEYS[1] record. ARGV: value, expires, member, index prefix ('' in
            // cluster mode or without a user), user. The slow path of create:
            // the client first tries a plain `SET NX PXAT`.
            create: with_helpers(
                1,
                r#"
local kind = parse(read(KEYS[1]))
if kind == 'L' or kind == 'P' or kind == 'R' then return 'EXISTS' end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
if ARGV[4] ~= '' then index_add(ARGV[4] .. ARGV[5], ARGV[2], ARGV[3]) end
return 'OK'"#,
            ),
            // KEYS[1] record. ARGV: value, expires, expected version (8
            // bytes), member, index prefix ('' in cluster mode), has_user, user.
            update: with_helpers(
                1,
                r#"
local kind, version, user = parse(read(KEYS[1]))
if kind == 'P' then return 'PENDING' end
if kind ~= 'L' then return 'NOTFOUND' end
if version ~= ARGV[3] then return 'CONFLICT' end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
if ARGV[5] ~= '' then
  if user and (ARGV[6] ~= '1' or user ~= ARGV[7]) then
    redis.call('ZREM', ARGV[5] .. user, ARGV[4])
  end
  if ARGV[6] == '1' then index_add(ARGV[5] .. ARGV[7], ARGV[2], ARGV[4]) end
end
return 'OK'"#,
            ),
            // KEYS[1] record. ARGV: expires (8 bytes), expires, member, index
            // prefix, expected user ('' = do not check; cluster mode passes
            // '=' .. user or '-'). Never moves a deadline earlier.
            touch: with_helpers(
                1,
                &format!(
                    r#"
local cur = read(KEYS[1])
local kind, _, user = parse(cur)
if kind == 'P' then return 'PENDING' end
if kind ~= 'L' then return 'NOTFOUND' end
if ARGV[5] ~= '' then
  local seen = user and ('=' .. user) or '-'
  if seen ~= ARGV[5] then return 'RETRY' end
end
if i64(ARGV[1], 1) <= i64(cur, {stored_at}) then return 'OK' end
redis.call('SETRANGE', KEYS[1], {EXPIRES_AT}, ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
if ARGV[4] ~= '' and user then index_add(ARGV[4] .. user, ARGV[2], ARGV[3]) end
return 'OK'"#,
                    stored_at = EXPIRES_AT + 1
                ),
            ),
            // Standalone only. KEYS[1] old, KEYS[2] new. ARGV: value, expires,
            // expected version, id, new member, index prefix, has_user, user,
            // old member.
            rotate: with_helpers(
                2,
                r#"
local cur = read(KEYS[1])
local kind, version, user = parse(cur)
if kind ~= 'L' then return 'NOTFOUND' end
if version ~= ARGV[3] then return 'CONFLICT' end
if id_of(cur) ~= ARGV[4] then return 'BADID' end
local other = parse(read(KEYS[2]))
if other == 'L' or other == 'P' then return 'EXISTS' end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1], 'PXAT', ARGV[2])
if user then redis.call('ZREM', ARGV[6] .. user, ARGV[9]) end
if ARGV[7] == '1' then index_add(ARGV[6] .. ARGV[8], ARGV[2], ARGV[5]) end
return 'OK'"#,
            ),
            // Cluster only (standalone deletes with `GETDEL`). KEYS[1]
            // record. Returns {status, user}: status 1 live record deleted, 0
            // nothing, 'PENDING'. A tombstone is left for rotation readers.
            delete: with_helpers(
                1,
                r#"
local kind, _, user = parse(read(KEYS[1]))
if kind == 'P' then return {'PENDING', false} end
if kind ~= 'L' then return {0, false} end
redis.call('DEL', KEYS[1])
return {1, user or false}"#,
            ),
            // Standalone only. KEYS[1] index. ARGV: record prefix, user.
            // Returns a flat list of (member, value) for the user's live
            // records, and prunes entries whose record is gone.
            list_user: with_helpers(
                1,
                r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms())
local out = {}
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local v = read(ARGV[1] .. m)
  local kind, _, user = parse(v)
  if kind == 'L' and user == ARGV[2] then
    table.insert(out, m)
    table.insert(out, v)
  elseif kind ~= 'L' then
    redis.call('ZREM', KEYS[1], m)
  end
end
return out"#,
            ),
            // Standalone only. KEYS[1] index. ARGV: record prefix, user, keep
            // member ('' for none). Returns how many live records it deleted.
            delete_user: with_helpers(
                1,
                r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms())
local n = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if m ~= ARGV[3] then
    local key = ARGV[1] .. m
    local kind, _, user = parse(read(key))
    if kind == 'L' and user == ARGV[2] then
      redis.call('DEL', key)
      n = n + 1
    end
    if kind ~= 'L' or user == ARGV[2] then redis.call('ZREM', KEYS[1], m) end
  end
end
return n"#,
            ),
            // Standalone only. KEYS[1] index. ARGV: record prefix, user, id
            // (16 bytes). Deletes the user's live record with that id; 1 if
            // it did. Atomic with rotations, which are scripts too.
            delete_id: with_helpers(
                1,
                r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms())
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. m
  local v = read(key)
  local kind, _, user = parse(v)
  if kind == 'L' and user == ARGV[2] and id_of(v) == ARGV[3] then
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[1], m)
    return 1
  end
end
return 0"#,
            ),
            // Cluster: KEYS[1] record. ARGV: user, id (16 bytes). Returns
            // {status, link}: 'DELETED' (a live record of that user and id
            // was deleted), 'PENDING' (a rotation target of it was deleted;
            // link names the rotation's old key), 'MOVED' (a tombstone: link
            // names the key the session rotated to), 'EMPTY' or 'OTHER'.
            delete_if_id: with_helpers(
                1,
                r#"
local cur = read(KEYS[1])
if not cur then return {'EMPTY', false} end
local kind, _, user, link = parse(cur)
if kind == 'T' then return {'MOVED', link} end
if (kind == 'L' or kind == 'P') and user == ARGV[1] and id_of(cur) == ARGV[2] then
  redis.call('DEL', KEYS[1])
  if kind == 'P' then return {'PENDING', link} end
  return {'DELETED', false}
end
return {'OTHER', false}"#,
            ),
            // Cluster: KEYS[1] index. ARGV: score, member.
            index_add: with_helpers(1, "index_add(KEYS[1], ARGV[1], ARGV[2])\nreturn 1"),
            // Cluster: KEYS[1] index. ARGV[1] 'WITHSCORES' or nothing. Prunes
            // entries whose deadline passed and returns the rest.
            index_read: with_helpers(
                1,
                r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms())
if ARGV[1] == 'WITHSCORES' then return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES') end
return redis.call('ZRANGE', KEYS[1], 0, -1)"#,
            ),
            // Cluster: KEYS[1] new key. ARGV: value (pending, naming the old
            // key), expires. 'REVOKED' when the user's sessions were revoked
            // after this rotation indexed the new key.
            prepare: with_helpers(
                1,
                r#"
local kind = parse(read(KEYS[1]))
if kind == 'R' then return 'REVOKED' end
if kind == 'L' or kind == 'P' then return 'EXISTS' end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 'OK'"#,
            ),
            // Cluster: KEYS[1] old key. ARGV: expected version (8 bytes), id,
            // tombstone, tombstone deadline. The rotation's commit point.
            commit: with_helpers(
                1,
                r#"
local cur = read(KEYS[1])
local kind, version, user = parse(cur)
if kind == 'P' then return {'PENDING', false} end
if kind ~= 'L' then return {'NOTFOUND', false} end
if version ~= ARGV[1] then return {'CONFLICT', false} end
if id_of(cur) ~= ARGV[2] then return {'BADID', false} end
redis.call('SET', KEYS[1], ARGV[3], 'PXAT', ARGV[4])
return {'OK', user or false}"#,
            ),
            // Cluster: KEYS[1] new key. ARGV: old key name. Makes a committed
            // rotation target live; 1 if it did (or it already was), 0 if gone.
            activate: with_helpers(
                1,
                r#"
local kind, _, _, link = parse(read(KEYS[1]))
if kind == 'P' and link == ARGV[1] then
  redis.call('SETRANGE', KEYS[1], 0, 'L')
  return 1
end
if kind == 'L' then return 1 end
return 0"#,
            ),
            // Cluster: KEYS[1] new key. ARGV: old key name. Drops an
            // uncommitted rotation target.
            abort: with_helpers(
                1,
                r#"
local kind, _, _, link = parse(read(KEYS[1]))
if kind == 'P' and link == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0"#,
            ),
            // Cluster: KEYS[1] old key. ARGV: its tombstone.
            clear_tombstone: with_helpers(
                1,
                r#"
if read(KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0"#,
            ),
            // Cluster: KEYS[1] record. ARGV: user, deadline of its index entry.
            // Deletes the record if it belongs to the user, pending or not,
            // and returns its session id (nil when nothing was deleted). A
            // key that holds nothing yet (its rotation or create is in flight:
            // index entries go in first) gets a revoked marker until that
            // deadline, so it cannot go live after the revocation.
            delete_if_user: with_helpers(
                1,
                r#"
local cur = read(KEYS[1])
if not cur then
  if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('SET', KEYS[1], 'R', 'PXAT', ARGV[2])
  end
  return false
end
local kind, _, user = parse(cur)
if (kind ~= 'L' and kind ~= 'P') or user ~= ARGV[1] then return false end
redis.call('DEL', KEYS[1])
return id_of(cur)"#,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::HELPERS;

    fn all_helpers() -> String {
        HELPERS.iter().map(|(_, code)| *code).collect()
    }
    use crate::value::{ID_AT, LINK_AT, MIN_LEN};

    #[test]
    fn a_call_with_other_keys_than_its_script_takes_is_refused() {
        let scripts = super::Scripts::new();
        let mut missing = scripts.update.call(0);
        missing.arg("value");
        assert!(missing.cmd().is_err());
        let mut late = scripts.rotate.call(0);
        late.key("old").arg("value").key("new");
        assert!(late.cmd().is_err());
        let mut extra = scripts.update.call(0);
        extra.key("record").key("another");
        assert!(extra.cmd().is_err());
        let mut right = scripts.rotate.call(0);
        right.key("old").key("new").arg("value");
        let packed = right
            .cmd()
            .expect("two keys, then arguments")
            .get_packed_command();
        let text = String::from_utf8(packed).unwrap();
        assert!(text.contains("EVALSHA"), "{text}");
        assert!(
            text.contains("\r\n$1\r\n2\r\n$3\r\nold\r\n$3\r\nnew\r\n"),
            "{text}"
        );
    }

    #[test]
    fn the_lua_parser_reads_the_offsets_value_rs_writes() {
        // Lua counts from 1.
        for needle in [
            format!("#v < {MIN_LEN}"),
            format!("u32(v, {})", LINK_AT + 1),
            format!("local at = {} + u32", LINK_AT + 5),
            format!("string.sub(v, {}, at - 1)", LINK_AT + 5),
            format!("string.sub(v, {}, {})", ID_AT + 1, ID_AT + 16),
            "string.sub(v, 2, 9)".to_owned(),
        ] {
            assert!(all_helpers().contains(&needle), "{needle}");
        }
    }
}
