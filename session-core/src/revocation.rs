//! The optional revocation list of client-side sessions, kept in any
//! [`SessionStore`] as ordinary records (see
//! [`ClientSide::revocation_list`](crate::ClientSide::revocation_list)).
//!
//! Two kinds of record, both with no principal (so they never show in a
//! user's session list) and a key derived from what they describe under a
//! context of their own (so they can never collide with a session's key,
//! which is the hash of 32 random bytes):
//!
//! - per user, `SHA-256("session-core/revoked/user/v1" | user)`: the
//!   not-before time and the revoked credentials of that user's cookies,
//!   each until its session's absolute deadline. Checking a logged-in
//!   cookie reads this one record.
//! - per anonymous credential, `SHA-256("session-core/revoked/key/v1" |
//!   key)`: that credential is revoked. Checking an anonymous cookie reads
//!   this one record.
//!
//! Records expire with their last entry, so the store's purge removes them.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::record::{Record, Timestamp};
use crate::store::SessionStore;
use crate::token::{SessionId, SessionKey};

const USER_CONTEXT: &[u8] = b"session-core/revoked/user/v1";
const KEY_CONTEXT: &[u8] = b"session-core/revoked/key/v1";
const USER_FORMAT: u8 = 0x01;
const KEY_FORMAT: u8 = 0x02;
/// Revoked credentials kept per user before the oldest fold into not-before.
const MAX_ENTRIES: usize = 512;
/// Read-modify-write attempts on a user's record before giving up.
const ATTEMPTS: usize = 32;

#[derive(Clone)]
pub(crate) struct Revocations {
    store: Arc<dyn SessionStore>,
}

/// A user's revocations, decoded.
#[derive(Debug, Default, PartialEq)]
struct UserEntry {
    /// Cookies issued up to this are refused (`EPOCH`: none).
    not_before: Timestamp,
    /// Until when `not_before` matters (the last session it could refuse).
    not_before_until: Timestamp,
    /// Revoked credentials and until when they matter.
    revoked: Vec<(SessionKey, Timestamp)>,
}

impl UserEntry {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 8 + 8 + 4 + self.revoked.len() * 40);
        out.push(USER_FORMAT);
        out.extend_from_slice(&self.not_before.as_millis().to_be_bytes());
        out.extend_from_slice(&self.not_before_until.as_millis().to_be_bytes());
        out.extend_from_slice(&(self.revoked.len() as u32).to_be_bytes());
        for (key, until) in &self.revoked {
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(&until.as_millis().to_be_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let bad = || Error::decode("client-side revocation record");
        let (&format, rest) = bytes.split_first().ok_or_else(bad)?;
        if format != USER_FORMAT || rest.len() < 20 {
            return Err(bad());
        }
        let i64_at = |at: usize| {
            Timestamp::from_millis(i64::from_be_bytes(
                rest[at..at + 8].try_into().expect("8 bytes"),
            ))
        };
        let count = u32::from_be_bytes(rest[16..20].try_into().expect("4 bytes")) as usize;
        let entries = &rest[20..];
        if entries.len() != count.checked_mul(40).ok_or_else(bad)? {
            return Err(bad());
        }
        let revoked = entries
            .chunks_exact(40)
            .map(|e| {
                let key = SessionKey::from_slice(&e[..32]).expect("32 bytes");
                let until = i64::from_be_bytes(e[32..].try_into().expect("8 bytes"));
                (key, Timestamp::from_millis(until))
            })
            .collect();
        Ok(Self {
            not_before: i64_at(0),
            not_before_until: i64_at(8),
            revoked,
        })
    }

    /// Drops what no longer matters at `now`.
    fn prune(&mut self, now: Timestamp) {
        self.revoked.retain(|(_, until)| *until > now);
        if self.not_before_until <= now {
            self.not_before = Timestamp::EPOCH;
            self.not_before_until = Timestamp::EPOCH;
        }
    }

    /// Whether a cookie with credential `key` issued at `issued_at` is
    /// refused: listed, or issued up to the not-before time.
    fn refuses(&self, key: &SessionKey, issued_at: Timestamp) -> bool {
        issued_at <= self.not_before || self.revoked.iter().any(|(k, _)| k == key)
    }

    /// When the record may go: after its last entry.
    fn expires_at(&self) -> Timestamp {
        self.revoked
            .iter()
            .map(|(_, until)| *until)
            .fold(self.not_before_until, Timestamp::max)
    }
}

fn derived(context: &[u8], what: &[u8]) -> (SessionKey, SessionId) {
    let hash: [u8; 32] = Sha256::new()
        .chain_update(context)
        .chain_update((what.len() as u64).to_be_bytes())
        .chain_update(what)
        .finalize()
        .into();
    let id = SessionId::from_bytes(hash[..16].try_into().expect("16 bytes"));
    (SessionKey::from_bytes(hash), id)
}

/// What a revocation found and wrote.
#[derive(Debug)]
pub(crate) struct Revoked {
    /// The credential was refused already (revoked, or issued up to the
    /// user's not-before time) before this call.
    pub already: bool,
    /// The user's record as written (none for an anonymous credential).
    pub record: Option<Record>,
}

/// The instant a revocation list compares "issued at" against, for a cookie
/// whose not-before status must not count (the session "log out
/// everywhere" keeps).
pub(crate) const NEVER_REFUSED: Timestamp = Timestamp::from_millis(i64::MAX);

impl Revocations {
    pub(crate) fn new(store: Arc<dyn SessionStore>) -> Self {
        Self { store }
    }

    /// Whether the cookie with credential `key`, of `user`, issued at
    /// `issued_at`, is refused. One store read. For a logged-in cookie also
    /// returns the user's record as read (`Some(None)`: absent), for a later
    /// revocation in the same request to start from.
    ///
    /// A user's record that does not decode (damaged in the store) refuses
    /// every cookie of that user: the list fails closed.
    pub(crate) async fn check(
        &self,
        user: Option<&str>,
        key: &SessionKey,
        issued_at: Timestamp,
        now: Timestamp,
    ) -> Result<(bool, Option<Option<Record>>)> {
        match user {
            None => {
                let (record_key, _) = derived(KEY_CONTEXT, key.as_bytes());
                Ok((self.store.load(&record_key).await?.is_some(), None))
            }
            Some(user) => {
                let (record_key, _) = derived(USER_CONTEXT, user.as_bytes());
                let record = self.store.load(&record_key).await?;
                let refused = match &record {
                    None => false,
                    Some(record) => match UserEntry::decode(&record.data) {
                        Ok(mut entry) => {
                            entry.prune(now);
                            entry.refuses(key, issued_at)
                        }
                        Err(_) => true,
                    },
                };
                Ok((refused, Some(record)))
            }
        }
    }

    /// Revokes the credential `key` of a cookie of `user`, issued at
    /// `issued_at`, until `until` (its session's absolute deadline). `known`:
    /// the user's record as this request read it, if it did.
    pub(crate) async fn revoke_key(
        &self,
        user: Option<&str>,
        key: &SessionKey,
        issued_at: Timestamp,
        until: Timestamp,
        now: Timestamp,
        known: Option<Option<Record>>,
    ) -> Result<Revoked> {
        let until = until.max(now.saturating_add(std::time::Duration::from_millis(1)));
        match user {
            None => {
                let (record_key, id) = derived(KEY_CONTEXT, key.as_bytes());
                let record = Record {
                    key: record_key,
                    id,
                    user: None,
                    created_at: now,
                    expires_at: until,
                    version: 1,
                    data: vec![KEY_FORMAT],
                };
                match self.store.create(&record).await {
                    Ok(()) => Ok(Revoked {
                        already: false,
                        record: None,
                    }),
                    // Revoked already (by a concurrent request of the same
                    // cookie): its entry lasts as long.
                    Err(Error::AlreadyExists) => Ok(Revoked {
                        already: true,
                        record: None,
                    }),
                    Err(e) => Err(e),
                }
            }
            Some(user) => {
                let (already, record) = self
                    .change_user(user, now, known, |entry| {
                        let already = entry.refuses(key, issued_at);
                        if !entry.revoked.iter().any(|(k, _)| k == key) {
                            entry.revoked.push((*key, until));
                        }
                        if entry.revoked.len() > MAX_ENTRIES {
                            // Fold the oldest into not-before: it refuses
                            // more than they did (safe), never less.
                            entry.revoked.sort_by_key(|(_, until)| *until);
                            let excess = entry.revoked.len() - MAX_ENTRIES;
                            let folded: Vec<_> = entry.revoked.drain(..excess).collect();
                            entry.not_before = entry.not_before.max(now);
                            entry.not_before_until = folded
                                .iter()
                                .map(|(_, u)| *u)
                                .fold(entry.not_before_until, Timestamp::max);
                        }
                        already
                    })
                    .await?;
                Ok(Revoked {
                    already,
                    record: Some(record),
                })
            }
        }
    }

    /// Refuses every cookie of `user` issued up to `not_before`, until
    /// `until` (when the last such cookie's session must have ended).
    /// Returns the user's record as written.
    pub(crate) async fn revoke_user(
        &self,
        user: &str,
        not_before: Timestamp,
        until: Timestamp,
        now: Timestamp,
        known: Option<Option<Record>>,
    ) -> Result<Record> {
        let ((), record) = self
            .change_user(user, now, known, |entry| {
                entry.not_before = entry.not_before.max(not_before);
                entry.not_before_until = entry.not_before_until.max(until);
            })
            .await?;
        Ok(record)
    }

    /// Read-modify-write of `user`'s record with versioned writes; the first
    /// attempt starts from `known` when given. Returns what `change` said on
    /// the attempt that landed, and the record written.
    async fn change_user<R>(
        &self,
        user: &str,
        now: Timestamp,
        mut known: Option<Option<Record>>,
        mut change: impl FnMut(&mut UserEntry) -> R,
    ) -> Result<(R, Record)> {
        let (record_key, id) = derived(USER_CONTEXT, user.as_bytes());
        for _ in 0..ATTEMPTS {
            let current = match known.take() {
                Some(current) => current,
                None => self.store.load(&record_key).await?,
            };
            let (mut entry, version, created_at) = match &current {
                Some(record) => {
                    let entry = UserEntry::decode(&record.data).unwrap_or_else(|_| {
                        // Damaged: fail closed. Everything it may have
                        // refused is refused, until it would have expired.
                        UserEntry {
                            not_before: now,
                            not_before_until: record.expires_at,
                            revoked: Vec::new(),
                        }
                    });
                    (entry, record.version, record.created_at)
                }
                None => (UserEntry::default(), 0, now),
            };
            entry.prune(now);
            let said = change(&mut entry);
            let record = Record {
                key: record_key,
                id,
                user: None,
                created_at,
                // A record must outlive the moment it is written.
                expires_at: entry
                    .expires_at()
                    .max(now.saturating_add(std::time::Duration::from_millis(1))),
                version: version + 1,
                data: entry.encode(),
            };
            let outcome = if current.is_some() {
                self.store.update(&record, version).await
            } else {
                self.store.create(&record).await
            };
            match outcome {
                Ok(()) => return Ok((said, record)),
                // Another request changed it (or created it, or it expired
                // meanwhile): read again.
                Err(Error::Conflict | Error::AlreadyExists | Error::NotFound) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_entry_round_trips_and_damage_is_a_decode_error() {
        let entry = UserEntry {
            not_before: Timestamp::from_millis(5),
            not_before_until: Timestamp::from_millis(9),
            revoked: vec![(SessionKey::from_bytes([7; 32]), Timestamp::from_millis(11))],
        };
        let bytes = entry.encode();
        assert_eq!(UserEntry::decode(&bytes).unwrap(), entry);
        for cut in 0..bytes.len() {
            assert!(UserEntry::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn record_keys_of_users_and_credentials_never_coincide() {
        let key = SessionKey::from_bytes([1; 32]);
        assert_ne!(
            derived(USER_CONTEXT, key.as_bytes()).0,
            derived(KEY_CONTEXT, key.as_bytes()).0
        );
    }
}
