//! Access-token verification: any text given to a verifier is refused with
//! a typed error (forging an Ed25519 signature is out of a fuzzer's reach);
//! never a panic. Also tried after a valid header, so the fuzzer works on
//! claims and signatures, not only on the header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_jwt::{Algorithm, KeySet, SigningKey, Verifier, VerifierConfig};

thread_local! {
    static VERIFIER: Verifier = KeySet::new(
        SigningKey::from_secret("k1", Algorithm::EdDSA, [7; 32]).expect("a valid seed"),
    )
    .rotate(SigningKey::from_secret("k2", Algorithm::ES256, [9; 32]).expect("a valid scalar"))
    .expect("distinct ids")
    .verifier(
        VerifierConfig::new("iss", "aud").algorithms(&[Algorithm::EdDSA, Algorithm::ES256]),
    )
    .expect("a verifier");
}

/// `{"alg":"EdDSA","kid":"k1"}` in base64url.
const HEADER: &str = "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    VERIFIER.with(|v| {
        assert!(v.verify(text).is_err());
        assert!(v.verify(&format!("{HEADER}.{text}")).is_err());
    });
});
