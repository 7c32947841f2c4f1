//! [`Verifier`]: checks access tokens against published keys, without a
//! store; [`Verifier::verify_live`] adds the strict check.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use session_core::{Clock, SessionManager, SystemClock, Timestamp};

use crate::claims::{AccessClaims, Wire};
use crate::error::Error;
use crate::keys::Algorithm;

/// The most leeway a verifier allows for clock differences: 60 seconds.
pub const MAX_LEEWAY: Duration = Duration::from_secs(60);
/// The longest token a verifier reads unless configured: tokens this crate
/// issues are about 400 bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// What a [`Verifier`] accepts.
#[derive(Clone, Debug)]
pub struct VerifierConfig {
    issuer: String,
    audience: String,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    max_len: usize,
}

impl VerifierConfig {
    /// Tokens from `issuer` for `audience`, signed with EdDSA, no leeway,
    /// at most [`MAX_TOKEN_LEN`] bytes.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            algorithms: vec![Algorithm::EdDSA],
            leeway: Duration::ZERO,
            max_len: MAX_TOKEN_LEN,
        }
    }

    /// The algorithms accepted (replacing the default, EdDSA only). Tokens
    /// with any other `alg` are [`Error::UnsupportedAlgorithm`], and so are
    /// keys in a JWK set with another algorithm (they are ignored).
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.algorithms = algorithms.to_vec();
        self
    }

    /// Clock difference allowed on `exp`, `nbf` and `iat` (whole seconds,
    /// at most [`MAX_LEEWAY`]; more is [`Error::InvalidKey`] when the
    /// verifier is built).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The longest token read ([`Error::Oversized`] beyond it).
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }
}

struct Key {
    alg: Algorithm,
    decoding: DecodingKey,
}

/// Verifies access tokens: the signature under a published key of an
/// accepted algorithm, `iss`, `aud`, `exp`, `nbf` and `iat`. No store round
/// trip, except in [`verify_live`](Self::verify_live). Cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    keys: Arc<HashMap<String, Key>>,
    config: Arc<VerifierConfig>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("Verifier")
            .field("kids", &kids)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for the keys of a JWK Set document (as served at
    /// `/.well-known/jwks.json`). Keys of algorithms the config does not
    /// accept are ignored; a key without `kid` or `alg`, a duplicate `kid`,
    /// or a set with no usable key is [`Error::InvalidKey`].
    pub fn from_jwks(json: &str, config: VerifierConfig) -> Result<Self, Error> {
        let set: JwkSet = serde_json::from_str(json)
            .map_err(|e| Error::InvalidKey(format!("not a JWK set: {e}")))?;
        Self::from_jwk_set(&set, config)
    }

    /// As [`from_jwks`](Self::from_jwks), for a parsed set.
    pub fn from_jwk_set(set: &JwkSet, config: VerifierConfig) -> Result<Self, Error> {
        if config.leeway > MAX_LEEWAY {
            return Err(Error::InvalidKey(format!(
                "a leeway of {:?} is over the most allowed, {MAX_LEEWAY:?}",
                config.leeway
            )));
        }
        if config.algorithms.is_empty() {
            return Err(Error::InvalidKey("no algorithm is accepted".into()));
        }
        crate::keys::ensure_provider()?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| jsonwebtoken::Algorithm::try_from(a).ok())
                .and_then(Algorithm::from_jwt);
            // Keys of other algorithms (or none named) are not ours to check.
            let Some(alg) = alg.filter(|a| config.algorithms.contains(a)) else {
                continue;
            };
            let kid = jwk
                .common
                .key_id
                .clone()
                .ok_or_else(|| Error::InvalidKey("a key in the set has no kid".into()))?;
            if let Some(usage) = &jwk.common.public_key_use {
                if *usage != jsonwebtoken::jwk::PublicKeyUse::Signature {
                    return Err(Error::InvalidKey(format!(
                        "key {kid:?} is not for signatures"
                    )));
                }
            }
            check_public_key(jwk, alg)
                .map_err(|why| Error::InvalidKey(format!("key {kid:?}: {why}")))?;
            let decoding = DecodingKey::from_jwk(jwk)
                .map_err(|e| Error::InvalidKey(format!("key {kid:?}: {e}")))?;
            if keys.insert(kid.clone(), Key { alg, decoding }).is_some() {
                return Err(Error::InvalidKey(format!("key id {kid:?} appears twice")));
            }
        }
        if keys.is_empty() {
            return Err(Error::InvalidKey(
                "the set holds no key of an accepted algorithm".into(),
            ));
        }
        Ok(Self {
            keys: Arc::new(keys),
            config: Arc::new(config),
            clock: Arc::new(SystemClock),
        })
    }

    /// Reads time from `clock` (tests use `ManualClock`).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The claims of `token` if it is valid now; else the typed reason.
    /// Checks, in order: length, header (`alg` accepted, `kid` known, the
    /// key's algorithm), signature, `iss`, `aud`, then times. No store round
    /// trip: a token of a session revoked since it was issued is valid until
    /// its `exp`.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, Error> {
        let config = &self.config;
        if token.is_empty() {
            return Err(Error::Missing);
        }
        if token.len() > config.max_len {
            return Err(Error::Oversized {
                len: token.len(),
                max: config.max_len,
            });
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            // The JWT library knows no `none` (or other names): refused by name.
            ErrorKind::Json(_) => match header_alg(token) {
                Some(alg) => Error::UnsupportedAlgorithm(alg),
                None => Error::malformed("header", e),
            },
            _ => Error::malformed("header", e),
        })?;
        let alg = Algorithm::from_jwt(header.alg)
            .filter(|a| config.algorithms.contains(a))
            .ok_or_else(|| Error::UnsupportedAlgorithm(format!("{:?}", header.alg)))?;
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or(Error::UnknownKey)?;
        if key.alg != alg {
            return Err(Error::UnsupportedAlgorithm(format!(
                "{:?} with a {:?} key",
                header.alg, key.alg
            )));
        }
        let mut validation = Validation::new(alg.jwt());
        // Times are checked below against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        let data =
            jsonwebtoken::decode::<Wire>(token, &key.decoding, &validation).map_err(|e| match e
                .kind()
            {
                ErrorKind::InvalidSignature => Error::BadSignature,
                ErrorKind::InvalidAudience => Error::WrongAudience,
                ErrorKind::InvalidIssuer => Error::WrongIssuer,
                ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => {
                    Error::UnsupportedAlgorithm(format!("{:?}", header.alg))
                }
                _ => Error::malformed("claims", e),
            })?;
        let claims = data.claims.into_claims().ok_or(Error::Malformed {
            what: "claims (sid or a time out of range)",
            source: None,
        })?;
        let now = self.clock.now();
        let leeway = config.leeway;
        if claims.exp.saturating_add(leeway) <= now {
            return Err(Error::Expired);
        }
        if claims.nbf.saturating_sub(leeway) > now || claims.iat.saturating_sub(leeway) > now {
            return Err(Error::NotYetValid);
        }
        Ok(claims)
    }

    /// [`verify`](Self::verify), then the strict check: the token's session
    /// must still be live in `manager`'s store (one store call, listing the
    /// principal's sessions). Use it on routes that must stop as soon as a
    /// session is revoked, not at the token's `exp`:
    /// [`Error::SessionEnded`] once it is; [`Error::Store`] if the store
    /// cannot answer.
    pub async fn verify_live(
        &self,
        token: &str,
        manager: &SessionManager,
    ) -> Result<AccessClaims, Error> {
        let claims = self.verify(token)?;
        match manager.is_live(&claims.sub, claims.sid).await {
            Ok(true) => Ok(claims),
            Ok(false) => Err(Error::SessionEnded),
            Err(e) => Err(Error::Store(e)),
        }
    }

    /// Now, on the verifier's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

/// Checks that a JWK holds a valid public key of exactly the kind `alg`
/// needs (the JWT library takes the bytes as given, and would cut or index
/// them at the first token).
fn check_public_key(jwk: &jsonwebtoken::jwk::Jwk, alg: Algorithm) -> Result<(), String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve};
    let coordinate = |text: &str| -> Result<[u8; 32], String> {
        URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|e| format!("not base64url: {e}"))?
            .try_into()
            .map_err(|b: Vec<u8>| format!("{} bytes where 32 are needed", b.len()))
    };
    match (alg, &jwk.algorithm) {
        (Algorithm::EdDSA, AlgorithmParameters::OctetKeyPair(okp))
            if okp.curve == EllipticCurve::Ed25519 =>
        {
            ed25519_dalek::VerifyingKey::from_bytes(&coordinate(&okp.x)?)
                .map(drop)
                .map_err(|e| format!("not an Ed25519 public key: {e}"))
        }
        (Algorithm::ES256, AlgorithmParameters::EllipticCurve(ec))
            if ec.curve == EllipticCurve::P256 =>
        {
            let mut sec1 = vec![0x04];
            sec1.extend_from_slice(&coordinate(&ec.x)?);
            sec1.extend_from_slice(&coordinate(&ec.y)?);
            p256::PublicKey::from_sec1_bytes(&sec1)
                .map(drop)
                .map_err(|e| format!("not a P-256 public key: {e}"))
        }
        (alg, _) => Err(format!("not an {alg:?} key (kty or crv does not match)")),
    }
}

/// The `alg` a header names, when the JWT library cannot parse it (`none`,
/// or a name it does not know). Reads the header segment only.
fn header_alg(token: &str) -> Option<String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let segment = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    let header: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    header.get("alg")?.as_str().map(str::to_owned)
}
