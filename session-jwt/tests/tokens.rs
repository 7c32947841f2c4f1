//! Issuing and verifying access tokens through the public API: every way a
//! token must be refused, with its typed error; key rotation; and the
//! revocation window (strict check at once, plain check at `exp`).

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use proptest::prelude::*;
use serde_json::json;
use session_core::{
    ClientSide, Clock as _, KeyRing, ManualClock, MemoryStore, Session, SessionConfig,
    SessionManager, Timestamp,
};
use session_jwt::{Algorithm, Error, Issuer, KeySet, SigningKey, Verifier, VerifierConfig};

const ISS: &str = "https://app.example";
const AUD: &str = "api";
const MIN: Duration = Duration::from_secs(60);

struct World {
    clock: ManualClock,
    manager: SessionManager,
    keys: KeySet,
    issuer: Issuer,
}

fn world_with(alg: Algorithm) -> World {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let store = Arc::new(MemoryStore::with_clock(Arc::new(clock.clone())));
    let config = SessionConfig::default()
        .idle_timeout(60 * MIN)
        .absolute_timeout(60 * MIN);
    let manager = SessionManager::with_clock(store, config, Arc::new(clock.clone())).unwrap();
    let keys = KeySet::new(SigningKey::generate("k1", alg));
    let issuer = Issuer::new(keys.clone(), ISS, AUD).with_clock(Arc::new(clock.clone()));
    World {
        clock,
        manager,
        keys,
        issuer,
    }
}

fn world() -> World {
    world_with(Algorithm::EdDSA)
}

impl World {
    fn verifier(&self, config: VerifierConfig) -> Verifier {
        Verifier::from_jwks(&self.keys.jwks_json(), config)
            .unwrap()
            .with_clock(Arc::new(self.clock.clone()))
    }

    fn plain(&self) -> Verifier {
        self.verifier(
            VerifierConfig::new(ISS, AUD).algorithms(&[Algorithm::EdDSA, Algorithm::ES256]),
        )
    }

    async fn logged_in(&self, user: &str) -> Session {
        let s = self.manager.load(None).await.unwrap();
        s.login(user).unwrap();
        let token = s.commit().await.unwrap().token().unwrap().expose();
        self.manager.load(Some(&token)).await.unwrap()
    }
}

#[tokio::test]
async fn a_token_from_a_live_session_verifies_with_every_claim() {
    for alg in [Algorithm::EdDSA, Algorithm::ES256] {
        let w = world_with(alg);
        let s = w.logged_in("alice").await;
        let token = w.issuer.issue(&s).unwrap();
        let claims = w.plain().verify(token.as_str()).unwrap();
        assert_eq!(&claims, token.claims());
        assert_eq!(claims.iss, ISS);
        assert_eq!(claims.aud, AUD);
        assert_eq!(claims.sub, "alice");
        assert_eq!(Some(claims.sid), s.id());
        assert_eq!(claims.iat, w.clock.now());
        assert_eq!(claims.nbf, claims.iat);
        assert_eq!(claims.exp.since(claims.iat), 5 * MIN, "default lifetime");
        assert_eq!(claims.jti.len(), 32);
        let header = jsonwebtoken::decode_header(token.as_str()).unwrap();
        assert_eq!(header.kid.as_deref(), Some("k1"));
        assert!(
            !format!("{token:?}").contains(token.as_str()),
            "Debug hides the token"
        );
    }
}

#[tokio::test]
async fn tokens_are_unique_and_never_outlive_the_sessions_absolute_deadline() {
    let w = world();
    let s = w.logged_in("alice").await;
    let a = w.issuer.issue(&s).unwrap();
    let b = w.issuer.issue(&s).unwrap();
    assert_ne!(a.claims().jti, b.claims().jti);
    w.clock.advance(58 * MIN);
    let s = w
        .manager
        .load(Some(&s.token().unwrap().expose()))
        .await
        .unwrap();
    let late = w.issuer.issue(&s).unwrap();
    assert_eq!(
        late.claims().exp.since(w.clock.now()),
        2 * MIN,
        "capped at 60 min"
    );
}

#[tokio::test]
async fn issuing_needs_a_stored_logged_in_server_side_session() {
    let w = world();
    let fresh = w.manager.load(None).await.unwrap();
    assert!(matches!(w.issuer.issue(&fresh), Err(Error::NotLoggedIn)));
    let anonymous = w.manager.load(None).await.unwrap();
    anonymous.insert("n", &1).unwrap();
    anonymous.commit().await.unwrap();
    assert!(matches!(
        w.issuer.issue(&anonymous),
        Err(Error::NotLoggedIn)
    ));
    let client = SessionManager::client_side(
        SessionConfig::default().sealing_keys(KeyRing::new(1, [1; 32])),
        ClientSide::new(),
    )
    .unwrap();
    let c = client.load(None).await.unwrap();
    c.login("alice").unwrap();
    c.commit().await.unwrap();
    assert!(matches!(w.issuer.issue(&c), Err(Error::ClientSideSession)));
}

#[tokio::test]
async fn ending_the_session_stops_new_tokens_at_once_and_the_strict_check_at_once() {
    let w = world();
    let s = w.logged_in("alice").await;
    let cookie = s.token().unwrap().expose();
    let token = w.issuer.issue(&s).unwrap();
    let verifier = w.plain();
    assert!(verifier
        .verify_live(token.as_str(), &w.manager)
        .await
        .is_ok());

    assert!(w.manager.revoke("alice", s.id().unwrap()).await.unwrap());
    // The refresh credential no longer loads a session: no new token.
    let again = w.manager.load(Some(&cookie)).await.unwrap();
    assert!(matches!(w.issuer.issue(&again), Err(Error::NotLoggedIn)));
    // The strict check refuses the very next request…
    assert!(matches!(
        verifier.verify_live(token.as_str(), &w.manager).await,
        Err(Error::SessionEnded)
    ));
    // …the plain check accepts until exp, then refuses.
    w.clock.advance(5 * MIN - Duration::from_secs(1));
    assert!(
        verifier.verify(token.as_str()).is_ok(),
        "the documented window"
    );
    w.clock.advance(Duration::from_secs(1));
    assert!(matches!(
        verifier.verify(token.as_str()),
        Err(Error::Expired)
    ));
}

#[tokio::test]
async fn logout_and_log_out_everywhere_end_the_strict_check_too() {
    let w = world();
    let verifier = w.plain();
    let s = w.logged_in("alice").await;
    let token = w.issuer.issue(&s).unwrap();
    s.logout();
    s.commit().await.unwrap();
    assert!(matches!(
        verifier.verify_live(token.as_str(), &w.manager).await,
        Err(Error::SessionEnded)
    ));
    let s = w.logged_in("alice").await;
    let token = w.issuer.issue(&s).unwrap();
    w.manager.revoke_user("alice", None).await.unwrap();
    assert!(matches!(
        verifier.verify_live(token.as_str(), &w.manager).await,
        Err(Error::SessionEnded)
    ));
}

#[tokio::test]
async fn leeway_is_honoured_up_to_sixty_seconds_and_no_more() {
    let w = world();
    let s = w.logged_in("alice").await;
    let token = w.issuer.issue(&s).unwrap();
    let lenient = w.verifier(VerifierConfig::new(ISS, AUD).leeway(Duration::from_secs(30)));
    w.clock.advance(5 * MIN + Duration::from_secs(29));
    assert!(lenient.verify(token.as_str()).is_ok());
    w.clock.advance(Duration::from_secs(1));
    assert!(matches!(
        lenient.verify(token.as_str()),
        Err(Error::Expired)
    ));
    let too_lenient = Verifier::from_jwks(
        &w.keys.jwks_json(),
        VerifierConfig::new(ISS, AUD).leeway(Duration::from_secs(61)),
    );
    assert!(matches!(too_lenient, Err(Error::InvalidKey(_))));
}

#[tokio::test]
async fn a_token_from_an_issuer_whose_clock_runs_ahead_is_not_yet_valid() {
    let w = world();
    let s = w.logged_in("alice").await;
    let ahead = ManualClock::new(Timestamp::from_millis(1_800_000_000_000 + 120_000));
    let issuer = Issuer::new(w.keys.clone(), ISS, AUD).with_clock(Arc::new(ahead));
    let token = issuer.issue(&s).unwrap();
    assert!(matches!(
        w.plain().verify(token.as_str()),
        Err(Error::NotYetValid)
    ));
    let lenient = w.verifier(VerifierConfig::new(ISS, AUD).leeway(MIN));
    assert!(matches!(
        lenient.verify(token.as_str()),
        Err(Error::NotYetValid)
    ));
    w.clock.advance(MIN);
    assert!(lenient.verify(token.as_str()).is_ok());
}

/// A compact JWS with any header and claims, and a given signature part.
fn forge(header: serde_json::Value, claims: serde_json::Value, signature: &str) -> String {
    let part = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!("{}.{}.{signature}", part(&header), part(&claims))
}

fn claims_of(w: &World, sid: &str) -> serde_json::Value {
    let now = w.clock.now().as_millis() / 1000;
    json!({ "iss": ISS, "aud": AUD, "sub": "admin", "sid": sid, "iat": now, "nbf": now, "exp": now + 300, "jti": "x" })
}

#[tokio::test]
async fn alg_none_and_hmac_with_the_public_key_are_refused_by_name() {
    let w = world();
    let s = w.logged_in("alice").await;
    let sid = s.id().unwrap().to_string();
    let verifier = w.plain();
    for alg in ["none", "None", "NONE"] {
        let token = forge(json!({ "alg": alg, "kid": "k1" }), claims_of(&w, &sid), "");
        match verifier.verify(&token) {
            Err(Error::UnsupportedAlgorithm(named)) => assert_eq!(named, alg),
            other => panic!("alg {alg}: {other:?}"),
        }
    }
    // The classic confusion: sign HS256 with the published public key as
    // the HMAC secret.
    let x = w.keys.jwks().keys[0].clone();
    let public = serde_json::to_value(&x).unwrap()["x"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("k1".into());
    let hs = jsonwebtoken::encode(
        &header,
        &claims_of(&w, &sid),
        &jsonwebtoken::EncodingKey::from_secret(public.as_bytes()).unwrap(),
    )
    .unwrap();
    assert!(matches!(
        verifier.verify(&hs),
        Err(Error::UnsupportedAlgorithm(_))
    ));
}

#[tokio::test]
async fn every_other_bad_token_is_refused_with_its_own_error() {
    let w = world();
    let s = w.logged_in("alice").await;
    let good = w.issuer.issue(&s).unwrap().as_str().to_owned();
    let verifier = w.plain();

    let other_aud = Issuer::new(w.keys.clone(), ISS, "other").with_clock(Arc::new(w.clock.clone()));
    assert!(matches!(
        verifier.verify(other_aud.issue(&s).unwrap().as_str()),
        Err(Error::WrongAudience)
    ));
    let other_iss = Issuer::new(w.keys.clone(), "https://evil.example", AUD)
        .with_clock(Arc::new(w.clock.clone()));
    assert!(matches!(
        verifier.verify(other_iss.issue(&s).unwrap().as_str()),
        Err(Error::WrongIssuer)
    ));
    let stranger = KeySet::new(SigningKey::generate("k9", Algorithm::EdDSA));
    let unknown = Issuer::new(stranger, ISS, AUD).with_clock(Arc::new(w.clock.clone()));
    assert!(matches!(
        verifier.verify(unknown.issue(&s).unwrap().as_str()),
        Err(Error::UnknownKey)
    ));
    // Same kid, another key: the signature does not verify.
    let impostor = KeySet::new(SigningKey::generate("k1", Algorithm::EdDSA));
    let forged = Issuer::new(impostor, ISS, AUD).with_clock(Arc::new(w.clock.clone()));
    assert!(matches!(
        verifier.verify(forged.issue(&s).unwrap().as_str()),
        Err(Error::BadSignature)
    ));
    // A changed claim under the original signature.
    let (head, rest) = good.split_once('.').unwrap();
    let (_, signature) = rest.split_once('.').unwrap();
    let mut claims = claims_of(&w, &s.id().unwrap().to_string());
    claims["sub"] = json!("admin");
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    assert!(matches!(
        verifier.verify(&format!("{head}.{payload}.{signature}")),
        Err(Error::BadSignature)
    ));
    // Truncated, oversized, empty, not a JWS.
    for cut in [good.len() - 1, good.len() / 2, 10, 1] {
        let err = verifier.verify(&good[..cut]).unwrap_err();
        assert!(
            matches!(err, Error::Malformed { .. } | Error::BadSignature),
            "cut at {cut}: {err:?}"
        );
    }
    let huge = format!("{good}{}", "A".repeat(5000));
    assert!(matches!(
        verifier.verify(&huge),
        Err(Error::Oversized { max: 4096, .. })
    ));
    assert!(matches!(verifier.verify(""), Err(Error::Missing)));
    assert!(matches!(
        verifier.verify("not a token"),
        Err(Error::Malformed { .. })
    ));
    // An ES256 token at a verifier configured for EdDSA only.
    let es_keys = KeySet::new(SigningKey::generate("k-es", Algorithm::ES256));
    let es_issuer = Issuer::new(es_keys.clone(), ISS, AUD).with_clock(Arc::new(w.clock.clone()));
    let es_token = es_issuer.issue(&s).unwrap();
    let ed_only = Verifier::from_jwks(
        &w.keys
            .rotate(es_keys.signing().clone())
            .unwrap()
            .jwks_json(),
        VerifierConfig::new(ISS, AUD),
    )
    .unwrap()
    .with_clock(Arc::new(w.clock.clone()));
    assert!(matches!(
        ed_only.verify(es_token.as_str()),
        Err(Error::UnsupportedAlgorithm(_))
    ));
    // Every refusal is an invalid token for an HTTP layer.
    assert!(Error::BadSignature.is_invalid_token());
    assert!(!Error::NotLoggedIn.is_invalid_token());
}

#[tokio::test]
async fn rotating_keys_never_invalidates_a_token_before_its_exp() {
    let w = world();
    let s = w.logged_in("alice").await;
    let old = w.issuer.issue(&s).unwrap();
    let rotated = w
        .keys
        .rotate(SigningKey::generate("k2", Algorithm::ES256))
        .unwrap();
    let issuer = Issuer::new(rotated.clone(), ISS, AUD).with_clock(Arc::new(w.clock.clone()));
    let new = issuer.issue(&s).unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(new.as_str())
            .unwrap()
            .kid
            .as_deref(),
        Some("k2")
    );
    let verifier = Verifier::from_jwks(
        &rotated.jwks_json(),
        VerifierConfig::new(ISS, AUD).algorithms(&[Algorithm::EdDSA, Algorithm::ES256]),
    )
    .unwrap()
    .with_clock(Arc::new(w.clock.clone()));
    assert!(
        verifier.verify(old.as_str()).is_ok(),
        "signed before the rotation"
    );
    assert!(verifier.verify(new.as_str()).is_ok());
    // Retired after the old tokens' lifetime: its tokens no longer verify.
    let retired = rotated.retire("k1").unwrap();
    let verifier = Verifier::from_jwks(
        &retired.jwks_json(),
        VerifierConfig::new(ISS, AUD).algorithms(&[Algorithm::EdDSA, Algorithm::ES256]),
    )
    .unwrap()
    .with_clock(Arc::new(w.clock.clone()));
    assert!(matches!(
        verifier.verify(old.as_str()),
        Err(Error::UnknownKey)
    ));
}

#[test]
fn a_jwks_document_with_mistakes_is_a_clear_error() {
    let cfg = || VerifierConfig::new(ISS, AUD);
    assert!(matches!(
        Verifier::from_jwks("nope", cfg()),
        Err(Error::InvalidKey(_))
    ));
    assert!(matches!(
        Verifier::from_jwks(r#"{"keys":[]}"#, cfg()),
        Err(Error::InvalidKey(_))
    ));
    let k = KeySet::new(SigningKey::generate("a", Algorithm::EdDSA));
    let mut set = k.jwks();
    set.keys[0].common.key_id = None;
    let json = serde_json::to_string(&set).unwrap();
    let err = Verifier::from_jwks(&json, cfg()).unwrap_err();
    assert!(err.to_string().contains("no kid"), "{err}");
    let mut twice = k.jwks();
    twice.keys.push(twice.keys[0].clone());
    let json = serde_json::to_string(&twice).unwrap();
    assert!(Verifier::from_jwks(&json, cfg())
        .unwrap_err()
        .to_string()
        .contains("twice"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_verifies_and_never_panics(text in ".{0,600}") {
        let w = world();
        prop_assert!(w.plain().verify(&text).is_err());
    }

    #[test]
    fn any_change_to_a_valid_token_is_refused(at in any::<prop::sample::Index>(), with in "[A-Za-z0-9_.=-]") {
        let w = world();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let s = rt.block_on(w.logged_in("alice"));
        let token = w.issuer.issue(&s).unwrap().as_str().to_owned();
        let mut bytes = token.clone().into_bytes();
        let i = at.index(bytes.len());
        bytes[i] = with.as_bytes()[0];
        let changed = String::from_utf8(bytes).unwrap();
        prop_assume!(changed != token);
        // base64url's last character of a segment may carry unused bits:
        // a change there can decode to the same bytes, and then verifies.
        if let Ok(claims) = w.plain().verify(&changed) {
            prop_assert_eq!(&claims, &w.plain().verify(&token).unwrap());
        }
    }
}

#[test]
fn a_jwks_key_of_the_wrong_size_or_kind_is_refused_when_the_verifier_is_built() {
    let keys = KeySet::new(SigningKey::generate("k1", Algorithm::EdDSA));
    let mut doc: serde_json::Value = serde_json::from_str(&keys.jwks_json()).unwrap();
    let cfg = || VerifierConfig::new(ISS, AUD).algorithms(&[Algorithm::EdDSA, Algorithm::ES256]);
    for (field, value, why) in [
        ("x", json!("AAAA"), "bytes where 32 are needed"),
        (
            "x",
            json!(URL_SAFE_NO_PAD.encode([0u8; 57])),
            "bytes where 32 are needed",
        ),
        ("crv", json!("Ed448"), "kty or crv"),
        ("use", json!("enc"), "not for signatures"),
    ] {
        let mut bad = doc.clone();
        bad["keys"][0][field] = value;
        let err = Verifier::from_jwks(&bad.to_string(), cfg()).unwrap_err();
        assert!(err.to_string().contains(why), "{field}: {err}");
    }
    // A key of an algorithm this verifier does not take is skipped, kid or not.
    let es = SigningKey::generate("k2", Algorithm::ES256);
    let mut es_jwk = serde_json::to_value(es.public_jwk()).unwrap();
    es_jwk.as_object_mut().unwrap().remove("kid");
    doc["keys"].as_array_mut().unwrap().push(es_jwk);
    assert!(Verifier::from_jwks(&doc.to_string(), VerifierConfig::new(ISS, AUD)).is_ok());
}

#[tokio::test]
async fn a_published_key_is_fetched_before_it_signs_so_no_verifier_refuses_a_fresh_token() {
    let w = world();
    let s = w.logged_in("alice").await;
    let old_token = w.issuer.issue(&s).unwrap();
    // Step 1: publish. Verifiers fetch this set; the old key still signs.
    let published = w
        .keys
        .publish(SigningKey::generate("k2", Algorithm::EdDSA))
        .unwrap();
    let fetched = published.jwks_json();
    // Step 2: promote. Verifiers still hold the set fetched at step 1.
    let promoted = published.promote("k2").unwrap();
    let issuer = Issuer::new(promoted, ISS, AUD).with_clock(Arc::new(w.clock.clone()));
    let new_token = issuer.issue(&s).unwrap();
    let verifier = Verifier::from_jwks(&fetched, VerifierConfig::new(ISS, AUD))
        .unwrap()
        .with_clock(Arc::new(w.clock.clone()));
    assert!(
        verifier.verify(new_token.as_str()).is_ok(),
        "signed by k2, known since step 1"
    );
    assert!(
        verifier.verify(old_token.as_str()).is_ok(),
        "signed by k1, still published"
    );
}

#[tokio::test]
async fn issue_live_refuses_a_session_revoked_after_it_was_loaded() {
    let w = world();
    let s = w.logged_in("alice").await;
    assert!(w.issuer.issue_live(&s, &w.manager).await.is_ok());
    w.manager.revoke("alice", s.id().unwrap()).await.unwrap();
    assert!(matches!(
        w.issuer.issue_live(&s, &w.manager).await,
        Err(Error::SessionEnded)
    ));
}
