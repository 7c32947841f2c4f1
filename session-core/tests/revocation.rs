//! "Log out everywhere", the active-sessions list, revoking one session, the
//! per-user cap, and revoked sessions staying revoked.

mod common;

use common::{default_config, fixture, Fixture, MIN};
use session_core::{Error, Session, TokenAction};

async fn login(f: &Fixture, user: &str, agent: &str) -> Session {
    let s = f.manager.load(None).await.unwrap();
    s.set_meta("user_agent", agent);
    s.login(user);
    s.commit().await.unwrap();
    s
}

async fn alive(f: &Fixture, s: &Session) -> bool {
    let token = s.token().unwrap().expose();
    !f.manager.load(Some(&token)).await.unwrap().is_new()
}

#[tokio::test]
async fn revoke_user_ends_every_session_of_that_user_only() {
    let f = fixture(default_config());
    let a1 = login(&f, "alice", "phone").await;
    let a2 = login(&f, "alice", "laptop").await;
    let b = login(&f, "bob", "desk").await;
    assert_eq!(f.manager.revoke_user("alice", None).await.unwrap(), 2);
    assert!(!alive(&f, &a1).await && !alive(&f, &a2).await);
    assert!(alive(&f, &b).await);
}

#[tokio::test]
async fn revoke_user_can_keep_the_current_session() {
    let f = fixture(default_config());
    let a1 = login(&f, "alice", "phone").await;
    let a2 = login(&f, "alice", "laptop").await;
    let a3 = login(&f, "alice", "tablet").await;
    assert_eq!(f.manager.revoke_user("alice", Some(&a2)).await.unwrap(), 2);
    assert!(alive(&f, &a2).await);
    assert!(!alive(&f, &a1).await && !alive(&f, &a3).await);
}

#[tokio::test]
async fn list_user_summarises_live_sessions_with_metadata() {
    let f = fixture(default_config());
    let phone = login(&f, "alice", "phone").await;
    f.clock.advance(MIN);
    let laptop = login(&f, "alice", "laptop").await;
    let list = f.manager.list_user("alice").await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].id, phone.id().unwrap(), "oldest first");
    assert_eq!(list[1].id, laptop.id().unwrap());
    assert_eq!(
        list[0].meta.get("user_agent").map(String::as_str),
        Some("phone")
    );
    assert_eq!(list[1].created_at, laptop.created_at().unwrap());
    assert_eq!(list[1].last_active, laptop.created_at().unwrap());
    assert_eq!(list[1].expires_at, laptop.expires_at().unwrap());

    // Now = phone's created_at + idle: exactly its deadline.
    f.clock.advance(9 * MIN);
    let list = f.manager.list_user("alice").await.unwrap();
    assert_eq!(
        list.len(),
        1,
        "the idle-expired phone session is not listed"
    );
}

#[tokio::test]
async fn revoke_by_id_works_only_for_the_owner() {
    let f = fixture(default_config());
    let a = login(&f, "alice", "phone").await;
    let id = a.id().unwrap();
    assert!(
        !f.manager.revoke("bob", id).await.unwrap(),
        "bob cannot revoke alice's session"
    );
    assert!(alive(&f, &a).await);
    assert!(f.manager.revoke("alice", id).await.unwrap());
    assert!(!alive(&f, &a).await);
    assert!(
        !f.manager.revoke("alice", id).await.unwrap(),
        "already gone"
    );
}

#[tokio::test]
async fn per_user_cap_ends_the_least_recently_active_other_sessions() {
    let f = fixture(default_config().max_sessions_per_user(2));
    let first = login(&f, "alice", "1").await;
    f.clock.advance(MIN);
    let second = login(&f, "alice", "2").await;
    f.clock.advance(MIN);
    // The first device is used again, so the second is now least recently active.
    first.insert("seen", &true).unwrap();
    first.commit().await.unwrap();
    f.clock.advance(MIN);
    let third = login(&f, "alice", "3").await;
    assert!(alive(&f, &first).await);
    assert!(
        !alive(&f, &second).await,
        "the least recently active session made room"
    );
    assert!(alive(&f, &third).await);
    assert_eq!(f.manager.list_user("alice").await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_write_to_a_revoked_session_is_refused_and_does_not_resurrect_it() {
    let f = fixture(default_config());
    let a = login(&f, "alice", "phone").await;
    let token = a.token().unwrap().expose();
    let request = f.manager.load(Some(&token)).await.unwrap();
    f.manager.revoke_user("alice", None).await.unwrap();
    request.insert("late", &1).unwrap();
    let err = request.commit().await.unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
    assert_eq!(
        request.token_action(),
        TokenAction::Unchanged,
        "no clearing cookie: the client's cookie may already hold a newer token"
    );
    assert!(f.manager.load(Some(&token)).await.unwrap().is_new());
    assert!(f.manager.list_user("alice").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_read_only_request_on_a_revoked_session_succeeds_and_writes_nothing() {
    let f = fixture(default_config());
    let a = login(&f, "alice", "phone").await;
    let token = a.token().unwrap().expose();
    f.clock.advance(6 * MIN);
    let request = f.manager.load(Some(&token)).await.unwrap();
    f.manager.revoke_user("alice", None).await.unwrap();
    assert_eq!(request.commit().await.unwrap(), TokenAction::Unchanged);
    assert!(
        f.store.inner.is_empty(),
        "the idle extension did not bring it back"
    );
}
