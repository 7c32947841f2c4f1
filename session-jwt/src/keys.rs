//! [`SigningKey`] and [`KeySet`]: keys that sign, and the set that rotates
//! and publishes them.

use std::fmt;
use std::sync::Arc;

use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::EncodingKey;

use crate::error::Error;
use crate::verifier::{Verifier, VerifierConfig};

/// The signature algorithms this crate signs and verifies with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// Ed25519 (RFC 8037): the default. Small keys and signatures, fast,
    /// deterministic.
    EdDSA,
    /// ECDSA on P-256 with SHA-256 (RFC 7518), for verifiers that lack
    /// Ed25519.
    ES256,
}

impl Algorithm {
    pub(crate) fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
        }
    }

    pub(crate) fn from_jwt(alg: jsonwebtoken::Algorithm) -> Option<Self> {
        match alg {
            jsonwebtoken::Algorithm::EdDSA => Some(Self::EdDSA),
            jsonwebtoken::Algorithm::ES256 => Some(Self::ES256),
            _ => None,
        }
    }
}

/// A private key that signs access tokens, with its key id (`kid`).
/// `Debug` shows the id and algorithm only.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Jwk,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// Makes sure jsonwebtoken has its RustCrypto provider: if another crate in
/// the build also turns on its aws-lc backend, it would otherwise panic at
/// the first signature instead of failing here.
pub(crate) fn ensure_provider() -> Result<(), Error> {
    use jsonwebtoken::crypto::CryptoProvider;
    if CryptoProvider::try_get_default().is_none() {
        // Losing a race to another installer is fine: one is installed.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    }
    CryptoProvider::try_get_default()
        .map(|_| ())
        .ok_or_else(|| Error::InvalidKey("jsonwebtoken has no crypto provider".into()))
}

fn random32() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random number generator failed");
    bytes
}

impl SigningKey {
    /// A fresh key from the OS CSPRNG.
    ///
    /// # Panics
    /// If the operating system cannot provide randomness, or `kid` is empty
    /// or over 128 bytes.
    pub fn generate(kid: impl Into<String>, alg: Algorithm) -> Self {
        let kid = kid.into();
        loop {
            match Self::from_secret(kid.clone(), alg, random32()) {
                Ok(key) => return key,
                // A random 32-byte string is a valid P-256 scalar except with
                // probability about 2^-32: draw again.
                Err(_) if alg == Algorithm::ES256 && !kid.is_empty() && kid.len() <= 128 => {}
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// The key whose secret is `secret`: an Ed25519 seed, or a P-256 scalar
    /// (big-endian). Load it from your secret store; never log it.
    /// [`Error::InvalidKey`] for an empty `kid` or a scalar out of range.
    pub fn from_secret(
        kid: impl Into<String>,
        alg: Algorithm,
        secret: [u8; 32],
    ) -> Result<Self, Error> {
        ensure_provider()?;
        let kid = kid.into();
        if kid.is_empty() || kid.len() > 128 {
            return Err(Error::InvalidKey("a key id is 1 to 128 bytes".into()));
        }
        let invalid = |e: &dyn fmt::Display| Error::InvalidKey(format!("{alg:?} key {kid:?}: {e}"));
        let encoding = match alg {
            Algorithm::EdDSA => {
                // PKCS#8 v1 (no public key), the form jsonwebtoken reads.
                let der = ed25519_dalek::pkcs8::KeypairBytes {
                    secret_key: secret,
                    public_key: None,
                }
                .to_pkcs8_der()
                .map_err(|e| invalid(&e))?;
                EncodingKey::from_ed_der(der.as_bytes())
            }
            Algorithm::ES256 => {
                use p256::pkcs8::EncodePrivateKey as _;
                let key =
                    p256::ecdsa::SigningKey::from_bytes(&secret.into()).map_err(|e| invalid(&e))?;
                let der = key.to_pkcs8_der().map_err(|e| invalid(&e))?;
                EncodingKey::from_ec_der(der.as_bytes())
            }
        };
        let mut jwk = Jwk::from_encoding_key(&encoding, alg.jwt()).map_err(|e| invalid(&e))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(Self {
            kid,
            alg,
            encoding,
            jwk,
        })
    }

    /// The key id, sent in each token's header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The public half, as a JWK (with `kid`, `alg` and `use: sig`).
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    pub(crate) fn encoding(&self) -> &EncodingKey {
        &self.encoding
    }
}

/// The keys of an issuer: one signs, every key in the set is published
/// ([`jwks`](Self::jwks)) and verifies. Cheap to clone.
///
/// Rotation never invalidates a token before its `exp`, in three steps:
///
/// 1. [`publish`](Self::publish) the new key: it is in the JWKS but does not
///    sign yet. Wait until every verifier has fetched the new set (the JWKS
///    response's cache lifetime, or the verifiers' refresh period).
/// 2. [`promote`](Self::promote) it: it signs from then on; the old key stays
///    published, so tokens it signed keep verifying.
/// 3. [`retire`](Self::retire) the old key once every token it signed has
///    expired (the issuer's lifetime after step 2).
///
/// [`rotate`](Self::rotate) does steps 1 and 2 at once, for verifiers that
/// share this set in-process.
#[derive(Clone, Debug)]
pub struct KeySet {
    inner: Arc<Vec<SigningKey>>,
    /// The index of the key that signs.
    signing: usize,
}

impl KeySet {
    /// A set holding one key, which signs.
    pub fn new(key: SigningKey) -> Self {
        Self {
            inner: Arc::new(vec![key]),
            signing: 0,
        }
    }

    /// This set plus `key`, published but not signing yet (step 1 of a
    /// rotation). [`Error::InvalidKey`] if its id is already in the set.
    pub fn publish(&self, key: SigningKey) -> Result<Self, Error> {
        if self.get(key.kid()).is_some() {
            return Err(Error::InvalidKey(format!(
                "key id {:?} is already in the set",
                key.kid()
            )));
        }
        let mut keys = (*self.inner).clone();
        keys.push(key);
        Ok(Self {
            inner: Arc::new(keys),
            signing: self.signing,
        })
    }

    /// This set with the published key `kid` signing (step 2 of a
    /// rotation). [`Error::InvalidKey`] for an id not in the set.
    pub fn promote(&self, kid: &str) -> Result<Self, Error> {
        let signing = self
            .inner
            .iter()
            .position(|k| k.kid() == kid)
            .ok_or_else(|| Error::InvalidKey(format!("no key {kid:?} in the set")))?;
        Ok(Self {
            inner: self.inner.clone(),
            signing,
        })
    }

    /// [`publish`](Self::publish) and [`promote`](Self::promote) at once:
    /// `key` signs from now on. Verifiers that fetch the JWKS see tokens of
    /// a key they may not have yet; prefer the two steps for them.
    pub fn rotate(&self, key: SigningKey) -> Result<Self, Error> {
        let kid = key.kid().to_owned();
        self.publish(key)?.promote(&kid)
    }

    /// This set without the key `kid`: it is no longer published, so tokens
    /// it signed stop verifying. [`Error::InvalidKey`] for the signing key or
    /// an unknown id.
    pub fn retire(&self, kid: &str) -> Result<Self, Error> {
        if self.signing().kid() == kid {
            return Err(Error::InvalidKey(format!(
                "key {kid:?} signs: rotate to another key before retiring it"
            )));
        }
        if self.get(kid).is_none() {
            return Err(Error::InvalidKey(format!("no key {kid:?} in the set")));
        }
        let signing_kid = self.signing().kid().to_owned();
        let keys: Vec<SigningKey> = self
            .inner
            .iter()
            .filter(|k| k.kid() != kid)
            .cloned()
            .collect();
        let signing = keys
            .iter()
            .position(|k| k.kid() == signing_kid)
            .expect("the signing key is kept");
        Ok(Self {
            inner: Arc::new(keys),
            signing,
        })
    }

    /// The key that signs.
    pub fn signing(&self) -> &SigningKey {
        &self.inner[self.signing]
    }

    /// The key `kid`, if the set holds it.
    pub fn get(&self, kid: &str) -> Option<&SigningKey> {
        self.inner.iter().find(|k| k.kid() == kid)
    }

    /// Every key, oldest first.
    pub fn keys(&self) -> impl Iterator<Item = &SigningKey> {
        self.inner.iter()
    }

    /// The public keys as a JWK Set (RFC 7517), for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.inner.iter().map(|k| k.jwk.clone()).collect(),
        }
    }

    /// [`jwks`](Self::jwks) as JSON text.
    pub fn jwks_json(&self) -> String {
        serde_json::to_string(&self.jwks()).expect("a JWK set serializes")
    }

    /// A verifier for the keys of this set (in-process; other services use
    /// [`Verifier::from_jwks`]).
    pub fn verifier(&self, config: VerifierConfig) -> Result<Verifier, Error> {
        Verifier::from_jwk_set(&self.jwks(), config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_key_material() {
        let key = SigningKey::from_secret("k", Algorithm::EdDSA, [7; 32]).unwrap();
        let debug = format!("{key:?}");
        assert!(
            debug.contains("\"k\"") && debug.contains("EdDSA"),
            "{debug}"
        );
        assert!(!debug.contains("7, 7"), "{debug}");
    }

    #[test]
    fn the_published_jwk_holds_only_the_public_half() {
        for alg in [Algorithm::EdDSA, Algorithm::ES256] {
            let key = SigningKey::generate("k", alg);
            let json = serde_json::to_value(key.public_jwk()).unwrap();
            assert_eq!(json["kid"], "k");
            assert_eq!(json["use"], "sig");
            assert!(json.get("d").is_none(), "no private part: {json}");
        }
    }

    #[test]
    fn rotation_signs_with_the_new_key_and_retiring_the_signer_is_refused() {
        let set = KeySet::new(SigningKey::generate("a", Algorithm::EdDSA));
        let set = set
            .rotate(SigningKey::generate("b", Algorithm::ES256))
            .unwrap();
        assert_eq!(set.signing().kid(), "b");
        assert_eq!(set.jwks().keys.len(), 2);
        assert!(set
            .rotate(SigningKey::generate("a", Algorithm::EdDSA))
            .is_err());
        assert!(set.retire("b").is_err());
        assert!(set.retire("zz").is_err());
        assert_eq!(set.retire("a").unwrap().jwks().keys.len(), 1);
    }

    #[test]
    fn a_published_key_signs_only_once_promoted() {
        let set = KeySet::new(SigningKey::generate("a", Algorithm::EdDSA));
        let set = set
            .publish(SigningKey::generate("b", Algorithm::EdDSA))
            .unwrap();
        assert_eq!(set.signing().kid(), "a");
        assert_eq!(set.jwks().keys.len(), 2, "published");
        let set = set.promote("b").unwrap();
        assert_eq!(set.signing().kid(), "b");
        assert!(set.promote("zz").is_err());
        let set = set.retire("a").unwrap();
        assert_eq!(set.signing().kid(), "b");
    }

    #[test]
    fn a_p256_scalar_out_of_range_is_an_invalid_key() {
        assert!(matches!(
            SigningKey::from_secret("k", Algorithm::ES256, [0; 32]),
            Err(Error::InvalidKey(_))
        ));
        assert!(matches!(
            SigningKey::from_secret("k", Algorithm::ES256, [0xff; 32]),
            Err(Error::InvalidKey(_))
        ));
        assert!(matches!(
            SigningKey::from_secret("", Algorithm::EdDSA, [1; 32]),
            Err(Error::InvalidKey(_))
        ));
    }
}
