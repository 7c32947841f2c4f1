//! The on-disk layout: record values and index keys.
//!
//! Record value: `0x02 | id (16) | created_at (i64 BE) | expires_at (i64 BE) |
//! version (u64 BE) | user flag (0 none, 1 some) | [user length (u32 BE) | user]
//! | filed_at (i64 BE) | data`, where `filed_at` is the time of the record's
//! expiry-index entry (at or before `expires_at`). Format `0x01`, without
//! `filed_at`, is still read: its entry is at `expires_at`.
//!
//! User index key: `user length (u32 BE) | user | session key (32)`; the length
//! prefix keeps `"al"` from matching `"alice"`.
//!
//! Expiry index key: `expires_at (i64, sign bit flipped, BE) | session key (32)`,
//! so byte order is time order.

use session_core::{Error, Record, SessionId, SessionKey, Timestamp};

const FORMAT_V1: u8 = 0x01;
const FORMAT: u8 = 0x02;
const FIXED: usize = 1 + 16 + 8 + 8 + 8 + 1;

/// `r` as stored, with its expiry-index entry at `filed_at`.
pub(crate) fn encode_record(r: &Record, filed_at: Timestamp) -> Vec<u8> {
    let user_len = r.user.as_ref().map_or(0, |u| 4 + u.len());
    let mut out = Vec::with_capacity(FIXED + user_len + 8 + r.data.len());
    out.push(FORMAT);
    out.extend_from_slice(&r.id.to_bytes());
    out.extend_from_slice(&r.created_at.as_millis().to_be_bytes());
    out.extend_from_slice(&r.expires_at.as_millis().to_be_bytes());
    out.extend_from_slice(&r.version.to_be_bytes());
    match &r.user {
        None => out.push(0),
        Some(user) => {
            out.push(1);
            out.extend_from_slice(&user_len_bytes(user));
            out.extend_from_slice(user.as_bytes());
        }
    }
    out.extend_from_slice(&filed_at.as_millis().to_be_bytes());
    out.extend_from_slice(&r.data);
    out
}

/// A stored record and the time of its expiry-index entry.
pub(crate) fn decode_record(key: SessionKey, bytes: &[u8]) -> Result<(Record, Timestamp), Error> {
    let corrupt = || Error::decode("sled session record");
    if bytes.len() < FIXED || !matches!(bytes[0], FORMAT | FORMAT_V1) {
        return Err(corrupt());
    }
    let id = uuid_from(&bytes[1..17]);
    let created_at = Timestamp::from_millis(i64::from_be_bytes(arr(&bytes[17..25])));
    let expires_at = Timestamp::from_millis(i64::from_be_bytes(arr(&bytes[25..33])));
    let version = u64::from_be_bytes(arr(&bytes[33..41]));
    let (user, rest) = match bytes[41] {
        0 => (None, &bytes[FIXED..]),
        1 => {
            let rest = &bytes[FIXED..];
            let len_bytes = rest.get(..4).ok_or_else(corrupt)?;
            let len = usize::try_from(u32::from_be_bytes(arr(len_bytes))).map_err(|_| corrupt())?;
            let user = rest.get(4..4 + len).ok_or_else(corrupt)?;
            let user = String::from_utf8(user.to_vec())
                .map_err(|e| Error::decode_with("sled session record (user)", e))?;
            (Some(user), &rest[4 + len..])
        }
        _ => return Err(corrupt()),
    };
    let (filed_at, rest) = if bytes[0] == FORMAT {
        let filed = rest.get(..8).ok_or_else(corrupt)?;
        (
            Timestamp::from_millis(i64::from_be_bytes(arr(filed))),
            &rest[8..],
        )
    } else {
        (expires_at, rest)
    };
    let record = Record {
        key,
        id,
        user,
        created_at,
        expires_at,
        version,
        data: rest.to_vec(),
    };
    Ok((record, filed_at))
}

fn uuid_from(bytes: &[u8]) -> SessionId {
    SessionId::from_bytes(arr(bytes))
}

fn arr<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

fn user_len_bytes(user: &str) -> [u8; 4] {
    // Users longer than 4 GiB cannot reach here: a record that large is refused
    // by sled long before.
    u32::try_from(user.len()).unwrap_or(u32::MAX).to_be_bytes()
}

/// The prefix of every user-index key of `user`.
pub(crate) fn user_prefix(user: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + user.len());
    out.extend_from_slice(&user_len_bytes(user));
    out.extend_from_slice(user.as_bytes());
    out
}

pub(crate) fn user_key(user: &str, key: &SessionKey) -> Vec<u8> {
    let mut out = user_prefix(user);
    out.extend_from_slice(key.as_bytes());
    out
}

/// The session key at the end of a user-index key.
pub(crate) fn key_of_index_entry(entry: &[u8]) -> Option<SessionKey> {
    entry
        .len()
        .checked_sub(32)
        .and_then(|at| SessionKey::from_slice(&entry[at..]))
}

pub(crate) fn time_bytes(t: Timestamp) -> [u8; 8] {
    // Flip the sign bit so that unsigned byte order is signed time order.
    ((t.as_millis() as u64) ^ (1 << 63)).to_be_bytes()
}

pub(crate) fn time_of_expiry_entry(entry: &[u8]) -> Option<Timestamp> {
    let raw: [u8; 8] = entry.get(..8)?.try_into().ok()?;
    Some(Timestamp::from_millis(
        (u64::from_be_bytes(raw) ^ (1 << 63)) as i64,
    ))
}

pub(crate) fn expiry_key(t: Timestamp, key: &SessionKey) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..8].copy_from_slice(&time_bytes(t));
    out[8..].copy_from_slice(key.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_core::SessionToken;

    fn sample(user: Option<&str>, data: &[u8]) -> Record {
        Record {
            key: SessionToken::generate().key(),
            id: SessionId::generate(),
            user: user.map(str::to_owned),
            created_at: Timestamp::from_millis(-5),
            expires_at: Timestamp::from_millis(1_700_000_000_123),
            version: u64::MAX,
            data: data.to_vec(),
        }
    }

    #[test]
    fn records_round_trip() {
        for r in [
            sample(None, b""),
            sample(Some(""), b"x"),
            sample(Some("é \"q\""), &[0, 255]),
        ] {
            let filed = Timestamp::from_millis(42);
            assert_eq!(
                decode_record(r.key, &encode_record(&r, filed)).unwrap(),
                (r, filed)
            );
        }
    }

    #[test]
    fn format_1_records_are_filed_at_their_deadline() {
        let r = sample(Some("alice"), b"data");
        let mut v1 = encode_record(&r, Timestamp::EPOCH);
        v1[0] = FORMAT_V1;
        let filed_at = FIXED + 4 + "alice".len();
        v1.drain(filed_at..filed_at + 8);
        assert_eq!(
            decode_record(r.key, &v1).unwrap(),
            (r.clone(), r.expires_at)
        );
    }

    #[test]
    fn every_truncation_is_a_decode_error_or_a_shorter_payload_never_a_panic() {
        let r = sample(Some("alice"), b"payload");
        let bytes = encode_record(&r, r.expires_at);
        for cut in 0..bytes.len() {
            let _ = decode_record(r.key, &bytes[..cut]);
        }
        assert!(decode_record(r.key, &bytes[..FIXED - 1]).is_err());
        assert!(decode_record(r.key, &bytes[..FIXED + 2]).is_err());
    }

    #[test]
    fn expiry_keys_sort_in_time_order_across_zero() {
        let k = SessionToken::generate().key();
        let times = [-1_000_i64, -1, 0, 1, 1_000];
        let keys: Vec<_> = times
            .iter()
            .map(|&t| expiry_key(Timestamp::from_millis(t), &k))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for (&t, key) in times.iter().zip(&keys) {
            assert_eq!(time_of_expiry_entry(key), Some(Timestamp::from_millis(t)));
        }
    }
}
