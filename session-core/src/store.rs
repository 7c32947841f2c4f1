//! The storage contract every backend implements.

use async_trait::async_trait;

use crate::error::Result;
use crate::record::{Record, Timestamp};
use crate::token::{SessionId, SessionKey};

/// Where sessions live: opaque bytes plus the few fields a store must index.
///
/// A store knows nothing of cookies, serde values, timeouts or encryption; all
/// policy lives in [`SessionManager`](crate::SessionManager). That keeps backends
/// small and lets `session-test-suite` check a backend completely: it has one case
/// or more for every sentence under each `# Contract` heading below.
///
/// "Now" is the store's own clock (the database server's, for a server). A record
/// is *live* while `now < expires_at`; at or after `expires_at` it is invisible to
/// every method, exactly as if it were absent, and may be physically removed at
/// any time.
///
/// Principals (`Record::user`) follow one rule on every backend,
/// [`check_user_name`](crate::check_user_name): 1 to
/// [`MAX_USER_LEN`](crate::MAX_USER_LEN) bytes, no NUL, compared byte for
/// byte. `create`, `update` and `rotate` refuse a record that breaks it with
/// [`Error::InvalidInput`](crate::Error::InvalidInput) and change nothing.
///
/// The trait is object safe and used as `Arc<dyn SessionStore>`. Every method is
/// required: there are no defaults that are convenient for callers and wrong for
/// a particular backend.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use session_core::{MemoryStore, Record, SessionId, SessionStore, SessionToken, Timestamp};
///
/// let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new());
/// let now = Timestamp::now();
/// let record = Record {
///     key: SessionToken::generate().key(),
///     id: SessionId::generate(),
///     user: Some("alice".into()),
///     created_at: now,
///     expires_at: now.saturating_add(Duration::from_secs(3600)),
///     version: 1,
///     data: b"opaque".to_vec(),
/// };
/// store.create(&record).await?;
/// assert_eq!(store.load(&record.key).await?, Some(record.clone()));
/// assert_eq!(store.list_user("alice").await?.len(), 1);
/// # Ok::<(), session_core::Error>(())
/// # }).unwrap();
/// ```
#[async_trait]
pub trait SessionStore: std::fmt::Debug + Send + Sync + 'static {
    /// Inserts a new record.
    ///
    /// # Contract
    /// - [`Error::InvalidInput`](crate::Error::InvalidInput) if `record.user`
    ///   breaks the user-name rule ([`Record::check_create`]); nothing is stored.
    /// - Inserts `record` exactly as given (every field round-trips; `version`
    ///   is stored as given, normally 1).
    /// - Returns [`Error::AlreadyExists`](crate::Error::AlreadyExists) if a live
    ///   record holds `record.key`. Never overwrites a live record.
    /// - An expired record under the same key does not count as taken: it is
    ///   replaced.
    /// - The record appears in the index of `record.user`, if any.
    async fn create(&self, record: &Record) -> Result<()>;

    /// Reads a record.
    ///
    /// # Contract
    /// - Returns the live record under `key`, every field exactly as last written
    ///   (timestamps to the millisecond, `data` byte for byte).
    /// - Returns `None` when there is no record or when `expires_at <= now`.
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>>;

    /// Replaces a record if nobody else changed it since it was read.
    ///
    /// # Contract
    /// - `record.version` must be `expected_version + 1`, and `record.user`
    ///   must follow the user-name rule ([`Record::check_update`]), else
    ///   [`Error::InvalidInput`](crate::Error::InvalidInput) and nothing changes.
    /// - Replaces the live record under `record.key` only if its stored version
    ///   equals `expected_version`; otherwise
    ///   [`Error::Conflict`](crate::Error::Conflict) and nothing changes.
    /// - [`Error::NotFound`](crate::Error::NotFound) if no live record holds the
    ///   key: a deleted, revoked or expired session is never brought back by a
    ///   late write.
    /// - Every field is written as given: timestamps round-trip exactly, and so
    ///   does every byte of `data`.
    /// - Changing `user` moves the record from the old user's index to the new
    ///   one's (or out of the index, for `None`).
    async fn update(&self, record: &Record, expected_version: u64) -> Result<()>;

    /// Extends the deadline of a live record.
    ///
    /// # Contract
    /// - Sets `expires_at` of the live record under `key` to the later of its
    ///   stored deadline and `expires_at`, in one atomic step, and changes
    ///   nothing else: no data rewrite, no version bump.
    /// - Never moves a deadline earlier: a touch that arrives late (planned
    ///   before another request's touch, landing after it) changes nothing.
    ///   This is what keeps a slow request from shortening a session that a
    ///   later request extended.
    /// - Returns `Ok(())` for a live record whether or not the deadline moved.
    /// - [`Error::NotFound`](crate::Error::NotFound) if no live record holds the
    ///   key.
    async fn touch(&self, key: &SessionKey, expires_at: Timestamp) -> Result<()>;

    /// Atomically moves a record to a new key (session fixation defence).
    ///
    /// # Contract
    /// - `record.key` is the new key and must differ from `old_key`;
    ///   `record.version` must be `expected_version + 1`; `record.user` must
    ///   follow the user-name rule ([`Record::check_rotate`]). Otherwise
    ///   [`Error::InvalidInput`](crate::Error::InvalidInput) and nothing changes.
    /// - The same error rules as [`update`](Self::update) apply to the record
    ///   under `old_key`: [`Error::NotFound`](crate::Error::NotFound) if it is not
    ///   live, [`Error::Conflict`](crate::Error::Conflict) if its version is not
    ///   `expected_version`.
    /// - `record.id` must be the stored record's id, else
    ///   [`Error::InvalidInput`](crate::Error::InvalidInput).
    /// - [`Error::AlreadyExists`](crate::Error::AlreadyExists) if a live record
    ///   holds the new key.
    /// - On success, in one atomic step: `old_key` no longer loads and `record`
    ///   loads under the new key. No reader ever sees both or neither.
    /// - The user index follows, as for `update`.
    async fn rotate(
        &self,
        old_key: &SessionKey,
        record: &Record,
        expected_version: u64,
    ) -> Result<()>;

    /// Removes a record.
    ///
    /// # Contract
    /// - Removes the record under `key` and its index entries.
    /// - Returns `true` if a live record was removed, `false` if there was none
    ///   (absent or already expired).
    async fn delete(&self, key: &SessionKey) -> Result<bool>;

    /// Removes one session of a user by its stable id, wherever its key is now.
    ///
    /// # Contract
    /// - Deletes the live record whose `id` is `id` and whose `user` equals
    ///   `user` exactly, and its index entries. Returns `true` if it deleted
    ///   one, `false` if `user` has no live session with that id (never
    ///   existed, already ended, expired, or it belongs to another user).
    /// - A concurrent `rotate` of that session cannot make it miss: the
    ///   session is found under its old key or its new one, and a rotation
    ///   that has not yet landed fails with
    ///   [`Error::NotFound`](crate::Error::NotFound). After `true`, no key of
    ///   the session loads, and a late `update`, `touch` or `rotate` answers
    ///   `NotFound`.
    /// - Never deletes a record of another user or another session.
    /// - A store that cannot settle a session that keeps moving within a
    ///   bounded number of steps returns a transient
    ///   [`Error::Backend`](crate::Error::Backend), never a wrong `false`.
    async fn delete_id(&self, user: &str, id: SessionId) -> Result<bool>;

    /// Lists a user's live sessions.
    ///
    /// # Contract
    /// - Returns every live record whose `user` equals `user` exactly (bytewise,
    ///   no case folding or trimming), in no particular order.
    /// - Never returns expired, deleted or moved-away records.
    async fn list_user(&self, user: &str) -> Result<Vec<Record>>;

    /// Revokes a user's sessions ("log out everywhere").
    ///
    /// # Contract
    /// - Deletes every live record of `user`, except the one under `keep` when
    ///   `keep` is given ("log out other devices").
    /// - Returns how many live records it deleted.
    /// - A revoked session is never brought back by a late `update`, `touch` or
    ///   `rotate` (they answer `NotFound`).
    async fn delete_user(&self, user: &str, keep: Option<&SessionKey>) -> Result<u64>;

    /// Removes expired records and their index entries.
    ///
    /// # Contract
    /// - Removes every record with `expires_at <= now`, and no live record.
    /// - Returns how many records this call removed. A store whose server expires
    ///   records natively may already have removed some, so the count can be
    ///   lower than the number that expired.
    /// - Its cost grows with the number expired, not with the number stored.
    ///   (A store may file a record for purging earlier than its deadline,
    ///   so that extending a deadline costs no index write; then purging
    ///   also visits records whose filing time came due, once each, and
    ///   files them at their deadline.)
    async fn purge_expired(&self) -> Result<u64>;
}
