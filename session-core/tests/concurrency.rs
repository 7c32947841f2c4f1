//! No lost updates: concurrent requests on one session.

mod common;

use std::sync::Arc;

use common::{default_config, fixture, stored_session};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_tasks_incrementing_fifty_times_end_at_3200() {
    let f = Arc::new(fixture(default_config().max_commit_attempts(10_000)));
    let token = Arc::new(stored_session(&f).await);
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (f, token) = (f.clone(), token.clone());
            tokio::spawn(async move {
                for _ in 0..50 {
                    let s = f.manager.load(Some(&token)).await.unwrap();
                    s.modify("count", |c: Option<u64>| c.unwrap_or(0) + 1)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let s = f.manager.load(Some(&token)).await.unwrap();
    assert_eq!(s.get::<u64>("count").unwrap(), Some(3200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_tasks_writing_different_keys_all_land() {
    let f = Arc::new(fixture(default_config().max_commit_attempts(10_000)));
    let token = Arc::new(stored_session(&f).await);
    // Every task loads before any commits, so nearly every commit conflicts.
    let sessions = futures_join(&f, &token).await;
    let tasks: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            tokio::spawn(async move {
                s.insert(format!("key{i}"), &i).unwrap();
                s.commit().await.unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let s = f.manager.load(Some(&token)).await.unwrap();
    for i in 0..64usize {
        assert_eq!(
            s.get::<usize>(&format!("key{i}")).unwrap(),
            Some(i),
            "key{i} lost"
        );
    }
    assert_eq!(
        s.get::<i64>("n").unwrap(),
        Some(1),
        "untouched keys survive"
    );
}

async fn futures_join(f: &common::Fixture, token: &str) -> Vec<session_core::Session> {
    let mut out = Vec::new();
    for _ in 0..64 {
        out.push(f.manager.load(Some(token)).await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_removal_and_an_insert_from_two_requests_both_land() {
    let f = fixture(default_config());
    let token = stored_session(&f).await;
    let a = f.manager.load(Some(&token)).await.unwrap();
    let b = f.manager.load(Some(&token)).await.unwrap();
    a.remove("n");
    a.commit().await.unwrap();
    b.insert("m", &2).unwrap();
    b.commit().await.unwrap();
    let s = f.manager.load(Some(&token)).await.unwrap();
    assert_eq!(
        s.get::<i64>("n").unwrap(),
        None,
        "a's removal is not undone by b's stale copy"
    );
    assert_eq!(s.get::<i64>("m").unwrap(), Some(2));
}

#[tokio::test]
async fn bounded_attempts_give_up_with_a_conflict_error() {
    // One attempt and a guaranteed conflict: the error is Conflict, and the
    // changes stay pending for a later commit.
    let f = fixture(default_config().max_commit_attempts(1));
    let token = stored_session(&f).await;
    let a = f.manager.load(Some(&token)).await.unwrap();
    let b = f.manager.load(Some(&token)).await.unwrap();
    b.insert("b", &1).unwrap();
    b.commit().await.unwrap();
    a.insert("a", &1).unwrap();
    let err = a.commit().await.unwrap_err();
    assert!(matches!(err, session_core::Error::Conflict), "{err:?}");
    a.commit()
        .await
        .expect("second commit re-applies on the fresh version");
    let s = f.manager.load(Some(&token)).await.unwrap();
    assert_eq!(s.get::<i64>("a").unwrap(), Some(1));
    assert_eq!(s.get::<i64>("b").unwrap(), Some(1));
}

#[tokio::test]
async fn a_failed_modify_is_not_applied_by_a_later_commit() {
    let f = fixture(default_config());
    let token = stored_session(&f).await;
    let s = f.manager.load(Some(&token)).await.unwrap();
    f.store
        .fail_updates
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let err = s
        .modify("count", |c: Option<u64>| c.unwrap_or(0) + 1)
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(
        s.get::<u64>("count").unwrap(),
        None,
        "the failed change is gone from the view"
    );
    f.store
        .fail_updates
        .store(false, std::sync::atomic::Ordering::SeqCst);
    // What the HTTP layer does at the end of every request:
    s.commit().await.unwrap();
    let again = f.manager.load(Some(&token)).await.unwrap();
    assert_eq!(
        again.get::<u64>("count").unwrap(),
        None,
        "the caller was told it failed"
    );
}

/// The first change hands the loaded data over to the request's view
/// without a copy; taking a failed `modify` back rebuilds the view from the
/// stored (here sealed) record, keeping the stored values and the other
/// pending change.
#[tokio::test]
async fn a_failed_modify_keeps_the_stored_data_and_the_other_pending_changes() {
    let config = default_config().sealing_keys(session_core::KeyRing::new(1, [7; 32]));
    let f = fixture(config);
    let token = stored_session(&f).await;
    let s = f.manager.load(Some(&token)).await.unwrap();
    s.insert("kept", &"yes").unwrap();
    f.store
        .fail_updates
        .store(true, std::sync::atomic::Ordering::SeqCst);
    s.modify("count", |c: Option<u64>| c.unwrap_or(0) + 1)
        .await
        .unwrap_err();
    assert_eq!(s.get::<u64>("n").unwrap(), Some(1), "the stored value");
    assert_eq!(s.get::<String>("kept").unwrap().as_deref(), Some("yes"));
    assert_eq!(s.get::<u64>("count").unwrap(), None);
    f.store
        .fail_updates
        .store(false, std::sync::atomic::Ordering::SeqCst);
    s.commit().await.unwrap();
    let again = f.manager.load(Some(&token)).await.unwrap();
    assert_eq!(again.get::<u64>("n").unwrap(), Some(1));
    assert_eq!(again.get::<String>("kept").unwrap().as_deref(), Some("yes"));
    assert_eq!(again.get::<u64>("count").unwrap(), None);
}

/// After `logout`, changes start a new, empty session: taking a failed
/// `modify` back must not bring the logged-out data back into view.
#[tokio::test]
async fn a_failed_modify_after_logout_does_not_bring_the_old_data_back() {
    use std::sync::atomic::Ordering::SeqCst;
    let f = fixture(default_config());
    let token = stored_session(&f).await;
    let s = f.manager.load(Some(&token)).await.unwrap();
    s.logout();
    s.insert("fresh", &true).unwrap();
    f.store.fail_deletes.store(true, SeqCst);
    s.modify("count", |c: Option<u64>| c.unwrap_or(0) + 1)
        .await
        .unwrap_err();
    assert_eq!(s.get::<u64>("count").unwrap(), None);
    assert_eq!(
        s.get::<u64>("n").unwrap(),
        None,
        "logged-out data stays gone"
    );
    assert_eq!(s.get::<bool>("fresh").unwrap(), Some(true));
    f.store.fail_deletes.store(false, SeqCst);
    let action = s.commit().await.unwrap();
    let fresh = action.token().expect("a new session").expose();
    assert!(f.manager.load(Some(&token)).await.unwrap().is_new());
    let again = f.manager.load(Some(&fresh)).await.unwrap();
    assert_eq!(again.get::<u64>("n").unwrap(), None);
    assert_eq!(again.get::<bool>("fresh").unwrap(), Some(true));
}

#[tokio::test]
async fn a_change_made_while_a_commit_is_in_flight_stays_pending_for_the_next_commit() {
    let f = fixture(default_config());
    let token = stored_session(&f).await;
    let s = f.manager.load(Some(&token)).await.unwrap();
    s.insert("first", &1).unwrap();
    let hold = f.store.update_gate.write().await;
    let committing = tokio::spawn({
        let s = s.clone();
        async move { s.commit().await }
    });
    f.store.update_entered.notified().await;
    s.insert("second", &2).unwrap();
    drop(hold);
    committing.await.unwrap().unwrap();

    assert_eq!(s.get::<i32>("first").unwrap(), Some(1));
    assert_eq!(s.get::<i32>("second").unwrap(), Some(2), "still seen");
    let stored = f.manager.load(Some(&token)).await.unwrap();
    assert_eq!(stored.get::<i32>("first").unwrap(), Some(1));
    assert_eq!(
        stored.get::<i32>("second").unwrap(),
        None,
        "not yet written"
    );

    s.commit().await.unwrap();
    let stored = f.manager.load(Some(&token)).await.unwrap();
    assert_eq!(stored.get::<i32>("first").unwrap(), Some(1));
    assert_eq!(stored.get::<i32>("second").unwrap(), Some(2));
    assert_eq!(stored.get::<i32>("n").unwrap(), Some(1));
}
