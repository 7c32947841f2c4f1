//! "Log out everywhere", the active-sessions list, revoking one session, the
//! per-user cap, and revoked sessions staying revoked.

mod common;

use common::{default_config, fixture, Fixture, MIN};
use session_core::{Error, Session, TokenAction};

async fn login(f: &Fixture, user: &str, agent: &str) -> Session {
    let s = f.manager.load(None).await.unwrap();
    s.set_meta("user_agent", agent);
    s.login(user).unwrap();
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

/// Issue 19, item 3: concurrent logins under a per-user cap never end all of
/// the user's sessions: exactly `min(cap, logins)` stay, the newest by
/// (last activity, id), and every login still gets its token.
#[tokio::test]
async fn concurrent_logins_under_a_cap_keep_exactly_the_newest_sessions() {
    for cap in [1usize, 3] {
        for logins in [2usize, 16] {
            let f = fixture(default_config().max_sessions_per_user(cap));
            let gate = std::sync::Arc::new(tokio::sync::Barrier::new(logins));
            let mut tasks = Vec::new();
            for i in 0..logins {
                let manager = f.manager.clone();
                let clock = f.clock.clone();
                let gate = gate.clone();
                tasks.push(tokio::spawn(async move {
                    let s = manager.load(None).await.unwrap();
                    s.login("alice").unwrap();
                    // Some logins a millisecond apart, some at the same instant.
                    if i % 4 == 0 {
                        clock.advance(std::time::Duration::from_millis(1));
                    }
                    gate.wait().await;
                    let action = s.commit().await.unwrap();
                    assert!(action.token().is_some(), "every login gets its token");
                    (s.created_at().unwrap(), s.id().unwrap())
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.push(t.await.unwrap());
            }
            all.sort_by(|a, b| b.cmp(a));
            let want: Vec<_> = all
                .iter()
                .take(cap.min(logins))
                .map(|(_, id)| *id)
                .collect();
            let mut kept: Vec<_> = f
                .manager
                .list_user("alice")
                .await
                .unwrap()
                .into_iter()
                .map(|i| i.id)
                .collect();
            kept.sort();
            let mut want_sorted = want.clone();
            want_sorted.sort();
            assert_eq!(
                kept,
                want_sorted,
                "cap {cap}, {logins} concurrent logins: exactly the newest {} stay",
                cap.min(logins)
            );
        }
    }
}

/// A login that is not racing another never ends its own session, whatever
/// the cap: the newest session is always the one just logged in.
#[tokio::test]
async fn a_login_never_ends_its_own_session_to_make_room() {
    let f = fixture(default_config().max_sessions_per_user(1));
    let mut last = None;
    for agent in ["1", "2", "3", "4"] {
        f.clock.advance(MIN);
        let s = login(&f, "alice", agent).await;
        assert!(alive(&f, &s).await, "the session just logged in is alive");
        if let Some(previous) = &last {
            assert!(!alive(&f, previous).await, "the older one made room");
        }
        last = Some(s);
    }
    assert_eq!(f.manager.list_user("alice").await.unwrap().len(), 1);
}

/// Issue 19, item 7: revoking by id while the session rotates in a loop
/// either ends it or truthfully says it is gone; here it is live throughout,
/// so the revoke must succeed, and the rotating client is logged out.
#[tokio::test]
async fn revoke_by_id_ends_a_session_that_keeps_rotating() {
    for _ in 0..20 {
        let f = fixture(default_config());
        let s = login(&f, "alice", "phone").await;
        let id = s.id().unwrap();
        let first = s.token().unwrap().expose();
        let rotations = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let rotating = {
            let manager = f.manager.clone();
            let rotations = rotations.clone();
            tokio::spawn(async move {
                let mut token = first;
                loop {
                    let s = manager.load(Some(&token)).await.unwrap();
                    if s.is_new() {
                        return token;
                    }
                    s.rotate();
                    match s.commit().await {
                        Ok(action) => token = action.token().unwrap().expose(),
                        Err(Error::NotFound) => return token,
                        Err(e) => panic!("rotation: {e:?}"),
                    }
                    rotations.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::task::yield_now().await;
                }
            })
        };
        while rotations.load(std::sync::atomic::Ordering::SeqCst) < 3 {
            tokio::task::yield_now().await;
        }
        assert!(
            f.manager.revoke("alice", id).await.unwrap(),
            "the session is live throughout: revoke must find it, not answer 'gone'"
        );
        let last = tokio::time::timeout(std::time::Duration::from_secs(5), rotating)
            .await
            .expect("the rotating client is logged out")
            .unwrap();
        assert!(f.manager.load(Some(&last)).await.unwrap().is_new());
        assert!(f.manager.list_user("alice").await.unwrap().is_empty());
        assert!(
            !f.manager.revoke("alice", id).await.unwrap(),
            "then it truthfully reports the session gone"
        );
    }
}
