//! Optional encryption of session data at rest: [`KeyRing`].

use std::collections::BTreeMap;
use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

use crate::error::{Error, Result};
use crate::token::SessionId;

/// First byte of a sealed envelope.
pub(crate) const SEALED_FORMAT: u8 = 0x02;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + 4;
const TAG_LEN: usize = 16;
const AAD_CONTEXT: &[u8] = b"session-core/seal/v1";

/// Keys that seal session data with XChaCha20-Poly1305.
///
/// New data is sealed with the newest key (the highest id); data sealed under
/// any key still in the ring opens. Rotate by adding a key with a higher id,
/// and drop an old key once every session sealed under it has expired (its
/// sessions then fail to decode and count as gone).
///
/// Each envelope is `0x02 | key id (u32, big endian) | 24-byte random nonce |
/// ciphertext and tag`. The associated data binds the header and the session's
/// [`SessionId`], so a ciphertext copied into another session's record, or a
/// header edited to name another key, does not open.
///
/// ```
/// use session_core::KeyRing;
///
/// let ring = KeyRing::new(1, KeyRing::generate_key())
///     .with_key(2, KeyRing::generate_key())
///     .unwrap();
/// assert_eq!(ring.newest_id(), 2);
/// ```
#[derive(Clone)]
pub struct KeyRing {
    keys: BTreeMap<u32, XChaCha20Poly1305>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KeyRing {
    /// A ring holding one key.
    pub fn new(id: u32, key: [u8; 32]) -> Self {
        let mut keys = BTreeMap::new();
        keys.insert(id, XChaCha20Poly1305::new(Key::from_slice(&key)));
        Self { keys }
    }

    /// Adds a key; [`Error::InvalidInput`] if the id is already in the ring.
    pub fn with_key(mut self, id: u32, key: [u8; 32]) -> Result<Self> {
        if self.keys.contains_key(&id) {
            return Err(Error::InvalidInput(format!(
                "key id {id} is already in the key ring"
            )));
        }
        self.keys
            .insert(id, XChaCha20Poly1305::new(Key::from_slice(&key)));
        Ok(self)
    }

    /// A fresh random 256-bit key from the OS CSPRNG.
    ///
    /// # Panics
    /// If the operating system cannot provide randomness.
    pub fn generate_key() -> [u8; 32] {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS random number generator failed");
        key
    }

    /// The id new data is sealed under.
    pub fn newest_id(&self) -> u32 {
        *self
            .keys
            .keys()
            .next_back()
            .expect("a key ring always holds a key")
    }

    /// Seals `plain` for session `id` under the newest key.
    pub(crate) fn seal(&self, id: &SessionId, plain: &[u8]) -> Result<Vec<u8>> {
        let (key_id, cipher) = self
            .keys
            .iter()
            .next_back()
            .expect("a key ring always holds a key");
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| Error::backend("os-rng", e.to_string()))?;
        let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + plain.len() + TAG_LEN);
        out.push(SEALED_FORMAT);
        out.extend_from_slice(&key_id.to_be_bytes());
        let aad = aad(&out[..HEADER_LEN], id);
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .map_err(|_| Error::InvalidInput("session data too large to seal".into()))?;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens an envelope made by [`KeyRing::seal`] for the same session id.
    pub(crate) fn open(&self, id: &SessionId, envelope: &[u8]) -> Result<Vec<u8>> {
        if envelope.len() < HEADER_LEN + NONCE_LEN + TAG_LEN || envelope[0] != SEALED_FORMAT {
            return Err(Error::decode(
                "sealed session data (truncated or not sealed)",
            ));
        }
        let (header, rest) = envelope.split_at(HEADER_LEN);
        let key_id = u32::from_be_bytes(header[1..].try_into().expect("4 bytes"));
        let cipher = self
            .keys
            .get(&key_id)
            .ok_or_else(|| Error::decode("sealed session data (unknown key id)"))?;
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad(header, id),
                },
            )
            .map_err(|_| Error::decode("sealed session data (authentication failed)"))
    }
}

fn aad(header: &[u8], id: &SessionId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_CONTEXT.len() + header.len() + 16);
    aad.extend_from_slice(AAD_CONTEXT);
    aad.extend_from_slice(header);
    aad.extend_from_slice(id.as_uuid().as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ring() -> KeyRing {
        KeyRing::new(7, [7u8; 32])
    }

    #[test]
    fn sealed_under_an_old_key_opens_after_a_new_key_is_added() {
        let id = SessionId::generate();
        let old = ring();
        let sealed = old.seal(&id, b"hello").unwrap();
        let newer = old.with_key(8, [8u8; 32]).unwrap();
        assert_eq!(newer.open(&id, &sealed).unwrap(), b"hello");
        let resealed = newer.seal(&id, b"hello").unwrap();
        assert_eq!(
            &resealed[1..5],
            &8u32.to_be_bytes(),
            "new writes use the newest key"
        );
        assert!(
            ring().open(&id, &resealed).is_err(),
            "a ring without key 8 cannot open it"
        );
    }

    #[test]
    fn ciphertext_moved_to_another_session_does_not_open() {
        let sealed = ring().seal(&SessionId::generate(), b"secret").unwrap();
        let err = ring().open(&SessionId::generate(), &sealed).unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{err:?}");
    }

    #[test]
    fn duplicate_key_id_is_invalid_input() {
        assert!(matches!(
            ring().with_key(7, [1u8; 32]),
            Err(Error::InvalidInput(_))
        ));
    }

    proptest! {
        #[test]
        fn seal_open_round_trips(plain in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let id = SessionId::generate();
            let sealed = ring().seal(&id, &plain).unwrap();
            prop_assert_eq!(ring().open(&id, &sealed).unwrap(), plain);
        }

        #[test]
        fn any_single_byte_corruption_is_a_decode_error(
            plain in proptest::collection::vec(any::<u8>(), 0..256),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let id = SessionId::generate();
            let mut sealed = ring().seal(&id, &plain).unwrap();
            let i = at.index(sealed.len());
            sealed[i] ^= flip;
            let err = ring().open(&id, &sealed).unwrap_err();
            prop_assert!(matches!(err, Error::Decode { .. }), "expected Decode, got {:?}", err);
        }

        #[test]
        fn any_truncation_is_a_decode_error(
            plain in proptest::collection::vec(any::<u8>(), 0..256),
            at in any::<prop::sample::Index>(),
        ) {
            let id = SessionId::generate();
            let sealed = ring().seal(&id, &plain).unwrap();
            let cut = at.index(sealed.len());
            let err = ring().open(&id, &sealed[..cut]).unwrap_err();
            prop_assert!(matches!(err, Error::Decode { .. }), "expected Decode, got {:?}", err);
        }
    }
}
