//! Client-side sessions: [`ClientSide`], the settings of a manager that keeps
//! the whole session sealed in the cookie instead of in a store, and the
//! envelope that cookie holds.
//!
//! The cookie value is `base64url(0x11 | key id | nonce | ciphertext and
//! tag)` (XChaCha20-Poly1305 under the [`KeyRing`]'s newest key). The
//! associated data binds the format byte and the key id (the header) and the
//! cookie's name, so a value cannot be moved to another cookie, downgraded to
//! another format, or relabelled with another key id. The plaintext holds the
//! credential key, the stable session id, `created_at`, the time the
//! credential was issued, the absolute deadline fixed at creation, the
//! principal, and the session payload (last activity, remember-me, metadata,
//! values) in the framed form of the store codec.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::error::{Error, Result};
use crate::record::{Record, Timestamp};
use crate::revocation::Revocations;
use crate::seal::{KeyRing, SEAL_OVERHEAD};
use crate::store::SessionStore;
use crate::token::{SessionId, SessionKey};

/// First byte of a sealed cookie (distinct from the store envelope's).
const COOKIE_FORMAT: u8 = 0x11;
const AAD_CONTEXT: &[u8] = b"session-core/cookie/v1";
/// The cookie name client-side sessions are bound to when the caller does
/// not say ([`SessionManager::load`](crate::SessionManager::load)); HTTP
/// integrations pass their own.
pub const DEFAULT_COOKIE_NAME: &str = "__Host-session";
/// What browsers keep per cookie (name and value), per RFC 6265 section 6.1
/// and as Chromium and Firefox enforce it.
pub const BROWSER_COOKIE_LIMIT: usize = 4096;
/// The most chunks [`ClientSide::chunks`] allows.
pub const MAX_CHUNKS: usize = 16;

/// Settings of a client-side session manager
/// ([`SessionManager::client_side`](crate::SessionManager::client_side)):
/// the session is sealed into the cookie itself, and no store is needed.
///
/// Defaults: one cookie of at most [`BROWSER_COOKIE_LIMIT`] bytes (name and
/// value), no revocation list.
///
/// # What the mode cannot do, and what it costs
///
/// - **Revocation.** Without server state, a copied cookie stays valid until
///   its idle or absolute deadline, even after the user logged out: logout
///   only tells the browser to forget it. Turn on
///   [`revocation_list`](Self::revocation_list) to refuse replayed cookies
///   (one store read per request that presents a cookie).
/// - **Concurrency.** Each request of a client carries the whole session and
///   each response hands the whole session back, so of two concurrent
///   requests that both change it, the response that arrives last wins and
///   the other request's changes are lost. Server-side sessions merge them
///   (versioned writes); here [`Session::modify`](crate::Session::modify) is
///   atomic only within one request.
/// - **Replay of an older state.** An old cookie of the same session (before
///   its last rotation) is a valid cookie: a client can go back to an earlier
///   version of its own session data. Keep nothing there whose rollback would
///   matter (a balance, a one-time flag); keep it in a database.
/// - **Listing and revoking other sessions**
///   ([`list_user`](crate::SessionManager::list_user),
///   [`revoke`](crate::SessionManager::revoke)) answer
///   [`Error::Unsupported`]: the server does not know which sessions exist.
/// - **Size.** A session must fit in the cookie (about 4 KiB, or
///   [`chunks`](Self::chunks) of them); one that does not is
///   [`Error::TooLarge`] at commit, and nothing is written.
#[derive(Clone)]
pub struct ClientSide {
    pub(crate) cookie_limit: usize,
    pub(crate) chunks: usize,
    pub(crate) revocations: Option<Revocations>,
}

impl fmt::Debug for ClientSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSide")
            .field("cookie_limit", &self.cookie_limit)
            .field("chunks", &self.chunks)
            .field("revocation_list", &self.revocations.is_some())
            .finish()
    }
}

impl Default for ClientSide {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientSide {
    /// One cookie of at most [`BROWSER_COOKIE_LIMIT`] bytes, no revocation list.
    pub fn new() -> Self {
        Self {
            cookie_limit: BROWSER_COOKIE_LIMIT,
            chunks: 1,
            revocations: None,
        }
    }

    /// Splits a session too large for one cookie over up to `count` cookies
    /// (`NAME`, `NAME.1`, … `NAME.{count-1}`); an HTTP integration clears the
    /// chunks a smaller session no longer needs. At least 1 (no chunking), at
    /// most [`MAX_CHUNKS`]. Mind the server's request header limit: every
    /// request carries every chunk.
    pub fn chunks(mut self, count: usize) -> Self {
        self.chunks = count;
        self
    }

    /// The most bytes (name and value) one cookie may take; default
    /// [`BROWSER_COOKIE_LIMIT`]. Lower it when a proxy in front allows less.
    pub fn cookie_limit(mut self, bytes: usize) -> Self {
        self.cookie_limit = bytes;
        self
    }

    /// Refuses cookies that logout, login, rotation or "log out everywhere"
    /// ended, with records kept in `store` (any [`SessionStore`]: every
    /// backend serves). A request that presents a cookie costs one store
    /// read; a logout, login or rotation adds one write that starts from that
    /// read (a read again only if another request changed the record
    /// meanwhile); entries end with the session's absolute deadline, so the
    /// store's purge removes them.
    ///
    /// - Logout, `login` and `rotate` record the old cookie's credential as
    ///   revoked (the session id stays stable across rotations, as on the
    ///   server side; the credential changes with each). A rotation whose old
    ///   credential turns out to have been ended meanwhile hands out nothing
    ///   ([`Error::NotFound`], as a store answers for a deleted session).
    /// - [`revoke_user`](crate::SessionManager::revoke_user) records a
    ///   per-user not-before time: every cookie of that user issued up to it
    ///   is refused, except the one passed as `keep`, which is re-issued.
    ///   Servers whose clocks disagree by more than the time between a
    ///   login and a "log out everywhere" can misjudge which came first: keep
    ///   them synchronised.
    /// - A user's record that does not decode refuses every cookie of that
    ///   user (the list fails closed) and is rewritten at the next revocation.
    ///
    /// A user's entries share one record, so checking a logged-in cookie is
    /// one read; at most 512 revoked credentials are kept per user, and
    /// beyond that the oldest are folded into the not-before time (which
    /// ends that user's other sessions: safe, never silently permissive).
    ///
    /// With the list on, the last-response-wins race of concurrent requests
    /// can end a session: a response carrying a credential that a
    /// concurrent login or rotation has just revoked, arriving last, leaves
    /// the browser with a refused cookie (the user signs in again).
    pub fn revocation_list(mut self, store: Arc<dyn SessionStore>) -> Self {
        self.revocations = Some(Revocations::new(store));
        self
    }

    /// Whether a revocation list is configured.
    pub fn has_revocation_list(&self) -> bool {
        self.revocations.is_some()
    }

    /// The per-cookie limit.
    pub fn limit(&self) -> usize {
        self.cookie_limit
    }

    /// The most chunks a session may take.
    pub fn max_chunks(&self) -> usize {
        self.chunks
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |why: String| Err(Error::InvalidInput(why));
        if !(1..=MAX_CHUNKS).contains(&self.chunks) {
            return invalid(format!("chunks must be 1 to {MAX_CHUNKS}"));
        }
        if !(512..=BROWSER_COOKIE_LIMIT).contains(&self.cookie_limit) {
            return invalid(format!(
                "cookie_limit must be 512 to {BROWSER_COOKIE_LIMIT} bytes"
            ));
        }
        Ok(())
    }

    /// The name of chunk `i` of the cookie `name` (chunk 0 is `name` itself).
    pub fn chunk_name(name: &str, i: usize) -> String {
        if i == 0 {
            name.to_owned()
        } else {
            format!("{name}.{i}")
        }
    }

    /// Whether `cookie` is a chunk (1 or more) of the cookie `name`: for
    /// integrations that clear chunks a smaller session no longer uses.
    pub fn chunk_index(name: &str, cookie: &str) -> Option<usize> {
        let digits = cookie.strip_prefix(name)?.strip_prefix('.')?;
        // Exactly the names `chunk_name` makes: no sign, no leading zero.
        if digits.is_empty()
            || digits.len() > 2
            || digits.starts_with('0')
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        digits.parse().ok().filter(|&i| i >= 1)
    }

    /// The sealed value a request presents, joined from its chunks: `first`
    /// is the value of the cookie `name`, `chunk(i)` the value of chunk `i`.
    /// `None` if a chunk the first one announces is missing, or the
    /// announcement is malformed or beyond the configured count: the request
    /// then has a fresh session.
    pub fn join<'a>(
        &self,
        first: &'a str,
        chunk: impl Fn(usize) -> Option<&'a str>,
    ) -> Option<String> {
        let Some((count, head)) = first.split_once('.') else {
            return Some(first.to_owned());
        };
        let count: usize = count.parse().ok()?;
        if !(2..=self.chunks).contains(&count) || count.to_string().len() != first.find('.')? {
            return None;
        }
        let mut value = String::with_capacity(count * self.cookie_limit);
        value.push_str(head);
        for i in 1..count {
            value.push_str(chunk(i)?);
        }
        Some(value)
    }

    /// Splits a sealed `value` into the cookies `name`, `name.1`, … (see
    /// [`join`](Self::join)): one cookie if it fits, else the fewest chunks
    /// that hold it, the first prefixed with their count and a dot (which
    /// base64url never contains). [`Error::TooLarge`] if it does not fit.
    pub(crate) fn split(&self, name: &str, value: &str) -> Result<Vec<SealedCookie>> {
        let limit = self.cookie_limit;
        if name.len() + value.len() <= limit {
            return Ok(vec![SealedCookie::new(name.to_owned(), value.to_owned())]);
        }
        let room = |i: usize, count: usize| {
            let prefix = if i == 0 {
                count.to_string().len() + 1
            } else {
                0
            };
            limit.saturating_sub(Self::chunk_name(name, i).len() + prefix)
        };
        for count in 2..=self.chunks {
            let capacity: usize = (0..count).map(|i| room(i, count)).sum();
            if value.len() > capacity {
                continue;
            }
            let mut rest = value;
            let mut out = Vec::with_capacity(count);
            for i in 0..count {
                // base64url is ASCII: any byte index is a char boundary.
                let (part, tail) = rest.split_at(rest.len().min(room(i, count)));
                rest = tail;
                let text = if i == 0 {
                    format!("{count}.{part}")
                } else {
                    part.to_owned()
                };
                out.push(SealedCookie::new(Self::chunk_name(name, i), text));
            }
            debug_assert!(rest.is_empty());
            return Ok(out);
        }
        let most = self.chunks;
        let capacity: usize = (0..most).map(|i| room(i, most)).sum();
        Err(Error::TooLarge {
            size: name.len() + value.len(),
            limit: name.len() + capacity,
        })
    }
}

/// One cookie a client-side session sets: its name and sealed value. The
/// value's `Debug` is redacted (it is a bearer credential).
#[derive(Clone, PartialEq, Eq)]
pub struct SealedCookie {
    name: String,
    value: String,
}

impl SealedCookie {
    fn new(name: String, value: String) -> Self {
        Self { name, value }
    }

    /// The cookie's name (`NAME`, or `NAME.i` for chunk `i`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The sealed value. Never log it.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for SealedCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedCookie")
            .field("name", &self.name)
            .field("value_len", &self.value.len())
            .finish()
    }
}

/// What a client-side session keeps besides its record and payload.
#[derive(Clone, Debug, Default)]
pub(crate) struct CookieState {
    /// When the credential (the record's key) was issued: at creation and at
    /// each rotation. "Log out everywhere" refuses cookies issued up to its
    /// not-before time.
    pub issued_at: Timestamp,
    /// The absolute deadline fixed when the session was created, sealed and
    /// carried unchanged: raising the absolute timeout later never lets a
    /// cookie outlive the revocation entries written for it.
    pub absolute_at: Timestamp,
    /// A credential issued by this request must be issued after this (set
    /// for the session "log out everywhere" keeps).
    pub issue_after: Timestamp,
    /// The revocation list's record of this session's user as read at load
    /// (`Some(None)`: read, absent), so that a logout or rotation in the same
    /// request starts from it instead of reading it again.
    pub list_record: Option<Option<Record>>,
}

impl CookieState {
    /// Whether "log out everywhere" kept this session in this request.
    pub(crate) fn kept(&self) -> bool {
        self.issue_after > Timestamp::EPOCH
    }
}

/// What a sealed cookie holds besides the payload.
#[derive(Clone, Debug)]
pub(crate) struct Opened {
    /// A record built from the envelope: `data` is the plain framed payload,
    /// `expires_at` is filled in by the caller.
    pub record: Record,
    /// When the credential was issued.
    pub issued_at: Timestamp,
    /// The sealed absolute deadline.
    pub absolute_at: Timestamp,
}

/// Seals `record` (whose `data` is the plain framed payload) for the cookie
/// `name` and encodes it for a cookie value.
pub(crate) fn seal(
    ring: &KeyRing,
    name: &str,
    record: &Record,
    state: &CookieState,
) -> Result<String> {
    let user = record.user.as_deref().map(str::as_bytes);
    let mut plain = Vec::with_capacity(
        32 + 16 + 3 * 8 + 1 + 4 + user.map_or(0, <[u8]>::len) + record.data.len(),
    );
    plain.extend_from_slice(record.key.as_bytes());
    plain.extend_from_slice(&record.id.to_bytes());
    plain.extend_from_slice(&record.created_at.as_millis().to_be_bytes());
    plain.extend_from_slice(&state.issued_at.as_millis().to_be_bytes());
    plain.extend_from_slice(&state.absolute_at.as_millis().to_be_bytes());
    match user {
        None => plain.push(0),
        Some(u) => {
            plain.push(1);
            let len = u32::try_from(u.len())
                .map_err(|_| Error::InvalidInput("user name too long to seal".into()))?;
            plain.extend_from_slice(&len.to_be_bytes());
            plain.extend_from_slice(u);
        }
    }
    plain.extend_from_slice(&record.data);
    let sealed = ring.seal_with(COOKIE_FORMAT, |header| aad(header, name), &plain)?;
    Ok(URL_SAFE_NO_PAD.encode(sealed))
}

/// Opens a cookie value made by [`seal`] for the same cookie name. `None`
/// for anything that is not exactly that: wrong name, retired key, any
/// change, truncation or extension.
pub(crate) fn open(ring: &KeyRing, name: &str, value: &str) -> Option<Opened> {
    // A value longer than any session could seal is refused unread.
    if value.len() > MAX_CHUNKS * BROWSER_COOKIE_LIMIT {
        return None;
    }
    let sealed = URL_SAFE_NO_PAD.decode(value).ok()?;
    if sealed.len() < SEAL_OVERHEAD {
        return None;
    }
    let plain = ring
        .open_with(COOKIE_FORMAT, |header| aad(header, name), &sealed)
        .ok()?;
    let mut r = plain.as_slice();
    let mut take = |n: usize| -> Option<&[u8]> {
        if r.len() < n {
            return None;
        }
        let (head, rest) = r.split_at(n);
        r = rest;
        Some(head)
    };
    let key = SessionKey::from_slice(take(32)?)?;
    let id = SessionId::from_bytes(take(16)?.try_into().ok()?);
    let created_at = Timestamp::from_millis(i64::from_be_bytes(take(8)?.try_into().ok()?));
    let issued_at = Timestamp::from_millis(i64::from_be_bytes(take(8)?.try_into().ok()?));
    let absolute_at = Timestamp::from_millis(i64::from_be_bytes(take(8)?.try_into().ok()?));
    let user = match take(1)? {
        [0] => None,
        [1] => {
            let len = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
            Some(String::from_utf8(take(len)?.to_vec()).ok()?)
        }
        _ => return None,
    };
    let data = r.to_vec();
    Some(Opened {
        record: Record {
            key,
            id,
            user,
            created_at,
            expires_at: Timestamp::EPOCH,
            version: 1,
            data,
        },
        issued_at,
        absolute_at,
    })
}

fn aad(header: &[u8], name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_CONTEXT.len() + header.len() + 8 + name.len());
    aad.extend_from_slice(AAD_CONTEXT);
    aad.extend_from_slice(header);
    aad.extend_from_slice(&(name.len() as u64).to_be_bytes());
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// The store behind a client-side manager: there is none, and every call
/// says so ([`Error::Unsupported`]).
#[derive(Debug)]
pub(crate) struct NoStore;

fn no_store<T>() -> Result<T> {
    Err(Error::Unsupported {
        what: "store access",
        why: "client-side sessions keep their data in the cookie; this manager has no store",
    })
}

#[async_trait::async_trait]
impl SessionStore for NoStore {
    async fn create(&self, _: &Record) -> Result<()> {
        no_store()
    }
    async fn load(&self, _: &SessionKey) -> Result<Option<Record>> {
        no_store()
    }
    async fn update(&self, _: &Record, _: u64) -> Result<()> {
        no_store()
    }
    async fn touch(&self, _: &SessionKey, _: Timestamp) -> Result<()> {
        no_store()
    }
    async fn rotate(&self, _: &SessionKey, _: &Record, _: u64) -> Result<()> {
        no_store()
    }
    async fn delete(&self, _: &SessionKey) -> Result<bool> {
        no_store()
    }
    async fn delete_id(&self, _: &str, _: SessionId) -> Result<bool> {
        no_store()
    }
    async fn list_user(&self, _: &str) -> Result<Vec<Record>> {
        no_store()
    }
    async fn delete_user(&self, _: &str, _: Option<&SessionKey>) -> Result<u64> {
        no_store()
    }
    async fn purge_expired(&self) -> Result<u64> {
        // Nothing is stored, so nothing expires here: a purge task on a
        // client-side manager has nothing to do, which is not an error.
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sides(chunks: usize) -> ClientSide {
        ClientSide::new().chunks(chunks)
    }

    fn join_all(side: &ClientSide, cookies: &[SealedCookie]) -> Option<String> {
        side.join(cookies[0].value(), |i| {
            cookies.get(i).map(SealedCookie::value)
        })
    }

    #[test]
    fn a_value_that_fits_is_one_cookie_of_at_most_the_limit() {
        let side = sides(4);
        let name = "__Host-session";
        let value = "a".repeat(BROWSER_COOKIE_LIMIT - name.len());
        let cookies = side.split(name, &value).unwrap();
        assert_eq!(cookies.len(), 1);
        assert_eq!(join_all(&side, &cookies).as_deref(), Some(value.as_str()));
    }

    #[test]
    fn a_larger_value_splits_into_the_fewest_chunks_each_within_the_limit() {
        let side = sides(4);
        for len in [4097usize, 8000, 8100, 12_000] {
            let value: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            let cookies = side.split("s", &value).unwrap();
            for c in &cookies {
                assert!(c.name().len() + c.value().len() <= BROWSER_COOKIE_LIMIT);
            }
            assert_eq!(cookies.len(), len.div_ceil(BROWSER_COOKIE_LIMIT - 4));
            assert_eq!(cookies[1].name(), "s.1");
            assert_eq!(join_all(&side, &cookies).as_deref(), Some(value.as_str()));
        }
    }

    #[test]
    fn a_value_beyond_every_chunk_is_too_large_with_both_sizes() {
        let err = sides(2).split("s", &"a".repeat(9000)).unwrap_err();
        match err {
            Error::TooLarge { size, limit } => {
                assert_eq!(size, 9001);
                assert!(limit < 2 * BROWSER_COOKIE_LIMIT && limit > 8000, "{limit}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_or_misannounced_chunk_joins_to_nothing() {
        let side = sides(4);
        assert_eq!(side.join("3.abc", |_| None), None);
        assert_eq!(side.join("9.abc", |_| Some("x")), None, "beyond the count");
        assert_eq!(side.join("1.abc", |_| Some("x")), None);
        assert_eq!(side.join("02.abc", |_| Some("x")), None);
        assert_eq!(side.join("x.abc", |_| Some("x")), None);
        assert_eq!(side.join("2.ab", |_| Some("cd")).as_deref(), Some("abcd"));
    }

    #[test]
    fn chunk_names_are_recognised_and_nothing_else() {
        assert_eq!(ClientSide::chunk_index("s", "s.1"), Some(1));
        assert_eq!(ClientSide::chunk_index("s", "s.15"), Some(15));
        for other in [
            "s", "s.", "s.0", "s.01", "s.x", "s.+1", "s.123", "t.1", "s1",
        ] {
            assert_eq!(ClientSide::chunk_index("s", other), None, "{other}");
        }
    }
}
