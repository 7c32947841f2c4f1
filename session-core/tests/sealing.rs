//! Encryption at rest with a key ring.

mod common;

use common::{default_config, fixture, stored_session};
use session_core::{Error, KeyRing, SessionStore};

fn ring_v1() -> KeyRing {
    KeyRing::new(1, [1u8; 32])
}

#[tokio::test]
async fn sealed_data_is_not_readable_in_the_store() {
    let f = fixture(default_config().sealing_keys(ring_v1()));
    let s = f.manager.load(None).await.unwrap();
    s.insert("secret", &"hunter2-hunter2").unwrap();
    let token = s.commit().await.unwrap().token().unwrap().expose();
    let raw = f.store.inner_record(&token).await;
    assert!(!raw.data.windows(7).any(|w| w == b"hunter2"));
    let again = f.manager.load(Some(&token)).await.unwrap();
    assert_eq!(
        again.get::<String>("secret").unwrap().as_deref(),
        Some("hunter2-hunter2")
    );
}

#[tokio::test]
async fn data_sealed_under_an_old_key_opens_and_new_writes_use_the_new_key() {
    let old = fixture(default_config().sealing_keys(ring_v1()));
    let token = stored_session(&old).await;
    assert_eq!(
        &old.store.inner_record(&token).await.data[1..5],
        &1u32.to_be_bytes()
    );

    // Same store, a manager whose ring gained key 2.
    let ring = ring_v1().with_key(2, [2u8; 32]).unwrap();
    let manager = session_core::SessionManager::with_clock(
        old.store.clone(),
        default_config().sealing_keys(ring),
        std::sync::Arc::new(old.clock.clone()),
    )
    .unwrap();
    let s = manager.load(Some(&token)).await.unwrap();
    assert_eq!(s.get::<i64>("n").unwrap(), Some(1), "old key still opens");
    s.insert("n", &2).unwrap();
    s.commit().await.unwrap();
    assert_eq!(
        &old.store.inner_record(&token).await.data[1..5],
        &2u32.to_be_bytes()
    );
    assert_eq!(
        manager
            .load(Some(&token))
            .await
            .unwrap()
            .get::<i64>("n")
            .unwrap(),
        Some(2)
    );
}

#[tokio::test]
async fn tampered_stored_data_is_a_decode_error() {
    let f = fixture(default_config().sealing_keys(ring_v1()));
    let token = stored_session(&f).await;
    let mut raw = f.store.inner_record(&token).await;
    let last = raw.data.len() - 1;
    raw.data[last] ^= 1;
    raw.version += 1;
    f.store.inner.update(&raw, raw.version - 1).await.unwrap();
    let err = f.manager.load(Some(&token)).await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
}

#[tokio::test]
async fn ciphertext_copied_into_another_session_is_a_decode_error() {
    let f = fixture(default_config().sealing_keys(ring_v1()));
    let victim = stored_session(&f).await;
    let attacker = stored_session(&f).await;
    let stolen = f.store.inner_record(&victim).await.data;
    let mut target = f.store.inner_record(&attacker).await;
    target.data = stolen;
    target.version += 1;
    f.store
        .inner
        .update(&target, target.version - 1)
        .await
        .unwrap();
    let err = f.manager.load(Some(&attacker)).await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
}

#[tokio::test]
async fn a_ring_without_the_sealing_key_cannot_open() {
    let f = fixture(default_config().sealing_keys(ring_v1()));
    let token = stored_session(&f).await;
    let other = session_core::SessionManager::new(
        f.store.clone(),
        default_config().sealing_keys(KeyRing::new(9, [9u8; 32])),
    )
    .unwrap();
    assert!(matches!(
        other.load(Some(&token)).await,
        Err(Error::Decode { .. })
    ));
}

#[tokio::test]
async fn editing_the_principal_or_creation_time_in_the_store_is_a_decode_error() {
    let f = fixture(default_config().sealing_keys(ring_v1()));
    let s = f.manager.load(None).await.unwrap();
    s.login("mallory").unwrap();
    let token = s.commit().await.unwrap().token().unwrap().expose();

    // Someone with write access to the store but no key promotes the session.
    let mut raw = f.store.inner_record(&token).await;
    raw.user = Some("admin".into());
    raw.version += 1;
    f.store.inner.update(&raw, raw.version - 1).await.unwrap();
    let err = f.manager.load(Some(&token)).await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");

    // Or tries to dodge the absolute timeout.
    raw.user = Some("mallory".into());
    raw.created_at = raw
        .created_at
        .saturating_add(std::time::Duration::from_secs(3600));
    raw.version += 1;
    f.store.inner.update(&raw, raw.version - 1).await.unwrap();
    let err = f.manager.load(Some(&token)).await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
}

#[tokio::test]
async fn a_sealed_record_moved_to_a_key_of_the_attackers_choosing_is_a_decode_error() {
    let f = fixture(default_config().sealing_keys(ring_v1()));
    let s = f.manager.load(None).await.unwrap();
    s.login("alice").unwrap();
    s.insert("role", &"admin").unwrap();
    let token = s.commit().await.unwrap().token().unwrap().expose();
    // Rotation re-seals under the new key, so the moved session still opens.
    let s = f.manager.load(Some(&token)).await.unwrap();
    s.rotate();
    let token = s.commit().await.unwrap().token().unwrap().expose();
    assert_eq!(
        f.manager
            .load(Some(&token))
            .await
            .unwrap()
            .get::<String>("role")
            .unwrap()
            .as_deref(),
        Some("admin")
    );

    // Someone with write access but no key copies alice's record under the
    // hash of a token they made up, hoping to hold her session.
    let raw = f.store.inner_record(&token).await;
    let theirs = session_core::SessionToken::generate();
    let mut forged = raw.clone();
    forged.key = theirs.key();
    f.store.inner.delete(&raw.key).await.unwrap();
    f.store.inner.create(&forged).await.unwrap();
    let err = f.manager.load(Some(&theirs.expose())).await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
}
