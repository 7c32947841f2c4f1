//! Idle and absolute timeouts, the touch threshold and lazy creation, on an
//! injected clock.

mod common;

use std::time::Duration;

use common::{default_config, fixture, stored_session, Counting, MIN};
use session_core::{Clock, Error, SessionConfig, SessionManager, TokenAction};

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

/// Issue 19, item 5: the idle extension is computed when the request commits,
/// and a touch never moves a deadline earlier, so a request that loaded at
/// minute 6 and commits after one that loaded at minute 8 leaves the deadline
/// at 18, not 16 (10-minute idle timeout).
#[tokio::test]
async fn a_slow_request_never_moves_the_idle_deadline_earlier() {
    let f = fixture(default_config().touch_after_fraction(0.1));
    let token = stored_session(&f).await;
    let created = f.store.inner_record(&token).await.created_at;
    f.clock.advance(6 * MIN);
    let slow = f.manager.load(Some(&token)).await.unwrap();
    f.clock.advance(2 * MIN);
    let fast = f.manager.load(Some(&token)).await.unwrap();
    fast.commit().await.unwrap();
    assert_eq!(
        f.store.inner_record(&token).await.expires_at,
        created.saturating_add(18 * MIN),
        "the request at minute 8 extends the deadline to minute 18"
    );
    slow.commit().await.unwrap();
    assert_eq!(
        f.store.inner_record(&token).await.expires_at,
        created.saturating_add(18 * MIN),
        "the request that loaded at minute 6 and committed later must not pull it back to 16"
    );
}

/// Whatever order concurrent requests commit in, the session lives at least
/// `idle × (1 − touch_after_fraction)` past the latest request.
#[tokio::test]
async fn no_commit_order_shortens_the_session_below_the_touch_slack() {
    const FRACTION: f64 = 0.1;
    // Every order of four requests that load a minute apart and commit
    // after all of them have loaded.
    let orders = permutations(&[0, 1, 2, 3]);
    assert_eq!(orders.len(), 24);
    for order in orders {
        let f = fixture(default_config().touch_after_fraction(FRACTION));
        let token = stored_session(&f).await;
        let mut loaded = Vec::new();
        for _ in 0..4 {
            f.clock.advance(2 * MIN);
            loaded.push(f.manager.load(Some(&token)).await.unwrap());
        }
        let latest_request = f.clock.now();
        for i in &order {
            f.clock.advance(MS);
            loaded[*i].commit().await.unwrap();
        }
        let slack = Duration::from_secs_f64((10 * MIN).as_secs_f64() * (1.0 - FRACTION));
        let expires = f.store.inner_record(&token).await.expires_at;
        assert!(
            expires >= latest_request.saturating_add(slack),
            "commit order {order:?}: the deadline {expires:?} is sooner than the latest \
             request + idle × (1 − fraction) = {:?}",
            latest_request.saturating_add(slack)
        );
    }
}

fn permutations(items: &[usize]) -> Vec<Vec<usize>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for (i, first) in items.iter().enumerate() {
        let mut rest = items.to_vec();
        rest.remove(i);
        for mut tail in permutations(&rest) {
            tail.insert(0, *first);
            out.push(tail);
        }
    }
    out
}

/// A lowered absolute timeout still applies to stored sessions that are
/// kept busy: no idle extension carries them past the new limit.
#[tokio::test]
async fn a_lowered_absolute_timeout_ends_busy_stored_sessions_on_time() {
    let f = fixture(default_config().touch_after_fraction(0.0));
    let token = stored_session(&f).await;
    let created = f.store.inner_record(&token).await.created_at;
    let strict = SessionManager::with_clock(
        f.store.clone(),
        default_config()
            .touch_after_fraction(0.0)
            .absolute_timeout(20 * MIN),
        std::sync::Arc::new(f.clock.clone()),
    )
    .unwrap();
    for _ in 0..6 {
        f.clock.advance(3 * MIN);
        let s = strict.load(Some(&token)).await.unwrap();
        assert!(!s.is_new(), "alive before created_at + 20 min");
        s.commit().await.unwrap();
        assert!(
            f.store.inner_record(&token).await.expires_at <= created.saturating_add(20 * MIN),
            "an extension never passes the new absolute deadline"
        );
    }
    f.clock.advance(2 * MIN);
    assert!(
        strict.load(Some(&token)).await.unwrap().is_new(),
        "ended at created_at + 20 min, however busy"
    );
}
