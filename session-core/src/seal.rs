//! Optional encryption of session data at rest: [`KeyRing`].

use std::collections::BTreeMap;
use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};

use crate::error::{Error, Result};
use crate::record::{Record, Timestamp};
use crate::token::{SessionId, SessionKey};

/// What a sealed envelope is bound to besides its header: the record's key
/// (the hash of the token that reaches it), the session id, and the record
/// fields that policy trusts but stores keep in the clear (the principal,
/// indexed by stores, and `created_at`, which the absolute timeout counts
/// from). Someone who can write to the store but holds no key can neither
/// move a ciphertext to another session, nor re-key a record to the hash of a
/// token of their own choosing, nor change who is logged in or when the
/// session began: the envelope stops opening.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Binding<'a> {
    key: &'a SessionKey,
    id: &'a SessionId,
    user: Option<&'a str>,
    created_at: Timestamp,
}

impl<'a> Binding<'a> {
    pub(crate) fn new(
        key: &'a SessionKey,
        id: &'a SessionId,
        user: Option<&'a str>,
        created_at: Timestamp,
    ) -> Self {
        Self {
            key,
            id,
            user,
            created_at,
        }
    }

    /// The binding of a stored record.
    pub(crate) fn of(record: &'a Record) -> Self {
        Self::new(
            &record.key,
            &record.id,
            record.user.as_deref(),
            record.created_at,
        )
    }
}

/// First byte of a sealed envelope.
pub(crate) const SEALED_FORMAT: u8 = 0x02;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + 4;
const TAG_LEN: usize = 16;
const AAD_CONTEXT: &[u8] = b"session-core/seal/v2";

/// Keys that seal session data with XChaCha20-Poly1305.
///
/// New data is sealed with the newest key (the highest id); data sealed under
/// any key still in the ring opens. Rotate by adding a key with a higher id,
/// and drop an old key once every session sealed under it has expired (its
/// sessions then fail to decode and count as gone).
///
/// Each envelope is `0x02 | key id (u32, big endian) | 24-byte random nonce |
/// ciphertext and tag`. The associated data binds the header, the session's
/// [`SessionId`], the record's key (the token's hash), its principal and its
/// creation time, so a ciphertext copied into another session's record, a
/// record moved to another key, a header edited to name another key, or a
/// `user` or `created_at` column edited in the store, does not open.
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
    pub(crate) fn seal(&self, binding: Binding<'_>, plain: &[u8]) -> Result<Vec<u8>> {
        self.seal_with(SEALED_FORMAT, |header| aad(header, binding), plain)
    }

    /// Opens an envelope made by [`KeyRing::seal`] for the same session id.
    pub(crate) fn open(&self, binding: Binding<'_>, envelope: &[u8]) -> Result<Vec<u8>> {
        self.open_with(SEALED_FORMAT, |header| aad(header, binding), envelope)
            .map_err(|e| Error::decode(e.what()))
    }

    /// Seals `plain` under the newest key as `format | key id | nonce |
    /// ciphertext and tag`, authenticating `aad(header)` with it, where the
    /// header is the format byte and the key id.
    pub(crate) fn seal_with(
        &self,
        format: u8,
        aad: impl FnOnce(&[u8]) -> Vec<u8>,
        plain: &[u8],
    ) -> Result<Vec<u8>> {
        let (key_id, cipher) = self
            .keys
            .iter()
            .next_back()
            .expect("a key ring always holds a key");
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| Error::backend("os-rng", e.to_string()))?;
        let mut out = Vec::with_capacity(SEAL_OVERHEAD + plain.len());
        out.push(format);
        out.extend_from_slice(&key_id.to_be_bytes());
        let aad = aad(&out[..HEADER_LEN]);
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

    /// Opens an envelope made by [`KeyRing::seal_with`] with the same
    /// `format` and associated data.
    pub(crate) fn open_with(
        &self,
        format: u8,
        aad: impl FnOnce(&[u8]) -> Vec<u8>,
        envelope: &[u8],
    ) -> Result<Vec<u8>, OpenError> {
        if envelope.len() < SEAL_OVERHEAD || envelope[0] != format {
            return Err(OpenError::Malformed);
        }
        let (header, rest) = envelope.split_at(HEADER_LEN);
        let key_id = u32::from_be_bytes(header[1..].try_into().expect("4 bytes"));
        let cipher = self.keys.get(&key_id).ok_or(OpenError::UnknownKey)?;
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad(header),
                },
            )
            .map_err(|_| OpenError::Forged)
    }
}

/// Why an envelope did not open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Too short, or not this format.
    Malformed,
    /// Sealed under a key id the ring does not hold (never added, or retired).
    UnknownKey,
    /// Authentication failed: changed, or bound to something else.
    Forged,
}

impl OpenError {
    fn what(self) -> &'static str {
        match self {
            Self::Malformed => "sealed session data (truncated or not sealed)",
            Self::UnknownKey => "sealed session data (unknown key id)",
            Self::Forged => "sealed session data (authentication failed)",
        }
    }
}

/// Bytes an envelope adds to its plaintext.
pub(crate) const SEAL_OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

fn aad(header: &[u8], b: Binding<'_>) -> Vec<u8> {
    let user = b.user.map(str::as_bytes);
    let mut aad = Vec::with_capacity(AAD_CONTEXT.len() + header.len() + 32 + 16 + 8 + 1 + 8);
    aad.extend_from_slice(AAD_CONTEXT);
    aad.extend_from_slice(header);
    aad.extend_from_slice(b.key.as_bytes());
    aad.extend_from_slice(&b.id.to_bytes());
    aad.extend_from_slice(&b.created_at.as_millis().to_be_bytes());
    // Length-prefixed, and None distinct from Some(""), so no two bindings
    // produce the same bytes.
    match user {
        None => aad.push(0),
        Some(u) => {
            aad.push(1);
            aad.extend_from_slice(&(u.len() as u64).to_be_bytes());
            aad.extend_from_slice(u);
        }
    }
    aad
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ring() -> KeyRing {
        KeyRing::new(7, [7u8; 32])
    }

    const KEY: SessionKey = SessionKey::from_bytes([3; 32]);

    fn b(id: &SessionId) -> Binding<'_> {
        Binding::new(&KEY, id, Some("alice"), Timestamp::from_millis(1_000))
    }

    #[test]
    fn editing_the_key_user_or_created_at_in_the_store_breaks_the_seal() {
        let id = SessionId::generate();
        let other_key = SessionKey::from_bytes([4; 32]);
        let sealed = ring().seal(b(&id), b"data").unwrap();
        for other in [
            Binding::new(
                &other_key,
                &id,
                Some("alice"),
                Timestamp::from_millis(1_000),
            ),
            Binding::new(&KEY, &id, Some("admin"), Timestamp::from_millis(1_000)),
            Binding::new(&KEY, &id, None, Timestamp::from_millis(1_000)),
            Binding::new(&KEY, &id, Some(""), Timestamp::from_millis(1_000)),
            Binding::new(&KEY, &id, Some("alice"), Timestamp::from_millis(1_001)),
        ] {
            let err = ring().open(other, &sealed).unwrap_err();
            assert!(matches!(err, Error::Decode { .. }), "{err:?}");
        }
        assert_eq!(ring().open(b(&id), &sealed).unwrap(), b"data");
    }

    #[test]
    fn sealed_under_an_old_key_opens_after_a_new_key_is_added() {
        let id = SessionId::generate();
        let old = ring();
        let sealed = old.seal(b(&id), b"hello").unwrap();
        let newer = old.with_key(8, [8u8; 32]).unwrap();
        assert_eq!(newer.open(b(&id), &sealed).unwrap(), b"hello");
        let resealed = newer.seal(b(&id), b"hello").unwrap();
        assert_eq!(
            &resealed[1..5],
            &8u32.to_be_bytes(),
            "new writes use the newest key"
        );
        assert!(
            ring().open(b(&id), &resealed).is_err(),
            "a ring without key 8 cannot open it"
        );
    }

    #[test]
    fn ciphertext_moved_to_another_session_does_not_open() {
        let sealed = ring().seal(b(&SessionId::generate()), b"secret").unwrap();
        let err = ring().open(b(&SessionId::generate()), &sealed).unwrap_err();
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
            let sealed = ring().seal(b(&id), &plain).unwrap();
            prop_assert_eq!(ring().open(b(&id), &sealed).unwrap(), plain);
        }

        #[test]
        fn any_single_byte_corruption_is_a_decode_error(
            plain in proptest::collection::vec(any::<u8>(), 0..256),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let id = SessionId::generate();
            let mut sealed = ring().seal(b(&id), &plain).unwrap();
            let i = at.index(sealed.len());
            sealed[i] ^= flip;
            let err = ring().open(b(&id), &sealed).unwrap_err();
            prop_assert!(matches!(err, Error::Decode { .. }), "expected Decode, got {:?}", err);
        }

        #[test]
        fn any_truncation_is_a_decode_error(
            plain in proptest::collection::vec(any::<u8>(), 0..256),
            at in any::<prop::sample::Index>(),
        ) {
            let id = SessionId::generate();
            let sealed = ring().seal(b(&id), &plain).unwrap();
            let cut = at.index(sealed.len());
            let err = ring().open(b(&id), &sealed[..cut]).unwrap_err();
            prop_assert!(matches!(err, Error::Decode { .. }), "expected Decode, got {:?}", err);
        }
    }
}
