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
    /// Cookies issued before this are refused.
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

impl Revocations {
    pub(crate) fn new(store: Arc<dyn SessionStore>) -> Self {
        Self { store }
    }

    /// Whether the cookie with credential `key`, of `user`, issued at
    /// `issued_at`, has been revoked. One store read.
    pub(crate) async fn is_revoked(
        &self,
        user: Option<&str>,
        key: &SessionKey,
        issued_at: Timestamp,
        now: Timestamp,
    ) -> Result<bool> {
        match user {
            None => {
                let (record_key, _) = derived(KEY_CONTEXT, key.as_bytes());
                Ok(self.store.load(&record_key).await?.is_some())
            }
            Some(user) => {
                let (record_key, _) = derived(USER_CONTEXT, user.as_bytes());
                let Some(record) = self.store.load(&record_key).await? else {
                    return Ok(false);
                };
                let mut entry = UserEntry::decode(&record.data)?;
                entry.prune(now);
                Ok(issued_at < entry.not_before || entry.revoked.iter().any(|(k, _)| k == key))
            }
        }
    }

    /// Revokes the credential `key` of a cookie of `user` until `until`
    /// (its session's absolute deadline).
    pub(crate) async fn revoke_key(
        &self,
        user: Option<&str>,
        key: &SessionKey,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        if until <= now {
            return Ok(());
        }
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
                    // Revoked already (by a concurrent request of the same
                    // cookie): its entry lasts as long.
                    Ok(()) | Err(Error::AlreadyExists) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Some(user) => {
                self.change_user(user, now, |entry| {
                    if !entry.revoked.iter().any(|(k, _)| k == key) {
                        entry.revoked.push((*key, until));
                    }
                    if entry.revoked.len() > MAX_ENTRIES {
                        // Fold the oldest into not-before: it refuses more
                        // than they did (safe), never less.
                        entry.revoked.sort_by_key(|(_, until)| *until);
                        let excess = entry.revoked.len() - MAX_ENTRIES;
                        let folded: Vec<_> = entry.revoked.drain(..excess).collect();
                        entry.not_before = entry.not_before.max(now);
                        entry.not_before_until = folded
                            .iter()
                            .map(|(_, u)| *u)
                            .fold(entry.not_before_until, Timestamp::max);
                    }
                })
                .await
            }
        }
    }

    /// Refuses every cookie of `user` issued before `not_before`, until `until`
    /// (when the last such cookie's session must have ended).
    pub(crate) async fn revoke_user(
        &self,
        user: &str,
        not_before: Timestamp,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<()> {
        self.change_user(user, now, |entry| {
            entry.not_before = entry.not_before.max(not_before);
            entry.not_before_until = entry.not_before_until.max(until);
        })
        .await
    }

    /// Read-modify-write of `user`'s record with versioned writes.
    async fn change_user(
        &self,
        user: &str,
        now: Timestamp,
        change: impl Fn(&mut UserEntry),
    ) -> Result<()> {
        let (record_key, id) = derived(USER_CONTEXT, user.as_bytes());
        for _ in 0..ATTEMPTS {
            let current = self.store.load(&record_key).await?;
            let (mut entry, version, created_at) = match &current {
                Some(record) => (
                    UserEntry::decode(&record.data)?,
                    record.version,
                    record.created_at,
                ),
                None => (UserEntry::default(), 0, now),
            };
            entry.prune(now);
            change(&mut entry);
            let record = Record {
                key: record_key,
                id,
                user: None,
                created_at,
                expires_at: entry.expires_at().max(now.saturating_add(
                    // A record must outlive the moment it is written.
                    std::time::Duration::from_millis(1),
                )),
                version: version + 1,
                data: entry.encode(),
            };
            let outcome = if current.is_some() {
                self.store.update(&record, version).await
            } else {
                self.store.create(&record).await
            };
            match outcome {
                Ok(()) => return Ok(()),
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
