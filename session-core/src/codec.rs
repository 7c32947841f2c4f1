//! How session data becomes the opaque bytes a store keeps, and back.
//!
//! Plain form: `0x01 | JSON`. Sealed form: see [`KeyRing`]; its plaintext is
//! the plain form. The first byte is the format version, so the format can
//! change later without guessing.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::record::Timestamp;
use crate::seal::{Binding, KeyRing, SEALED_FORMAT};
use crate::values::{Borrowed, Values};

const PLAIN_FORMAT: u8 = 0x01;

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

/// The plain form's JSON: `{"v":{values},"m":{meta},"s":last_seen,"r":remember}`.
#[derive(Deserialize)]
struct Wire<V, M> {
    #[serde(rename = "v")]
    values: V,
    #[serde(rename = "m", default)]
    meta: M,
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
    let mut plain = Vec::with_capacity(encoded_len_hint(payload));
    plain.push(PLAIN_FORMAT);
    write_wire(&mut plain, payload, last_seen)
        .map_err(|e| Error::InvalidInput(format!("session data cannot be encoded: {e}")))?;
    match keys {
        Some(ring) => ring.seal(binding, &plain),
        None => Ok(plain),
    }
}

/// Appends the JSON of [`Wire`]. Values are written back as the JSON text
/// they are held as (each one JSON value, by construction).
fn write_wire(
    out: &mut Vec<u8>,
    payload: &Payload,
    last_seen: Timestamp,
) -> serde_json::Result<()> {
    out.extend_from_slice(b"{\"v\":");
    payload.values.write_json(out)?;
    out.extend_from_slice(b",\"m\":");
    serde_json::to_writer(&mut *out, &payload.meta)?;
    out.extend_from_slice(b",\"s\":");
    serde_json::to_writer(&mut *out, &last_seen.as_millis())?;
    out.extend_from_slice(if payload.remember {
        b",\"r\":true}"
    } else {
        b",\"r\":false}"
    });
    Ok(())
}

/// About how long the plain form of `payload` is: exact but for escapes in
/// keys and metadata.
fn encoded_len_hint(payload: &Payload) -> usize {
    // `"k":v,` per value, `"k":"v",` per metadata entry.
    let values: usize = payload
        .values
        .iter()
        .map(|(k, v)| k.len() + v.len() + 4)
        .sum();
    let meta: usize = payload
        .meta
        .iter()
        .map(|(k, v)| k.len() + v.len() + 6)
        .sum();
    // Format byte, field names, braces, the timestamp and the flag.
    values + meta + 64
}

/// Opens (when sealed) and decodes. With a key ring, unsealed data is refused:
/// whoever can write to the store must not be able to plant session data.
pub(crate) fn decode(
    bytes: &[u8],
    binding: Binding<'_>,
    keys: Option<&KeyRing>,
) -> Result<Payload> {
    match (bytes.first(), keys) {
        (Some(&PLAIN_FORMAT), None) => decode_plain(bytes),
        (Some(&PLAIN_FORMAT), Some(_)) => Err(Error::decode(
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
    if bytes.first() != Some(&PLAIN_FORMAT) {
        return Err(Error::decode("session data (unknown format version)"));
    }
    let json =
        std::str::from_utf8(&bytes[1..]).map_err(|e| Error::decode_with("session data", e))?;
    let wire: Wire<Borrowed<'_>, BTreeMap<String, String>> =
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
                    held.insert(&k, serde_json::to_string(&v).expect("json").into());
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
            prop_assert_eq!(bytes[0], PLAIN_FORMAT);
            prop_assert_eq!(decode(&bytes, b(&id), None).unwrap(), p);
        }

        /// Stored data stays readable both ways: the bytes are exactly what
        /// serde writes for the same fields.
        #[test]
        fn the_plain_form_is_what_serde_writes_for_the_same_fields(p in payload()) {
            let id = SessionId::generate();
            let bytes = encode(&p, p.last_seen, b(&id), None).unwrap();
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
            let mut expected = vec![PLAIN_FORMAT];
            serde_json::to_writer(&mut expected, &wire).unwrap();
            prop_assert_eq!(bytes, expected);
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
