//! Login, rotation on demand, logout and "remember me".

mod common;

use common::{default_config, fixture, stored_session, MIN};
use session_core::TokenAction;

#[tokio::test]
async fn login_rotates_the_token_and_keeps_data_and_id() {
    let f = fixture(default_config());
    let old = stored_session(&f).await;
    let s = f.manager.load(Some(&old)).await.unwrap();
    let id = s.id().unwrap();
    s.login("alice").unwrap();
    let action = s.commit().await.unwrap();
    let new = action.token().expect("login issues a new token").expose();
    assert_ne!(new, old);

    assert!(
        f.manager.load(Some(&old)).await.unwrap().is_new(),
        "the pre-login token is dead"
    );
    let after = f.manager.load(Some(&new)).await.unwrap();
    assert_eq!(after.user().as_deref(), Some("alice"));
    assert_eq!(after.id(), Some(id), "the SessionId survives rotation");
    assert_eq!(
        after.get::<i64>("n").unwrap(),
        Some(1),
        "data survives login"
    );
}

#[tokio::test]
async fn login_on_a_new_session_creates_it_with_the_principal() {
    let f = fixture(default_config());
    let s = f.manager.load(None).await.unwrap();
    s.login("bob").unwrap();
    let token = s.commit().await.unwrap().token().unwrap().expose();
    let again = f.manager.load(Some(&token)).await.unwrap();
    assert_eq!(again.user().as_deref(), Some("bob"));
    assert_eq!(f.manager.list_user("bob").await.unwrap().len(), 1);
}

#[tokio::test]
async fn rotate_on_demand_issues_a_new_token_and_kills_the_old_one() {
    let f = fixture(default_config());
    let old = stored_session(&f).await;
    let s = f.manager.load(Some(&old)).await.unwrap();
    let id = s.id();
    s.rotate();
    let new = s.commit().await.unwrap().token().unwrap().expose();
    assert!(f.manager.load(Some(&old)).await.unwrap().is_new());
    let after = f.manager.load(Some(&new)).await.unwrap();
    assert_eq!(after.id(), id);
    assert_eq!(after.get::<i64>("n").unwrap(), Some(1));
}

#[tokio::test]
async fn logout_deletes_server_side_and_tells_the_client_to_forget() {
    let f = fixture(default_config());
    let token = stored_session(&f).await;
    let s = f.manager.load(Some(&token)).await.unwrap();
    s.logout();
    assert_eq!(s.commit().await.unwrap(), TokenAction::Clear);
    assert!(
        f.store.inner.is_empty(),
        "deleted server-side, not just forgotten"
    );
    assert!(f.manager.load(Some(&token)).await.unwrap().is_new());
}

#[tokio::test]
async fn writes_after_logout_start_a_new_session() {
    let f = fixture(default_config());
    let token = stored_session(&f).await;
    let s = f.manager.load(Some(&token)).await.unwrap();
    s.logout();
    s.insert("flash", &"bye").unwrap();
    let action = s.commit().await.unwrap();
    let new = action.token().expect("new session issued").expose();
    assert_ne!(new, token);
    let fresh = f.manager.load(Some(&new)).await.unwrap();
    assert_eq!(
        fresh.get::<i64>("n").unwrap(),
        None,
        "no data carried over from the old session"
    );
    assert_eq!(
        fresh.get::<String>("flash").unwrap().as_deref(),
        Some("bye")
    );
}

#[tokio::test]
async fn remembered_sessions_get_a_max_age_capped_at_the_absolute_timeout() {
    let f = fixture(default_config());
    let s = f.manager.load(None).await.unwrap();
    s.set_remember(true);
    s.login("alice").unwrap();
    match s.commit().await.unwrap() {
        TokenAction::Issue { max_age, .. } => assert_eq!(max_age, Some(60 * MIN)),
        other => panic!("expected a token, got {other:?}"),
    }
    // Later requests that change "remember me" re-issue the same token.
    f.clock.advance(5 * MIN);
    let token = s.token().unwrap().expose();
    let later = f.manager.load(Some(&token)).await.unwrap();
    assert!(later.remember());
    later.set_remember(false);
    match later.commit().await.unwrap() {
        TokenAction::Issue { token: t, max_age } => {
            assert_eq!(t.expose(), token);
            assert_eq!(max_age, None, "a browser-session cookie has no Max-Age");
        }
        other => panic!("expected a token, got {other:?}"),
    }
}

#[tokio::test]
async fn browser_sessions_have_no_max_age() {
    let f = fixture(default_config());
    let s = f.manager.load(None).await.unwrap();
    s.insert("x", &1).unwrap();
    match s.commit().await.unwrap() {
        TokenAction::Issue { max_age, .. } => assert_eq!(max_age, None),
        other => panic!("expected a token, got {other:?}"),
    }
}

#[tokio::test]
async fn destroy_ends_a_session_by_token_in_one_round_trip() {
    let f = fixture(default_config());
    let token = stored_session(&f).await;
    let loads = common::Counting::count(&f.store.loads);
    assert!(f.manager.destroy(&token).await.unwrap());
    assert_eq!(
        common::Counting::count(&f.store.loads),
        loads,
        "no load first"
    );
    assert!(!f.manager.destroy(&token).await.unwrap(), "already gone");
    assert!(!f.manager.destroy("not a token").await.unwrap());
    assert!(f.manager.load(Some(&token)).await.unwrap().is_new());
}

#[tokio::test]
async fn re_authenticating_a_logged_in_session_issues_a_new_token_and_kills_the_previous_one() {
    let f = fixture(default_config());
    let s = f.manager.load(None).await.unwrap();
    s.login("alice").unwrap();
    let first = s.commit().await.unwrap().token().unwrap().expose();

    // The same person signs in again (say, a step-up prompt) on that session.
    let s = f.manager.load(Some(&first)).await.unwrap();
    assert_eq!(s.user().as_deref(), Some("alice"));
    s.login("alice").unwrap();
    let second = s
        .commit()
        .await
        .unwrap()
        .token()
        .expect("re-authentication issues a new token")
        .expose();
    assert_ne!(second, first);
    assert!(
        f.manager.load(Some(&first)).await.unwrap().is_new(),
        "the previously authenticated token is dead"
    );
    assert_eq!(
        f.manager
            .load(Some(&second))
            .await
            .unwrap()
            .user()
            .as_deref(),
        Some("alice")
    );
}

/// Issue 19, item 4: logging in as another user on a session where someone
/// is logged in starts a fresh session: new id, new token, no values or
/// metadata of the previous user, and the previous session ended.
#[tokio::test]
async fn login_as_a_different_user_starts_a_fresh_session_and_ends_the_old_one() {
    let f = fixture(default_config());
    let s = f.manager.load(None).await.unwrap();
    s.login("alice").unwrap();
    s.insert("counter", &41).unwrap();
    s.set_meta("user_agent", "alice's phone");
    let alice_token = s.commit().await.unwrap().token().unwrap().expose();
    let alice_id = s.id().unwrap();

    let s = f.manager.load(Some(&alice_token)).await.unwrap();
    s.insert("written before the switch", &true).unwrap();
    s.login("bob").unwrap();
    assert_eq!(s.user().as_deref(), Some("bob"));
    assert_eq!(
        s.get::<i64>("counter").unwrap(),
        None,
        "bob does not see alice's values, not even before the commit"
    );
    let bob_token = s.commit().await.unwrap().token().unwrap().expose();
    assert_ne!(bob_token, alice_token, "a new token");
    assert_ne!(s.id(), Some(alice_id), "a new session id");

    let bob = f.manager.load(Some(&bob_token)).await.unwrap();
    assert_eq!(bob.user().as_deref(), Some("bob"));
    assert_eq!(
        bob.get::<i64>("counter").unwrap(),
        None,
        "no values carried over"
    );
    assert_eq!(bob.get::<bool>("written before the switch").unwrap(), None);
    assert_eq!(bob.meta("user_agent"), None, "no metadata carried over");
    assert!(
        f.manager.load(Some(&alice_token)).await.unwrap().is_new(),
        "alice's session has ended"
    );
    assert!(f.manager.list_user("alice").await.unwrap().is_empty());
    let bobs = f.manager.list_user("bob").await.unwrap();
    assert_eq!(bobs.len(), 1);
    assert_ne!(bobs[0].id, alice_id, "alice's session did not move to bob");
}

/// Re-authenticating as the same user keeps the session (id, values,
/// metadata) and rotates the token.
#[tokio::test]
async fn login_again_as_the_same_user_keeps_data_and_id_and_rotates_the_token() {
    let f = fixture(default_config());
    let s = f.manager.load(None).await.unwrap();
    s.login("alice").unwrap();
    s.insert("counter", &41).unwrap();
    s.set_meta("user_agent", "phone");
    let first = s.commit().await.unwrap().token().unwrap().expose();
    let id = s.id().unwrap();
    let s = f.manager.load(Some(&first)).await.unwrap();
    s.login("alice").unwrap();
    let second = s.commit().await.unwrap().token().unwrap().expose();
    assert_ne!(first, second, "the token rotates");
    let again = f.manager.load(Some(&second)).await.unwrap();
    assert_eq!(again.id(), Some(id));
    assert_eq!(again.get::<i64>("counter").unwrap(), Some(41));
    assert_eq!(again.meta("user_agent").as_deref(), Some("phone"));
    assert!(f.manager.load(Some(&first)).await.unwrap().is_new());
}

/// Issue 19, item 6: a principal that breaks the user-name rule is refused
/// at `login` with `InvalidInput`, and the session is left as it was.
#[tokio::test]
async fn login_refuses_an_empty_an_overlong_or_a_nul_user_name_and_changes_nothing() {
    let f = fixture(default_config());
    let old = stored_session(&f).await;
    let s = f.manager.load(Some(&old)).await.unwrap();
    for bad in ["".to_owned(), "a\0b".to_owned(), "x".repeat(1025)] {
        let err = s.login(bad.clone()).unwrap_err();
        assert!(
            matches!(err, session_core::Error::InvalidInput(_)),
            "login({:?}…): InvalidInput; got {err:?}",
            &bad[..bad.len().min(8)]
        );
    }
    assert_eq!(s.user(), None, "no principal was set");
    assert_eq!(
        s.commit().await.unwrap(),
        TokenAction::Unchanged,
        "nothing to write: no rotation was planned"
    );
    let longest = "é".repeat(512);
    assert_eq!(longest.len(), 1024);
    s.login(longest.clone()).unwrap();
    let token = s.commit().await.unwrap().token().unwrap().expose();
    let again = f.manager.load(Some(&token)).await.unwrap();
    assert_eq!(again.user(), Some(longest));
}
