//! Helpers shared by the cases: record builders and time margins.

use std::time::Duration;

use session_core::{Record, SessionId, SessionToken, Timestamp};

/// A deadline comfortably in the future, for records that must stay live.
pub const LIVE_FOR: Duration = Duration::from_secs(3600);

/// A live record for `user` with a small payload, version 1.
pub fn new_record(user: Option<&str>) -> Record {
    let now = Timestamp::now();
    Record {
        key: SessionToken::generate().key(),
        id: SessionId::generate(),
        user: user.map(str::to_owned),
        created_at: now,
        expires_at: now.saturating_add(LIVE_FOR),
        version: 1,
        data: b"{\"k\":1}".to_vec(),
    }
}

/// A record whose deadline passed an hour ago.
pub fn expired_record(user: Option<&str>) -> Record {
    let mut r = new_record(user);
    r.created_at = Timestamp::now().saturating_sub(2 * LIVE_FOR);
    r.expires_at = Timestamp::now().saturating_sub(LIVE_FOR);
    r
}

/// `record` with the next version and `data` replaced.
pub fn next_version(record: &Record, data: &[u8]) -> Record {
    let mut r = record.clone();
    r.version += 1;
    r.data = data.to_vec();
    r
}
