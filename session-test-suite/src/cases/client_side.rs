//! Client-side sessions' revocation list over this store: the list keeps
//! ordinary records (no principal, versioned read-modify-write per user), so
//! every backend that passes the rest of the suite serves it. These cases go
//! through the public [`SessionManager`] API.

use std::sync::Arc;

use session_core::{
    ClientSide, KeyRing, Session, SessionConfig, SessionManager, SessionStore, TokenAction,
};

use super::StartGate;

/// A client-side manager whose revocation list lives in `store`.
fn manager(store: &Arc<dyn SessionStore>) -> SessionManager {
    let config = SessionConfig::default().sealing_keys(KeyRing::new(1, [42; 32]));
    let client = ClientSide::new().revocation_list(Arc::clone(store));
    SessionManager::client_side(config, client).expect("a valid client-side config")
}

/// The cookie value a commit sets (one chunk: these sessions are small).
async fn commit(session: &Session) -> String {
    match session.commit().await.expect("commit") {
        TokenAction::IssueCookies { cookies, .. } => {
            assert_eq!(cookies.len(), 1, "a small session is one cookie");
            cookies[0].value().to_owned()
        }
        other => panic!("a write sets the cookie, got {other:?}"),
    }
}

async fn user_of(manager: &SessionManager, cookie: &str) -> Option<String> {
    manager.load(Some(cookie)).await.expect("load").user()
}

/// A unique user per run (the store may be shared with other cases).
fn user(tag: &str) -> String {
    format!("{tag}-{}", session_core::SessionId::generate())
}

/// With the revocation list on, a cookie replayed after its session logged
/// out, logged in (the anonymous cookie before it), or rotated is a fresh
/// session; the cookie that replaced it still works.
pub async fn client_side_cookies_replayed_after_logout_login_or_rotate_are_refused(
    store: Arc<dyn SessionStore>,
) {
    let manager = manager(&store);
    let alice = user("alice");

    // An anonymous session, then a login: the anonymous cookie is revoked.
    let s = manager.load(None).await.expect("load");
    s.insert("basket", &3).expect("insert");
    let anonymous = commit(&s).await;
    let s = manager.load(Some(&anonymous)).await.expect("load");
    s.login(&alice).expect("login");
    let logged_in = commit(&s).await;
    assert_eq!(user_of(&manager, &logged_in).await, Some(alice.clone()));
    let replayed = manager.load(Some(&anonymous)).await.expect("load");
    assert!(
        replayed.is_new() && replayed.get::<u32>("basket").unwrap().is_none(),
        "the pre-login anonymous cookie is refused after login"
    );

    // A rotation: the old cookie is refused, the new one works.
    let s = manager.load(Some(&logged_in)).await.expect("load");
    s.rotate();
    let rotated = commit(&s).await;
    assert_eq!(
        user_of(&manager, &logged_in).await,
        None,
        "rotated-away cookie"
    );
    assert_eq!(user_of(&manager, &rotated).await, Some(alice.clone()));

    // Logout: the cookie is refused from the next request on.
    let s = manager.load(Some(&rotated)).await.expect("load");
    s.logout();
    assert_eq!(s.commit().await.expect("commit"), TokenAction::Clear);
    assert_eq!(user_of(&manager, &rotated).await, None, "logged-out cookie");

    // Another session of the same user is not affected.
    let other = manager.load(None).await.expect("load");
    other.login(&alice).expect("login");
    let other = commit(&other).await;
    assert_eq!(user_of(&manager, &other).await, Some(alice.clone()));
}

/// "Log out everywhere" refuses every other cookie of the user, including
/// ones issued long before, and the session that asked keeps working with
/// the cookie its request sets; another user's cookie is untouched.
pub async fn client_side_log_out_everywhere_refuses_every_other_cookie_of_the_user(
    store: Arc<dyn SessionStore>,
) {
    let manager = manager(&store);
    let alice = user("alice");
    let bob = user("bob");
    let mut cookies = Vec::new();
    for _ in 0..3 {
        let s = manager.load(None).await.expect("load");
        s.login(&alice).expect("login");
        cookies.push(commit(&s).await);
    }
    let b = manager.load(None).await.expect("load");
    b.login(&bob).expect("login");
    let bobs = commit(&b).await;

    let current = manager.load(Some(&cookies[0])).await.expect("load");
    manager
        .revoke_user(&alice, Some(&current))
        .await
        .expect("revoke_user");
    let kept = commit(&current).await;
    assert_eq!(
        user_of(&manager, &kept).await,
        Some(alice.clone()),
        "the session that logged the others out keeps going with its new cookie"
    );
    for (i, cookie) in cookies.iter().enumerate() {
        assert_eq!(user_of(&manager, cookie).await, None, "cookie {i} refused");
    }
    assert_eq!(
        user_of(&manager, &bobs).await,
        Some(bob),
        "other users untouched"
    );

    // A login after it is a new cookie, issued after the not-before time.
    let later = manager.load(None).await.expect("load");
    later.login(&alice).expect("login");
    let later = commit(&later).await;
    assert_eq!(user_of(&manager, &later).await, Some(alice));
}

/// 16 sessions of one user log out at once: each logout is a versioned
/// read-modify-write of the user's revocation record, and none is lost.
pub async fn client_side_concurrent_logouts_of_one_user_all_stay_revoked(
    store: Arc<dyn SessionStore>,
) {
    const SESSIONS: usize = 16;
    let manager = manager(&store);
    let alice = user("alice");
    let mut cookies = Vec::new();
    for _ in 0..SESSIONS {
        let s = manager.load(None).await.expect("load");
        s.login(&alice).expect("login");
        cookies.push(commit(&s).await);
    }
    let gate = StartGate::new();
    let mut handles = Vec::new();
    for cookie in cookies.clone() {
        let manager = manager.clone();
        let gate = gate.clone();
        handles.push(tokio::spawn(async move {
            let s = manager.load(Some(&cookie)).await.expect("load");
            s.logout();
            gate.wait().await;
            s.commit().await.expect("every logout commits")
        }));
    }
    gate.open();
    for h in handles {
        assert_eq!(h.await.expect("logout task panicked"), TokenAction::Clear);
    }
    for (i, cookie) in cookies.iter().enumerate() {
        assert_eq!(
            user_of(&manager, cookie).await,
            None,
            "cookie {i} of {SESSIONS} concurrently logged out is refused"
        );
    }
}
