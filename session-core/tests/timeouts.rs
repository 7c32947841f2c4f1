//! Idle and absolute timeouts, the touch threshold and lazy creation, on an
//! injected clock.

mod common;

use std::time::Duration;

use common::{default_config, fixture, stored_session, Counting, MIN};
use session_core::{Error, SessionConfig, SessionManager, TokenAction};

const MS: Duration = Duration::from_millis(1);

#[tokio::test]
async fn idle_timeout_ends_the_session_exactly_at_the_idle_deadline() {
    let f = fixture(default_config());
    let token = stored_session(&f).await;
    f.clock.advance(10 * MIN - MS);
    // Loading without committing does not extend anything.
    assert!(!f.manager.load(Some(&token)).await.unwrap().is_new());
    f.clock.advance(MS);
    let s = f.manager.load(Some(&token)).await.unwrap();
    assert!(s.is_new(), "at last_activity + idle the session is gone");
    assert_eq!(
        s.token_action(),
        TokenAction::Unchanged,
        "nothing to send until the request writes"
    );
}

#[tokio::test]
async fn activity_slides_the_idle_deadline() {
    let f = fixture(default_config());
    let token = stored_session(&f).await;
    for _ in 0..5 {
        f.clock.advance(6 * MIN);
        let s = f.manager.load(Some(&token)).await.unwrap();
        assert!(!s.is_new());
        s.commit().await.unwrap();
    }
    assert_eq!(
        Counting::count(&f.store.touches),
        5,
        "each request past half the window touches"
    );
}

#[tokio::test]
async fn absolute_timeout_ends_an_active_session() {
    let f = fixture(default_config().touch_after_fraction(0.0));
    let token = stored_session(&f).await;
    let created = f
        .manager
        .load(Some(&token))
        .await
        .unwrap()
        .created_at()
        .unwrap();
    // Active every 5 minutes for 55 minutes: the idle deadline keeps sliding,
    // but never past created_at + 60 minutes.
    for _ in 0..11 {
        f.clock.advance(5 * MIN);
        let s = f.manager.load(Some(&token)).await.unwrap();
        assert!(!s.is_new());
        s.insert("n", &2).unwrap();
        s.commit().await.unwrap();
    }
    let s = f.manager.load(Some(&token)).await.unwrap();
    assert_eq!(
        s.expires_at().unwrap(),
        created.saturating_add(60 * MIN),
        "expires_at = min(last_activity + idle, created_at + absolute)"
    );
    f.clock.advance(5 * MIN - MS);
    assert!(!f.manager.load(Some(&token)).await.unwrap().is_new());
    f.clock.advance(MS);
    assert!(f.manager.load(Some(&token)).await.unwrap().is_new());
}

#[tokio::test]
async fn read_only_requests_touch_only_after_the_threshold() {
    let f = fixture(default_config());
    let token = stored_session(&f).await;
    let first = f.manager.load(Some(&token)).await.unwrap();
    let deadline = first.expires_at().unwrap();

    f.clock.advance(5 * MIN - MS);
    let s = f.manager.load(Some(&token)).await.unwrap();
    assert_eq!(s.commit().await.unwrap(), TokenAction::Unchanged);
    assert_eq!(
        Counting::count(&f.store.touches),
        0,
        "under half the idle window: no write"
    );

    f.clock.advance(MS);
    let s = f.manager.load(Some(&token)).await.unwrap();
    s.commit().await.unwrap();
    assert_eq!(
        Counting::count(&f.store.touches),
        1,
        "at half the window: one touch"
    );

    let after = f.manager.load(Some(&token)).await.unwrap();
    assert_eq!(
        after.expires_at().unwrap(),
        deadline.saturating_add(5 * MIN)
    );
    after.commit().await.unwrap();
    assert_eq!(
        Counting::count(&f.store.touches),
        1,
        "just touched: no second write"
    );
    assert_eq!(
        Counting::count(&f.store.updates),
        0,
        "a touch is not a data rewrite"
    );
}

#[tokio::test]
async fn touch_keeps_the_version_and_the_data() {
    let f = fixture(default_config());
    let token = stored_session(&f).await;
    let before = f.store.inner_record(&token).await;
    f.clock.advance(6 * MIN);
    f.manager
        .load(Some(&token))
        .await
        .unwrap()
        .commit()
        .await
        .unwrap();
    let after = f.store.inner_record(&token).await;
    assert_eq!(after.version, before.version);
    assert_eq!(after.data, before.data);
    assert!(after.expires_at > before.expires_at);
}

#[tokio::test]
async fn a_session_that_is_never_written_is_never_stored() {
    let f = fixture(default_config());
    let s = f.manager.load(None).await.unwrap();
    assert_eq!(s.get::<i64>("n").unwrap(), None);
    assert!(s.user().is_none());
    assert_eq!(s.commit().await.unwrap(), TokenAction::Unchanged);
    assert_eq!(f.store.writes(), 0);
    assert!(f.store.inner.is_empty());
    assert!(s.id().is_none() && s.token().is_none());
}

#[tokio::test]
async fn a_malformed_token_costs_no_store_round_trip() {
    let f = fixture(default_config());
    for bad in [
        "",
        "short",
        &"A".repeat(44),
        "../../etc/passwd",
        &"é".repeat(43),
    ] {
        let s = f.manager.load(Some(bad)).await.unwrap();
        assert!(s.is_new());
        assert_eq!(s.commit().await.unwrap(), TokenAction::Unchanged);
    }
    assert_eq!(Counting::count(&f.store.loads), 0);
    assert_eq!(f.store.writes(), 0);
}

#[tokio::test]
async fn an_unknown_token_yields_a_new_session_with_a_fresh_token_once_written() {
    let f = fixture(default_config());
    let unknown = session_core::SessionToken::generate().expose();
    let s = f.manager.load(Some(&unknown)).await.unwrap();
    assert!(s.is_new());
    s.insert("a", &1).unwrap();
    let action = s.commit().await.unwrap();
    let issued = action.token().expect("writing issues a fresh token");
    assert_ne!(
        issued.expose(),
        unknown,
        "never adopt a token the client chose"
    );
}

#[tokio::test]
async fn inconsistent_configs_are_rejected() {
    let store = std::sync::Arc::new(session_core::MemoryStore::new());
    for config in [
        SessionConfig::default().touch_after_fraction(1.5),
        SessionConfig::default().touch_after_fraction(1.0),
        SessionConfig::default().idle_timeout(Duration::ZERO),
        SessionConfig::default().max_sessions_per_user(0),
        SessionConfig::default().max_commit_attempts(0),
    ] {
        let err = SessionManager::new(store.clone(), config).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    }
}

#[tokio::test]
async fn shortening_the_absolute_timeout_applies_to_sessions_stored_before() {
    // Stored while the absolute timeout was 60 minutes.
    let f = fixture(default_config().idle_timeout(120 * MIN));
    let token = stored_session(&f).await;
    // The deployment now says 30 minutes: a manager on the same store and
    // clock ends the session at created_at + 30 min, not at + 60 min.
    let strict = SessionManager::with_clock(
        f.store.clone(),
        default_config()
            .idle_timeout(120 * MIN)
            .absolute_timeout(30 * MIN),
        std::sync::Arc::new(f.clock.clone()),
    )
    .unwrap();
    f.clock.advance(30 * MIN - MS);
    assert!(!strict.load(Some(&token)).await.unwrap().is_new());
    f.clock.advance(MS);
    assert!(
        strict.load(Some(&token)).await.unwrap().is_new(),
        "the shorter absolute timeout ends the older session"
    );
    assert!(
        !f.manager.load(Some(&token)).await.unwrap().is_new(),
        "the record itself is still there (the 60-minute manager loads it)"
    );
}
