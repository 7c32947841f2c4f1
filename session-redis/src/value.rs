//! How a record is laid out in one Redis string.
//!
//! One string per record means a load is a plain `GET` and a create a plain
//! `SET NX PXAT`: the cheapest commands Redis has, with no per-field replies
//! to parse. The scripts read the few header fields they need at fixed
//! offsets (see `PARSE` in `scripts.rs`, which must agree with this file).
//!
//! Layout, integers big-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | kind: `L` live, `P` pending rotation target (cluster), `T` tombstone (cluster) |
//! | 8 | version |
//! | 8 | created, ms since the epoch |
//! | 8 | expires, ms since the epoch ([`EXPIRES_AT`]) |
//! | 16 | session id |
//! | 4 + n | link: for `P`, the name of the key the rotation started from |
//! | 1 (+ 4 + n) | 0 no user, or 1 then the user's length and bytes |
//! | rest | data, byte for byte |
//!
//! A tombstone is `T` followed by the name of the key its session moved to.
//! A revoked marker is `R` alone: cluster `delete_user` leaves it under a key
//! that its user's index named but that held nothing yet (a rotation or a
//! create in flight), so that the key can no longer go live.

use session_core::{Error, Record, Result, SessionId, SessionKey, Timestamp};

/// Offset of the 8 expiry bytes, which `touch` overwrites in place.
pub(crate) const EXPIRES_AT: usize = 17;
/// Offset of the 16 id bytes, which `rotate` compares.
pub(crate) const ID_AT: usize = 25;
/// Offset of the link's length.
pub(crate) const LINK_AT: usize = 41;
/// The shortest live or pending record: empty link, no user, empty data.
pub(crate) const MIN_LEN: usize = LINK_AT + 4 + 1;
const _: () = assert!(EXPIRES_AT + 8 == ID_AT && ID_AT + 16 == LINK_AT);

/// What a stored string is.
#[derive(Debug, PartialEq)]
pub(crate) enum Stored {
    /// A live record.
    Live(Record),
    /// A rotation target not yet made live; `old` is the key it came from.
    Pending {
        /// The name of the rotation's old key.
        old: String,
    },
    /// A rotated-away key pointing at its successor.
    Tombstone {
        /// The name of the key the session moved to.
        new: String,
    },
    /// A key its user's sessions were revoked under before it went live.
    Revoked,
}

/// `record` as a live string, or as a pending rotation target that started
/// from the key named `pending_from`.
pub(crate) fn encode(record: &Record, pending_from: Option<&str>) -> Result<Vec<u8>> {
    let link = pending_from.unwrap_or("").as_bytes();
    let user = record.user.as_deref().map(str::as_bytes);
    let len = MIN_LEN + link.len() + user.map_or(0, |u| 4 + u.len()) + record.data.len();
    let mut out = Vec::with_capacity(len);
    out.push(if pending_from.is_some() { b'P' } else { b'L' });
    out.extend_from_slice(&record.version.to_be_bytes());
    out.extend_from_slice(&record.created_at.as_millis().to_be_bytes());
    out.extend_from_slice(&record.expires_at.as_millis().to_be_bytes());
    out.extend_from_slice(&record.id.to_bytes());
    out.extend_from_slice(&length(link.len(), "the key prefix")?);
    out.extend_from_slice(link);
    match user {
        None => out.push(0),
        Some(u) => {
            out.push(1);
            out.extend_from_slice(&length(u.len(), "the user name")?);
            out.extend_from_slice(u);
        }
    }
    out.extend_from_slice(&record.data);
    Ok(out)
}

fn length(n: usize, what: &str) -> Result<[u8; 4]> {
    u32::try_from(n)
        .map(u32::to_be_bytes)
        .map_err(|_| Error::InvalidInput(format!("{what} is longer than 4 GiB")))
}

/// The tombstone left under a rotated-away key.
pub(crate) fn tombstone(new: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + new.len());
    out.push(b'T');
    out.extend_from_slice(new.as_bytes());
    out
}

/// Whether `v` is a record, live or pending (not a tombstone).
pub(crate) fn is_record(v: &[u8]) -> bool {
    matches!(v.first(), Some(b'L' | b'P'))
}

/// Whether `v` is a live record.
pub(crate) fn is_live(v: &[u8]) -> bool {
    v.first() == Some(&b'L')
}

/// For a pending rotation target, the name of the key it came from.
pub(crate) fn pending_from(v: &[u8]) -> Option<&str> {
    if v.first() != Some(&b'P') {
        return None;
    }
    let mut r = Reader { v, at: LINK_AT };
    std::str::from_utf8(r.sized().ok()?).ok()
}

/// Reads a stored string found under `key`'s name.
pub(crate) fn decode(key: SessionKey, v: &[u8]) -> Result<Stored> {
    match v.first() {
        Some(b'R') if v.len() == 1 => return Ok(Stored::Revoked),
        Some(b'T') => {
            return Ok(Stored::Tombstone {
                new: utf8(&v[1..])?.to_owned(),
            })
        }
        Some(b'L' | b'P') if v.len() >= MIN_LEN => {}
        _ => return Err(Error::decode("redis session record (not a record)")),
    }
    let mut r = Reader { v, at: 1 };
    let version = u64::from_be_bytes(r.array()?);
    let created = i64::from_be_bytes(r.array()?);
    debug_assert_eq!(r.at, EXPIRES_AT);
    let expires = i64::from_be_bytes(r.array()?);
    debug_assert_eq!(r.at, ID_AT);
    let id: [u8; 16] = r.array()?;
    debug_assert_eq!(r.at, LINK_AT);
    let link = r.sized()?;
    if v[0] == b'P' {
        return Ok(Stored::Pending {
            old: utf8(link)?.to_owned(),
        });
    }
    let user = match r.array::<1>()? {
        [0] => None,
        [1] => Some(utf8(r.sized()?)?.to_owned()),
        _ => return Err(Error::decode("redis session record (user flag)")),
    };
    Ok(Stored::Live(Record {
        key,
        id: SessionId::from_bytes(id),
        user,
        created_at: Timestamp::from_millis(created),
        expires_at: Timestamp::from_millis(expires),
        version,
        data: v[r.at..].to_vec(),
    }))
}

fn utf8(bytes: &[u8]) -> Result<&str> {
    std::str::from_utf8(bytes).map_err(|e| Error::decode_with("redis session record (text)", e))
}

struct Reader<'a> {
    v: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.v.len())
            .ok_or_else(|| Error::decode("redis session record (truncated)"))?;
        let out = &self.v[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn sized(&mut self) -> Result<&'a [u8]> {
        let n = u32::from_be_bytes(self.array()?);
        self.take(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_core::SessionToken;

    fn record(user: Option<&str>, data: &[u8]) -> Record {
        Record {
            key: SessionToken::generate().key(),
            id: SessionId::generate(),
            user: user.map(str::to_owned),
            created_at: Timestamp::from_millis(1_700_000_000_123),
            expires_at: Timestamp::from_millis(-5),
            version: u64::MAX,
            data: data.to_vec(),
        }
    }

    #[test]
    fn live_records_round_trip_every_field() {
        for r in [
            record(None, b""),
            record(Some(""), b"x"),
            record(Some("ålice"), &[0, 255, b'T', b'L']),
        ] {
            let v = encode(&r, None).unwrap();
            assert_eq!(decode(r.key, &v).unwrap(), Stored::Live(r));
        }
    }

    #[test]
    fn the_expiry_sits_where_touch_overwrites_it() {
        let r = record(Some("bob"), b"data");
        let mut v = encode(&r, None).unwrap();
        v[EXPIRES_AT..EXPIRES_AT + 8].copy_from_slice(&42i64.to_be_bytes());
        let Stored::Live(back) = decode(r.key, &v).unwrap() else {
            panic!("still live")
        };
        assert_eq!(back.expires_at, Timestamp::from_millis(42));
        assert_eq!(back.data, b"data");
        assert_eq!(&v[ID_AT..ID_AT + 16], &r.id.to_bytes());
    }

    #[test]
    fn pending_targets_and_tombstones_name_the_other_key() {
        let r = record(Some("bob"), b"data");
        let v = encode(&r, Some("p:s:old")).unwrap();
        assert_eq!(
            decode(r.key, &v).unwrap(),
            Stored::Pending {
                old: "p:s:old".into()
            }
        );
        assert_eq!(
            decode(r.key, &tombstone("p:s:new")).unwrap(),
            Stored::Tombstone {
                new: "p:s:new".into()
            }
        );
    }

    #[test]
    fn damaged_strings_are_decode_errors_not_panics() {
        let r = record(Some("carol"), b"payload");
        let v = encode(&r, None).unwrap();
        for cut in 0..v.len() - r.data.len() {
            assert!(
                matches!(decode(r.key, &v[..cut]), Err(Error::Decode { .. })),
                "cut at {cut}"
            );
        }
        let mut flag = v.clone();
        flag[LINK_AT + 4] = 7;
        assert!(matches!(decode(r.key, &flag), Err(Error::Decode { .. })));
        let mut huge = v;
        huge[LINK_AT..LINK_AT + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(decode(r.key, &huge), Err(Error::Decode { .. })));
        assert!(decode(r.key, b"OK").is_err());
    }
}
