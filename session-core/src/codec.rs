//! How session data becomes the opaque bytes a store keeps, and back.
//!
//! Plain form, written: `0x03 | framed` (below). Plain form of earlier
//! versions, still read: `0x01 | JSON`. Sealed form: see [`KeyRing`]; its
//! plaintext is a plain form. The first byte is the format version, so the
//! format can change later without guessing.
//!
//! Framed, integers big-endian: `last_seen` i64, flags u8 (bit 0: remember),
//! then the metadata and then the values, each as a u32 count of pairs and
//! each pair as `u32 length | UTF-8 key | u32 length | UTF-8 text`; a value's
//! text is its JSON. Finding the values takes no JSON parsing: a load reads
//! only lengths, and a value is parsed when the request reads it.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::record::Timestamp;
use crate::seal::{Binding, KeyRing, SEALED_FORMAT};
use crate::values::{Borrowed, Builder, Values};

/// The plain form of earlier versions: JSON.
const JSON_FORMAT: u8 = 0x01;
/// The plain form written now: framed.
const FRAMED_FORMAT: u8 = 0x03;
const REMEMBER: u8 = 0x01;

/// What the policy layer keeps inside a record's `data`.
///
/// Values stay as JSON text until asked for: a load parses no value the
/// request does not read, and a save re-serializes none it did not change.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Payload {
    /// The application's values, as JSON text.
    pub values: Values,
    /// Small descriptive metadata (user agent, …) for "active sessions" pages.
    pub meta: BTreeMap<String, String>,
    /// When the session data was last written.
    pub last_seen: Timestamp,
    /// Whether the client asked to be remembered (a persistent cookie).
    pub remember: bool,
}

/// The JSON plain form: `{"v":{values},"m":{meta},"s":last_seen,"r":remember}`.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(rename = "v", borrow)]
    values: Borrowed<'a>,
    #[serde(rename = "m", default)]
    meta: BTreeMap<String, String>,
    #[serde(rename = "s")]
    last_seen: i64,
    #[serde(rename = "r", default)]
    remember: bool,
}

/// Encodes `payload` as last written at `last_seen`, then seals when a key
/// ring is given.
pub(crate) fn encode(
    payload: &Payload,
    last_seen: Timestamp,
    binding: Binding<'_>,
    keys: Option<&KeyRing>,
) -> Result<Vec<u8>> {
    // Sized up front: growing a buffer from empty costs several copies.
    let mut plain = Vec::with_capacity(encoded_len(payload));
    plain.push(FRAMED_FORMAT);
    plain.extend_from_slice(&last_seen.as_millis().to_be_bytes());
    plain.push(if payload.remember { REMEMBER } else { 0 });
    let meta = payload.meta.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    put_pairs(&mut plain, payload.meta.len(), meta)?;
    put_pairs(&mut plain, payload.values.len(), payload.values.iter())?;
    match keys {
        Some(ring) => ring.seal(binding, &plain),
        None => Ok(plain),
    }
}

fn put_len(out: &mut Vec<u8>, n: usize) -> Result<()> {
    let n = u32::try_from(n)
        .map_err(|_| Error::InvalidInput("session data cannot be encoded: too large".into()))?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

fn put_pairs<'a>(
    out: &mut Vec<u8>,
    count: usize,
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<()> {
    put_len(out, count)?;
    for (key, text) in pairs {
        put_len(out, key.len())?;
        out.extend_from_slice(key.as_bytes());
        put_len(out, text.len())?;
        out.extend_from_slice(text.as_bytes());
    }
    Ok(())
}

/// The exact length of the framed plain form of `payload`.
fn encoded_len(payload: &Payload) -> usize {
    // Each pair: two u32 lengths and the two texts.
    let values: usize = payload
        .values
        .iter()
        .map(|(k, v)| 8 + k.len() + v.len())
        .sum();
    let meta: usize = payload
        .meta
        .iter()
        .map(|(k, v)| 8 + k.len() + v.len())
        .sum();
    // Format byte, last_seen, flags, two counts.
    1 + 8 + 1 + 4 + 4 + values + meta
}

/// Opens (when sealed) and decodes. With a key ring, unsealed data is refused:
/// whoever can write to the store must not be able to plant session data.
pub(crate) fn decode(
    bytes: &[u8],
    binding: Binding<'_>,
    keys: Option<&KeyRing>,
) -> Result<Payload> {
    match (bytes.first(), keys) {
        (Some(&FRAMED_FORMAT | &JSON_FORMAT), None) => decode_plain(bytes),
        (Some(&FRAMED_FORMAT | &JSON_FORMAT), Some(_)) => Err(Error::decode(
            "session data (stored unsealed, but sealing is required)",
        )),
        (Some(&SEALED_FORMAT), Some(ring)) => decode_plain(&ring.open(binding, bytes)?),
        (Some(&SEALED_FORMAT), None) => Err(Error::decode(
            "session data (sealed, but no key ring is configured)",
        )),
        (Some(_), _) => Err(Error::decode("session data (unknown format version)")),
        (None, _) => Err(Error::decode("session data (empty)")),
    }
}

fn decode_plain(bytes: &[u8]) -> Result<Payload> {
    match bytes.split_first() {
        Some((&FRAMED_FORMAT, framed)) => decode_framed(framed),
        Some((&JSON_FORMAT, json)) => decode_json(json),
        _ => Err(Error::decode("session data (unknown format version)")),
    }
}

fn decode_framed(bytes: &[u8]) -> Result<Payload> {
    let mut r = Reader(bytes);
    let last_seen = i64::from_be_bytes(r.array()?);
    let remember = match r.array::<1>()? {
        [0] => false,
        [REMEMBER] => true,
        _ => return Err(Error::decode("session data (unknown flags)")),
    };
    let mut meta = BTreeMap::new();
    for _ in 0..r.len()? {
        let key = r.text()?;
        meta.insert(key.to_owned(), r.text()?.to_owned());
    }
    let count = r.len()?;
    // Each pair takes at least 8 bytes: a damaged count allocates no more
    // than the data could hold.
    let mut values = Builder::with_capacity(count.min(r.0.len() / 8), r.0.len());
    for _ in 0..count {
        let key = r.bytes()?;
        values.push(key, r.bytes()?);
    }
    if !r.0.is_empty() {
        return Err(Error::decode("session data (bytes after the end)"));
    }
    Ok(Payload {
        values: values
            .finish()
            .map_err(|e| Error::decode_with("session data", e))?,
        meta,
        last_seen: Timestamp::from_millis(last_seen),
        remember,
    })
}

/// Reads the framed form front to back; anything short is a `Decode` error.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(Error::decode("session data (truncated)"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len(&mut self) -> Result<usize> {
        Ok(u32::from_be_bytes(self.array()?) as usize)
    }

    /// Bytes with their length in front.
    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }

    fn text(&mut self) -> Result<&'a str> {
        std::str::from_utf8(self.bytes()?).map_err(|e| Error::decode_with("session data", e))
    }
}

fn decode_json(bytes: &[u8]) -> Result<Payload> {
    let json = std::str::from_utf8(bytes).map_err(|e| Error::decode_with("session data", e))?;
    let wire: Wire<'_> =
        serde_json::from_str(json).map_err(|e| Error::decode_with("session data", e))?;
    Ok(Payload {
        values: Values::from_parsed(json, wire.values),
        meta: wire.meta,
        last_seen: Timestamp::from_millis(wire.last_seen),
        remember: wire.remember,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::token::{SessionId, SessionKey};
    use serde_json::Value;

    const KEY: SessionKey = SessionKey::from_bytes([5; 32]);

    fn b(id: &SessionId) -> Binding<'_> {
        Binding::new(&KEY, id, None, Timestamp::EPOCH)
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(".*", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn payload() -> impl Strategy<Value = Payload> {
        (
            proptest::collection::btree_map(".*", json_value(), 0..8),
            proptest::collection::btree_map(".*", ".*", 0..3),
            any::<i64>(),
            any::<bool>(),
        )
            .prop_map(|(values, meta, s, remember)| {
                let mut held = Values::default();
                for (k, v) in values {
                    let v: Value = v;
                    held.insert(
                        &k.as_str().into(),
                        serde_json::to_string(&v).expect("json").into(),
                    );
                }
                Payload {
                    values: held,
                    meta,
                    last_seen: Timestamp::from_millis(s),
                    remember,
                }
            })
    }

    /// The JSON written before values were held as spans: a serde struct
    /// of the same fields, in the same order.
    #[derive(serde::Serialize)]
    struct SerdeWire<'a> {
        v: BTreeMap<&'a str, &'a serde_json::value::RawValue>,
        m: &'a BTreeMap<String, String>,
        s: i64,
        r: bool,
    }

    fn ring() -> KeyRing {
        KeyRing::new(1, [42u8; 32])
    }

    proptest! {
        #[test]
        fn plain_encode_decode_round_trips(p in payload()) {
            let id = SessionId::generate();
            let bytes = encode(&p, p.last_seen, b(&id), None).unwrap();
            prop_assert_eq!(bytes[0], FRAMED_FORMAT);
            prop_assert_eq!(bytes.len(), encoded_len(&p));
            prop_assert_eq!(decode(&bytes, b(&id), None).unwrap(), p);
        }

        /// Sessions stored by earlier versions (the JSON form, as serde
        /// wrote it), plain or sealed, still load.
        #[test]
        fn the_json_form_of_earlier_versions_still_decodes(p in payload()) {
            let id = SessionId::generate();
            let raw: Vec<(String, Box<serde_json::value::RawValue>)> = p
                .values
                .iter()
                .map(|(k, v)| (k.to_owned(), serde_json::value::RawValue::from_string(v.to_owned()).unwrap()))
                .collect();
            let wire = SerdeWire {
                v: raw.iter().map(|(k, v)| (k.as_str(), &**v)).collect(),
                m: &p.meta,
                s: p.last_seen.as_millis(),
                r: p.remember,
            };
            let mut json = vec![JSON_FORMAT];
            serde_json::to_writer(&mut json, &wire).unwrap();
            prop_assert_eq!(decode(&json, b(&id), None).unwrap(), p.clone());
            let sealed = ring().seal(b(&id), &json).unwrap();
            prop_assert_eq!(decode(&sealed, b(&id), Some(&ring())).unwrap(), p);
        }

        /// Every cut-short framed form, and one with a byte too many, is a
        /// `Decode` error.
        #[test]
        fn a_framed_form_cut_short_or_overlong_is_rejected(p in payload()) {
            let id = SessionId::generate();
            let bytes = encode(&p, p.last_seen, b(&id), None).unwrap();
            for end in 1..bytes.len() {
                let decoded = decode(&bytes[..end], b(&id), None);
                prop_assert!(matches!(decoded, Err(Error::Decode { .. })), "{}: {:?}", end, decoded);
            }
            let mut longer = bytes.clone();
            longer.push(0);
            let decoded = decode(&longer, b(&id), None);
            prop_assert!(matches!(decoded, Err(Error::Decode { .. })), "{:?}", decoded);
        }

        #[test]
        fn sealed_encode_decode_round_trips(p in payload()) {
            let id = SessionId::generate();
            let bytes = encode(&p, p.last_seen, b(&id), Some(&ring())).unwrap();
            prop_assert_eq!(bytes[0], SEALED_FORMAT);
            prop_assert_eq!(decode(&bytes, b(&id), Some(&ring())).unwrap(), p);
        }

        #[test]
        fn any_single_byte_corruption_of_sealed_data_is_rejected(
            p in payload(),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let id = SessionId::generate();
            let mut bytes = encode(&p, p.last_seen, b(&id), Some(&ring())).unwrap();
            let i = at.index(bytes.len());
            bytes[i] ^= flip;
            let decoded = decode(&bytes, b(&id), Some(&ring()));
            prop_assert!(matches!(decoded, Err(Error::Decode { .. })), "expected Decode, got {:?}", decoded);
        }

        /// Unsealed data has no integrity check (seal it for that), but damage
        /// never panics: it decodes to something or is a `Decode` error.
        #[test]
        fn corrupt_plain_data_never_panics(
            p in payload(),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let id = SessionId::generate();
            let mut bytes = encode(&p, p.last_seen, b(&id), None).unwrap();
            let i = at.index(bytes.len());
            bytes[i] ^= flip;
            match decode(&bytes, b(&id), None) {
                Ok(_) | Err(Error::Decode { .. }) => {}
                Err(other) => prop_assert!(false, "unexpected error {other:?}"),
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let id = SessionId::generate();
            let _ = decode(&bytes, b(&id), None);
            let _ = decode(&bytes, b(&id), Some(&ring()));
        }
    }

    /// One framed pair, written by hand.
    fn framed_pair(key: &[u8], value: &[u8]) -> Vec<u8> {
        framed(&[(key.to_vec(), value.to_vec())])
    }

    /// Framed data holding `pairs` as given, written by hand.
    fn framed(pairs: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        let mut bytes = vec![FRAMED_FORMAT];
        bytes.extend(0i64.to_be_bytes());
        bytes.push(0);
        bytes.extend(0u32.to_be_bytes());
        bytes.extend((pairs.len() as u32).to_be_bytes());
        for (key, value) in pairs {
            for text in [key, value] {
                bytes.extend((text.len() as u32).to_be_bytes());
                bytes.extend(text);
            }
        }
        bytes
    }

    /// Keys and values cut from one run of text at arbitrary byte offsets,
    /// so that many cuts fall inside a character; sometimes arbitrary bytes.
    fn cut_pairs() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
        let text = proptest::collection::vec(any::<char>(), 0..12)
            .prop_map(|cs| cs.into_iter().collect::<String>().into_bytes());
        let bytes = proptest::collection::vec(any::<u8>(), 0..24);
        (
            prop_oneof![4 => text, 1 => bytes],
            proptest::collection::vec(any::<proptest::sample::Index>(), 0..8),
        )
            .prop_map(|(run, cuts)| {
                let mut at: Vec<usize> = cuts.iter().map(|i| i.index(run.len() + 1)).collect();
                at.sort_unstable();
                let mut texts = Vec::new();
                let mut from = 0;
                for to in at.into_iter().chain([run.len()]) {
                    texts.push(run[from..to].to_vec());
                    from = to;
                }
                // An odd count would leave a key without a value: it gets
                // an empty one (with an even count, the extra is dropped).
                texts.push(Vec::new());
                texts
                    .chunks_exact(2)
                    .map(|p| (p[0].clone(), p[1].clone()))
                    .collect()
            })
    }

    proptest! {
        #[test]
        fn framed_data_loads_exactly_when_each_key_and_value_is_utf8(pairs in cut_pairs()) {
            let id = SessionId::generate();
            let each_utf8 = pairs
                .iter()
                .all(|(k, v)| std::str::from_utf8(k).is_ok() && std::str::from_utf8(v).is_ok());
            match decode(&framed(&pairs), b(&id), None) {
                Ok(p) => {
                    prop_assert!(each_utf8, "loaded texts that are not UTF-8: {pairs:?}");
                    // One entry per distinct key, the last of equal keys
                    // winning, and every text reads back whole.
                    let distinct: std::collections::HashSet<&Vec<u8>> =
                        pairs.iter().map(|(k, _)| k).collect();
                    prop_assert_eq!(p.values.len(), distinct.len());
                    for (i, (k, v)) in pairs.iter().enumerate() {
                        let later = pairs[i + 1..].iter().any(|(k2, _)| k2 == k);
                        let key = std::str::from_utf8(k).unwrap();
                        if !later {
                            prop_assert_eq!(p.values.get(key), Some(std::str::from_utf8(v).unwrap()));
                        }
                    }
                }
                Err(e) => {
                    prop_assert!(!each_utf8, "refused UTF-8 texts: {pairs:?}: {e}");
                    prop_assert!(matches!(e, Error::Decode { .. }), "{e:?}");
                }
            }
        }
    }

    #[test]
    fn a_character_split_between_a_key_and_its_value_is_rejected() {
        let id = SessionId::generate();
        let whole = decode(&framed_pair(b"k\xC3\xA9", b"1"), b(&id), None).unwrap();
        assert_eq!(whole.values.get("k\u{e9}"), Some("1"));
        // Together the texts are UTF-8 ("k\u{e9}1"); each alone is not.
        let split = decode(&framed_pair(b"k\xC3", b"\xA91"), b(&id), None);
        assert!(matches!(split, Err(Error::Decode { .. })), "{split:?}");
    }

    #[test]
    fn a_key_or_value_that_is_not_utf8_is_rejected() {
        let id = SessionId::generate();
        for (key, value) in [
            (&b"k"[..], &b"\"\xFF\""[..]),
            (b"\xC3", b"1"),
            (b"k", b"\xE2\x82"),
        ] {
            let bad = decode(&framed_pair(key, value), b(&id), None);
            assert!(matches!(bad, Err(Error::Decode { .. })), "{bad:?}");
        }
    }

    #[test]
    fn unknown_flags_are_rejected_and_a_value_is_parsed_only_when_read() {
        let id = SessionId::generate();
        let mut p = Payload::default();
        p.values.insert(&"broken".into(), "{not json".into());
        let mut bytes = encode(&p, p.last_seen, b(&id), None).unwrap();
        // A value is not parsed at load: a damaged one fails when read.
        let loaded = decode(&bytes, b(&id), None).unwrap();
        assert_eq!(loaded.values.get("broken"), Some("{not json"));
        assert!(serde_json::from_str::<Value>(loaded.values.get("broken").unwrap()).is_err());
        bytes[9] = 0x02;
        assert!(matches!(
            decode(&bytes, b(&id), None),
            Err(Error::Decode { .. })
        ));
    }

    #[test]
    fn sealing_required_refuses_plain_and_plain_refuses_sealed() {
        let id = SessionId::generate();
        let p = Payload::default();
        let plain = encode(&p, p.last_seen, b(&id), None).unwrap();
        let sealed = encode(&p, p.last_seen, b(&id), Some(&ring())).unwrap();
        assert!(matches!(
            decode(&plain, b(&id), Some(&ring())),
            Err(Error::Decode { .. })
        ));
        assert!(matches!(
            decode(&sealed, b(&id), None),
            Err(Error::Decode { .. })
        ));
        assert!(matches!(
            decode(&[], b(&id), None),
            Err(Error::Decode { .. })
        ));
        assert!(matches!(
            decode(&[9, 1, 2], b(&id), None),
            Err(Error::Decode { .. })
        ));
    }
}
