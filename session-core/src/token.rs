//! Session identity: the secret [`SessionToken`], its hash [`SessionKey`] and the
//! stable, non-secret [`SessionId`].

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Number of random bytes in a token.
pub const TOKEN_BYTES: usize = 32;
/// Length of a token's text form: base64url of 32 bytes, without padding.
pub const TOKEN_LEN: usize = 43;

/// The only secret of a session: 32 bytes from the OS CSPRNG.
///
/// It travels in the cookie (or an `Authorization: Bearer` header) and nowhere
/// else. Stores only ever see its [`SessionKey`]. `Debug` prints a redacted form,
/// and there is deliberately no `Display`: call [`SessionToken::expose`] where the
/// text really has to leave the process.
///
/// ```
/// use session_core::SessionToken;
///
/// let token = SessionToken::generate();
/// let text = token.expose();
/// assert_eq!(text.len(), 43);
/// let parsed = SessionToken::parse(&text).unwrap();
/// assert_eq!(parsed.key(), token.key());
/// assert_eq!(format!("{token:?}"), "SessionToken(<redacted>)");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken([u8; TOKEN_BYTES]);

impl SessionToken {
    /// A fresh token from the operating system's CSPRNG.
    ///
    /// # Panics
    /// If the operating system cannot provide randomness; running on without it
    /// would hand out guessable session tokens.
    pub fn generate() -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).expect("the OS random number generator failed");
        Self(bytes)
    }

    /// Strict parse of the text form: exactly 43 characters of the base64url
    /// alphabet, canonical (no stray trailing bits), no padding, no whitespace.
    ///
    /// Returns `None` for anything else: a malformed token means "no session",
    /// and is never worth a store round trip or an error page.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != TOKEN_LEN {
            return None;
        }
        // The decoder refuses any byte outside the alphabet, padding and
        // stray trailing bits: no pass of our own is needed first.
        let mut bytes = [0u8; TOKEN_BYTES];
        match URL_SAFE_NO_PAD.decode_slice(text, &mut bytes) {
            Ok(TOKEN_BYTES) => Some(Self(bytes)),
            _ => None,
        }
    }

    /// The text form, for the cookie or the bearer header. Never log it.
    pub fn expose(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The raw 32 bytes. Never store or log them; tests use this to prove
    /// that they appear nowhere.
    pub fn expose_bytes(&self) -> &[u8; TOKEN_BYTES] {
        &self.0
    }

    /// The store key of this token: SHA-256 of its bytes.
    pub fn key(&self) -> SessionKey {
        SessionKey(Sha256::digest(self.0).into())
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

/// The primary key of a stored session: SHA-256 of the token's bytes.
///
/// A leaked database or Redis dump holds only these, and they cannot be turned
/// back into a usable cookie.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SessionKey([u8; 32]);

/// Hashes 8 of the key's 32 bytes (equality still compares all of them): a
/// key is the SHA-256 of a random token, so any 8 of its bytes are already
/// uniform. Bytes 8 to 15, not the first: [`MemoryStore`](crate::MemoryStore)
/// picks a shard by the first byte.
impl Hash for SessionKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.0[8..16]);
        state.write_u64(u64::from_le_bytes(word));
    }
}

/// A [`BuildHasher`] for maps keyed by [`SessionKey`] that takes the key's
/// own bytes as the hash instead of running SipHash over them.
///
/// Only for maps whose keys the server made (the keys of tokens it
/// generated, as a store's records and a cache of loaded records are): keys
/// derived from tokens a client chose could be ground to collide. Anything
/// else hashed with it is mixed cheaply, not securely.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyHash;

impl BuildHasher for KeyHash {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

/// The [`Hasher`] of [`KeyHash`].
#[derive(Clone, Copy, Debug)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = self.0.rotate_left(29) ^ word;
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
    }
}

impl SessionKey {
    /// Wraps raw key bytes (for stores reading keys back).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Wraps a slice read from a store; `None` unless it is exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The raw 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, 64 characters, for stores that key by text.
    pub fn to_hex(&self) -> String {
        let mut out = String::with_capacity(64);
        self.push_hex(&mut out);
        out
    }

    /// Appends [`to_hex`](Self::to_hex)'s text to `out`: a store that puts a
    /// prefix before the key builds its name in one allocation.
    pub fn push_hex(&self, out: &mut String) {
        // Digits into an array, then one append: pushing them char by char
        // took more than twice the instructions (a capacity check and a
        // length update each), on every request's record name.
        let mut digits = [0u8; 64];
        for (pair, b) in digits.chunks_exact_mut(2).zip(self.0) {
            pair[0] = HEX[usize::from(b >> 4)];
            pair[1] = HEX[usize::from(b & 0xf)];
        }
        out.push_str(std::str::from_utf8(&digits).expect("hex digits are ASCII"));
    }

    /// Parses the form written by [`SessionKey::to_hex`] (either case).
    pub fn from_hex(text: &str) -> Option<Self> {
        let text = text.as_bytes();
        if text.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in text.chunks_exact(2).enumerate() {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            out[i] = u8::try_from(hi << 4 | lo).ok()?;
        }
        Some(Self(out))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A key is not a secret, but eight hex digits are plenty to tell keys apart.
        write!(f, "SessionKey({}…)", &self.to_hex()[..8])
    }
}

/// The stable identity of a session: a random UUID that survives key rotation.
///
/// It is the handle an "active sessions" page shows and revokes; it is not a
/// secret and cannot be used to load a session.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct SessionId(uuid::Uuid);

impl SessionId {
    /// A new random (v4) id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    /// A token and an id for a new session, from one call to the OS
    /// generator instead of two (each is a system call).
    ///
    /// # Panics
    /// As [`SessionToken::generate`].
    pub(crate) fn generate_with_token() -> (SessionToken, Self) {
        let mut bytes = [0u8; TOKEN_BYTES + 16];
        getrandom::fill(&mut bytes).expect("the OS random number generator failed");
        let (token, id) = bytes.split_at(TOKEN_BYTES);
        let mut random = [0u8; 16];
        random.copy_from_slice(id);
        let id = uuid::Builder::from_random_bytes(random).into_uuid();
        let mut token_bytes = [0u8; TOKEN_BYTES];
        token_bytes.copy_from_slice(token);
        (SessionToken(token_bytes), Self(id))
    }

    /// Wraps an existing UUID (for stores reading ids back).
    pub const fn from_uuid(id: uuid::Uuid) -> Self {
        Self(id)
    }

    /// The UUID.
    pub const fn as_uuid(&self) -> &uuid::Uuid {
        &self.0
    }

    /// From the UUID's 16 bytes (for stores that keep ids as bytes).
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(uuid::Uuid::from_bytes(bytes))
    }

    /// The UUID's 16 bytes.
    pub const fn to_bytes(&self) -> [u8; 16] {
        *self.0.as_bytes()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::str::FromStr for SessionId {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_43_chars_and_distinct() {
        let a = SessionToken::generate();
        let b = SessionToken::generate();
        assert_eq!(a.expose().len(), TOKEN_LEN);
        assert_ne!(a, b);
        assert_ne!(a.key(), b.key());
    }

    #[test]
    fn a_token_and_id_made_together_are_independent_random_v4() {
        let (t1, id1) = SessionId::generate_with_token();
        let (t2, id2) = SessionId::generate_with_token();
        assert_ne!(t1, t2);
        assert_ne!(id1, id2);
        for id in [id1, id2] {
            assert_eq!(id.as_uuid().get_version_num(), 4);
            assert_eq!(id.as_uuid().get_variant(), uuid::Variant::RFC4122);
            // The id carries none of the token's bytes.
            assert!(!t1
                .0
                .windows(6)
                .any(|w| id.as_uuid().as_bytes().windows(6).any(|x| x == w)));
        }
    }

    #[test]
    fn parse_round_trips_and_key_is_sha256_of_bytes() {
        let t = SessionToken::generate();
        let p = SessionToken::parse(&t.expose()).expect("own text form parses");
        assert_eq!(p, t);
        let expected: [u8; 32] = Sha256::digest(t.0).into();
        assert_eq!(p.key().as_bytes(), &expected);
    }

    #[test]
    fn parse_rejects_wrong_length_alphabet_padding_and_non_canonical_bits() {
        let good = SessionToken::generate().expose();
        assert!(SessionToken::parse("").is_none());
        assert!(SessionToken::parse(&good[..42]).is_none());
        assert!(SessionToken::parse(&format!("{good}A")).is_none());
        assert!(SessionToken::parse(&format!("{}=", &good[..42])).is_none());
        assert!(SessionToken::parse(&format!("{}+", &good[..42])).is_none());
        assert!(SessionToken::parse(&format!(" {}", &good[..42])).is_none());
        assert!(SessionToken::parse(&format!("{}é", &good[..41])).is_none());
        assert!(SessionToken::parse(&format!("{}/{}", &good[..20], &good[21..])).is_none());
        assert!(SessionToken::parse(&format!("{}\n{}", &good[..20], &good[21..])).is_none());
        assert!(SessionToken::parse(&format!("{}.{}", &good[..20], &good[21..])).is_none());
        // The last character carries 4 spare bits that must be zero: 'B' sets one.
        let zero = "A".repeat(43);
        assert!(SessionToken::parse(&zero).is_some());
        assert!(SessionToken::parse(&format!("{}B", "A".repeat(42))).is_none());
    }

    #[test]
    fn debug_never_shows_the_token() {
        let t = SessionToken::generate();
        let shown = format!("{t:?} {:?}", Some(t.clone()));
        assert!(!shown.contains(&t.expose()));
        assert!(!shown.contains(&t.expose()[..8]));
    }

    #[test]
    fn key_hex_round_trips() {
        let k = SessionToken::generate().key();
        assert_eq!(SessionKey::from_hex(&k.to_hex()), Some(k));
        assert_eq!(SessionKey::from_hex(&k.to_hex().to_uppercase()), Some(k));
        assert_eq!(SessionKey::from_hex("zz"), None);
        assert_eq!(SessionKey::from_slice(&[0u8; 31]), None);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any string at all: parsing never panics, and whatever parses is a
        /// canonical 43-character token that round-trips.
        #[test]
        fn parse_never_panics_and_accepts_only_canonical_tokens(text in ".{0,64}") {
            if let Some(t) = SessionToken::parse(&text) {
                prop_assert_eq!(t.expose(), text);
            }
        }

        #[test]
        fn every_generated_token_round_trips(bytes in proptest::array::uniform32(any::<u8>())) {
            let t = SessionToken(bytes);
            let back = SessionToken::parse(&t.expose()).expect("own text form parses");
            prop_assert_eq!(back.key(), t.key());
        }
    }
}
