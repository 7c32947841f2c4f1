//! What a store keeps: [`Record`] and its [`Timestamp`]s.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::token::{SessionId, SessionKey};

/// A point in time: whole milliseconds since the Unix epoch, UTC.
///
/// Every store must round-trip it exactly, which is why it is milliseconds and
/// not nanoseconds: PostgreSQL keeps microseconds, Redis expiry keeps
/// milliseconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Self = Self(0);

    /// From milliseconds since the Unix epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// From a [`SystemTime`], truncated to the millisecond (clamped to `i64`).
    pub fn from_system_time(time: SystemTime) -> Self {
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Self(i64::try_from(after.as_millis()).unwrap_or(i64::MAX)),
            Err(before) => Self(
                i64::try_from(before.duration().as_millis())
                    .map(|m| -m)
                    .unwrap_or(i64::MIN),
            ),
        }
    }

    /// This instant as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        let magnitude = Duration::from_millis(self.0.unsigned_abs());
        if self.0 >= 0 {
            UNIX_EPOCH + magnitude
        } else {
            UNIX_EPOCH - magnitude
        }
    }

    /// The wall clock now, to the millisecond.
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// `self + d`, saturating.
    pub fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(duration_millis(d)))
    }

    /// `self - d`, saturating.
    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(duration_millis(d)))
    }

    /// Time from `earlier` to `self`; zero when `earlier` is later.
    pub fn since(self, earlier: Self) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({}ms)", self.0)
    }
}

/// One stored session, as stores see it: opaque bytes plus the fields they index.
///
/// Stores know nothing of cookies, serde, timeouts or encryption; `data` is
/// produced (and possibly sealed) by the policy layer and must be kept byte for
/// byte.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    /// SHA-256 of the session token; the primary key.
    pub key: SessionKey,
    /// Stable id, the same across key rotations.
    pub id: SessionId,
    /// The principal this session belongs to, if logged in; indexed.
    pub user: Option<String>,
    /// When the session was first stored.
    pub created_at: Timestamp,
    /// The effective deadline: the record is invisible at or after this instant.
    pub expires_at: Timestamp,
    /// 1 on create, +1 on every successful `update` or `rotate`.
    pub version: u64,
    /// Encoded (possibly sealed) session data; opaque to stores.
    pub data: Vec<u8>,
}

/// `data` shows as its length and first bytes in hex: a payload can be a
/// mebibyte, and a failing assertion or a log line should stay readable.
impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("key", &self.key)
            .field("id", &self.id)
            .field("user", &self.user)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .field("version", &self.version)
            .field("data", &Bytes(&self.data))
            .finish()
    }
}

/// Bytes as `N bytes: 0a1b2c…` (at most 16 shown).
struct Bytes<'a>(&'a [u8]);

impl fmt::Debug for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 16;
        write!(f, "{} bytes", self.0.len())?;
        if !self.0.is_empty() {
            f.write_str(": ")?;
            for b in self.0.iter().take(SHOWN) {
                write!(f, "{b:02x}")?;
            }
            if self.0.len() > SHOWN {
                f.write_str("…")?;
            }
        }
        Ok(())
    }
}

impl Record {
    /// Whether the record is live at `now` (`now < expires_at`).
    pub fn is_live_at(&self, now: Timestamp) -> bool {
        now < self.expires_at
    }

    /// The argument check every store's `create` starts with: the principal,
    /// if any, follows [`check_user_name`].
    pub fn check_create(&self) -> Result<()> {
        match &self.user {
            Some(user) => check_user_name(user),
            None => Ok(()),
        }
    }

    /// The argument check every store's `update` starts with:
    /// `self.version` must be `expected_version + 1`, else
    /// [`Error::InvalidInput`]; the principal follows [`check_user_name`].
    pub fn check_update(&self, expected_version: u64) -> Result<()> {
        self.check_create()?;
        if expected_version.checked_add(1) != Some(self.version) {
            return Err(Error::InvalidInput(format!(
                "record.version must be expected_version + 1 (got {} after {expected_version})",
                self.version
            )));
        }
        Ok(())
    }

    /// The argument check every store's `rotate` starts with: the version
    /// rule of [`check_update`](Self::check_update), and a new key that
    /// differs from `old_key`.
    pub fn check_rotate(&self, old_key: &SessionKey, expected_version: u64) -> Result<()> {
        self.check_update(expected_version)?;
        if *old_key == self.key {
            return Err(Error::InvalidInput(
                "rotate needs a new key different from the old one".into(),
            ));
        }
        Ok(())
    }
}

/// The longest principal a session may carry, in bytes of UTF-8.
///
/// Long enough for any e-mail address (254 bytes) or opaque subject id, and
/// short enough that every backend can index it (a PostgreSQL B-tree entry
/// holds about 2,700 bytes; a MySQL index key 3,072).
pub const MAX_USER_LEN: usize = 1024;

/// The rule for principals (user names), the same on every backend: at least
/// one byte, at most [`MAX_USER_LEN`] bytes, and no NUL character (U+0000),
/// which PostgreSQL text cannot hold. Anything else is kept and compared
/// byte for byte: no trimming, case folding or Unicode normalisation, so
/// `"é"` written precomposed (NFC) and decomposed (NFD) are two users.
///
/// [`Error::InvalidInput`] says which part of the rule was broken; the name
/// itself is not repeated (it may be an e-mail address).
///
/// ```
/// use session_core::check_user_name;
///
/// assert!(check_user_name("alice@example.com").is_ok());
/// assert!(check_user_name("").is_err());
/// assert!(check_user_name("a\0b").is_err());
/// ```
pub fn check_user_name(user: &str) -> Result<()> {
    if user.is_empty() {
        return Err(Error::InvalidInput("a user name must not be empty".into()));
    }
    if user.len() > MAX_USER_LEN {
        return Err(Error::InvalidInput(format!(
            "a user name must be at most {MAX_USER_LEN} bytes (got {})",
            user.len()
        )));
    }
    if user.contains('\0') {
        return Err(Error::InvalidInput(
            "a user name must not contain a NUL character (U+0000)".into(),
        ));
    }
    Ok(())
}

/// One record per session id, the newest version of each.
///
/// For `list_user` implementations that read a user's records one by one:
/// a rotation that lands between two reads shows the session under both its
/// old and its new key, and the contract lists it once, as it is now.
pub fn newest_per_session(records: impl IntoIterator<Item = Record>) -> Vec<Record> {
    let mut by_id: HashMap<SessionId, Record> = HashMap::new();
    for r in records {
        match by_id.get(&r.id) {
            Some(seen) if seen.version >= r.version => {}
            _ => {
                by_id.insert(r.id, r);
            }
        }
    }
    by_id.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_per_session_keeps_one_record_per_id_the_highest_version() {
        let base = Record {
            key: SessionKey::from_bytes([1; 32]),
            id: SessionId::from_bytes([7; 16]),
            user: Some("alice".into()),
            created_at: Timestamp::EPOCH,
            expires_at: Timestamp::from_millis(10),
            version: 1,
            data: Vec::new(),
        };
        let rotated = Record {
            key: SessionKey::from_bytes([2; 32]),
            version: 2,
            ..base.clone()
        };
        let other = Record {
            id: SessionId::from_bytes([8; 16]),
            key: SessionKey::from_bytes([3; 32]),
            ..base.clone()
        };
        for order in [
            vec![base.clone(), rotated.clone(), other.clone()],
            vec![rotated.clone(), other.clone(), base.clone()],
        ] {
            let mut kept = newest_per_session(order);
            kept.sort_by_key(|r| r.version);
            kept.sort_by_key(|r| r.id);
            assert_eq!(kept, vec![rotated.clone(), other.clone()]);
        }
    }

    #[test]
    fn debug_shows_data_as_its_length_and_a_short_hex_prefix() {
        let mut r = Record {
            key: SessionKey::from_bytes([1; 32]),
            id: SessionId::from_bytes([7; 16]),
            user: None,
            created_at: Timestamp::EPOCH,
            expires_at: Timestamp::from_millis(10),
            version: 1,
            data: (0..=255).collect(),
        };
        let shown = format!("{r:?}");
        assert!(
            shown.contains("data: 256 bytes: 000102030405060708090a0b0c0d0e0f…"),
            "{shown}"
        );
        assert!(!shown.contains("255"), "no decimal dump: {shown}");
        r.data.clear();
        assert!(format!("{r:?}").contains("data: 0 bytes }"));
    }

    #[test]
    fn timestamp_round_trips_through_system_time_at_millisecond_precision() {
        for ms in [0, 1, -1, 1_700_000_000_123, -86_400_001] {
            let t = Timestamp::from_millis(ms);
            assert_eq!(Timestamp::from_system_time(t.to_system_time()), t);
        }
    }

    #[test]
    fn timestamp_arithmetic_saturates() {
        let t = Timestamp::from_millis(i64::MAX - 1);
        assert_eq!(
            t.saturating_add(Duration::from_secs(1)).as_millis(),
            i64::MAX
        );
        let early = Timestamp::from_millis(5);
        assert_eq!(early.since(Timestamp::from_millis(10)), Duration::ZERO);
        assert_eq!(
            Timestamp::from_millis(10).since(early),
            Duration::from_millis(5)
        );
    }
}
