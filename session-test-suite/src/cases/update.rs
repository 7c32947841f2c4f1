//! `update`: optimistic concurrency, version rules, NotFound, user moves.

use std::sync::Arc;
use std::time::Duration;

use session_core::{Error, SessionStore, Timestamp};

use super::fixtures::{
    assert_absent, assert_listed, assert_loads, expired_record, new_record, next_version,
};

/// `update` to `expected_version + 1` writes every field exactly as given.
pub async fn update_with_next_version_replaces_every_field(store: Arc<dyn SessionStore>) {
    let r = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    let mut next = next_version(&r, b"\x00second\xffversion");
    next.created_at = Timestamp::from_millis(1_234_567_890_123);
    next.expires_at = Timestamp::from_millis(Timestamp::now().as_millis() + 7_200_321);
    let res = store.update(&next, 1).await;
    assert!(
        res.is_ok(),
        "update: replaces the live record when its version equals expected_version; got {res:?}"
    );
    assert_loads(
        &*store,
        &next,
        "update: every field is written as given (timestamps exact, data byte for byte)",
    )
    .await;
    assert_listed(
        &*store,
        "alice",
        std::slice::from_ref(&next),
        "list_user shows the updated record",
    )
    .await;
}

/// `update` expecting an older version than stored is `Conflict` and changes nothing.
pub async fn update_with_stale_version_is_conflict_and_changes_nothing(
    store: Arc<dyn SessionStore>,
) {
    let r = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    let v2 = next_version(&r, b"v2");
    store.update(&v2, 1).await.expect("update 1 -> 2");
    // A writer that read version 1 and comes late.
    let mut late = next_version(&r, b"late");
    late.user = Some("bob".into());
    let res = store.update(&late, 1).await;
    assert!(
        matches!(res, Err(Error::Conflict)),
        "update: Conflict when the stored version (2) is not expected_version (1); got {res:?}"
    );
    assert_loads(&*store, &v2, "update: Conflict changes nothing").await;
    assert_listed(
        &*store,
        "bob",
        &[],
        "a conflicting update must not index its user",
    )
    .await;
    assert_listed(
        &*store,
        "alice",
        std::slice::from_ref(&v2),
        "a conflicting update must not move the record out of its user's index",
    )
    .await;
}

/// `update` expecting a newer version than stored is `Conflict` and changes nothing.
pub async fn update_with_a_future_expected_version_is_conflict_and_changes_nothing(
    store: Arc<dyn SessionStore>,
) {
    let r = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    let mut ahead = r.clone();
    ahead.version = 6;
    ahead.data = b"from the future".to_vec();
    let res = store.update(&ahead, 5).await;
    assert!(
        matches!(res, Err(Error::Conflict)),
        "update: Conflict when the stored version (1) is not expected_version (5); got {res:?}"
    );
    assert_loads(&*store, &r, "update: Conflict changes nothing").await;
}

/// `update` whose version is not `expected_version + 1` is `InvalidInput`; nothing changes.
pub async fn update_with_wrong_next_version_is_invalid_input_and_changes_nothing(
    store: Arc<dyn SessionStore>,
) {
    let r = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    // expected_version is the stored one (1): only the next-version rule is broken.
    for (version, expected) in [(1, 1), (3, 1), (0, 1), (100, 1), (u64::MAX, 1)] {
        let mut bad = r.clone();
        bad.version = version;
        bad.data = b"must not be written".to_vec();
        bad.user = Some("bob".into());
        let res = store.update(&bad, expected).await;
        assert!(
            matches!(res, Err(Error::InvalidInput(_))),
            "update: record.version must be expected_version + 1, else InvalidInput \
             (version {version}, expected {expected}); got {res:?}"
        );
        assert_loads(
            &*store,
            &r,
            "update: a wrong next version is InvalidInput and nothing changes",
        )
        .await;
    }
    assert_listed(
        &*store,
        "bob",
        &[],
        "an invalid update must not index its user",
    )
    .await;
}

/// `update` of a key nobody created is `NotFound` and creates nothing.
pub async fn update_of_an_unknown_key_is_not_found_and_creates_nothing(
    store: Arc<dyn SessionStore>,
) {
    let r = new_record(Some("alice"));
    let v2 = next_version(&r, b"v2");
    let res = store.update(&v2, 1).await;
    assert!(
        matches!(res, Err(Error::NotFound)),
        "update: NotFound if no live record holds the key; got {res:?}"
    );
    assert_absent(
        &*store,
        &r.key,
        "a NotFound update must not create a record",
    )
    .await;
    assert_listed(
        &*store,
        "alice",
        &[],
        "a NotFound update must not index its user",
    )
    .await;
}

/// `update` of an expired record is `NotFound` and never revives it.
pub async fn update_of_an_expired_record_is_not_found_and_does_not_revive_it(
    store: Arc<dyn SessionStore>,
) {
    let r = expired_record(Some("alice"));
    store.create(&r).await.expect("create expired");
    let mut revive = next_version(&r, b"revived?");
    revive.expires_at = Timestamp::now().saturating_add(Duration::from_secs(3600));
    let res = store.update(&revive, 1).await;
    assert!(
        matches!(res, Err(Error::NotFound)),
        "update: NotFound if no live record holds the key (expired); got {res:?}"
    );
    assert_absent(
        &*store,
        &r.key,
        "update: an expired session is never brought back by a late write",
    )
    .await;
    assert_listed(&*store, "alice", &[], "the expired record stays unlisted").await;
}

/// `update` of a deleted record is `NotFound` and does not bring it back.
pub async fn update_of_a_deleted_record_is_not_found_and_does_not_revive_it(
    store: Arc<dyn SessionStore>,
) {
    let r = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    assert!(store.delete(&r.key).await.expect("delete"));
    let res = store.update(&next_version(&r, b"late"), 1).await;
    assert!(
        matches!(res, Err(Error::NotFound)),
        "update: NotFound for a deleted session; got {res:?}"
    );
    assert_absent(
        &*store,
        &r.key,
        "update: a deleted session is never brought back by a late write",
    )
    .await;
    assert_listed(&*store, "alice", &[], "the deleted record stays unlisted").await;
}

/// `update` changing `user` moves the record from the old user's index to the new one's.
pub async fn update_changing_user_moves_the_index_entry(store: Arc<dyn SessionStore>) {
    let r = new_record(Some("alice"));
    let other = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    store.create(&other).await.expect("create other");
    let mut moved = next_version(&r, b"now bob's");
    moved.user = Some("bob".into());
    store.update(&moved, 1).await.expect("update alice -> bob");
    assert_listed(
        &*store,
        "alice",
        std::slice::from_ref(&other),
        "update: changing user removes the record from the old user's index",
    )
    .await;
    assert_listed(
        &*store,
        "bob",
        std::slice::from_ref(&moved),
        "update: changing user adds the record to the new user's index",
    )
    .await;
    let n = store.delete_user("alice", None).await.expect("delete_user");
    assert_eq!(
        n, 1,
        "delete_user(alice) must only find alice's remaining record"
    );
    assert_loads(&*store, &moved, "the moved record is bob's and survives").await;
}

/// `update` to `user: None` leaves every index; back to a user indexes it again.
pub async fn update_to_no_user_and_back_moves_the_index_entry(store: Arc<dyn SessionStore>) {
    let r = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    let mut anon = next_version(&r, b"anonymous");
    anon.user = None;
    store.update(&anon, 1).await.expect("update alice -> None");
    assert_listed(
        &*store,
        "alice",
        &[],
        "update: user None takes the record out of the index",
    )
    .await;
    assert_loads(&*store, &anon, "user None round-trips").await;
    let n = store.delete_user("alice", None).await.expect("delete_user");
    assert_eq!(
        n, 0,
        "an anonymous record is nobody's, delete_user(alice) found {n}"
    );
    assert_loads(
        &*store,
        &anon,
        "delete_user(alice) left the anonymous record",
    )
    .await;

    let mut carol = next_version(&anon, b"carol logged in");
    carol.user = Some("carol".into());
    store.update(&carol, 2).await.expect("update None -> carol");
    assert_listed(
        &*store,
        "carol",
        std::slice::from_ref(&carol),
        "update: from None to a user adds the record to that user's index",
    )
    .await;
}

/// `update` may set a deadline in the past, after which the record is gone.
pub async fn update_with_a_past_deadline_makes_the_record_invisible(store: Arc<dyn SessionStore>) {
    let r = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    let mut ended = next_version(&r, b"bye");
    ended.expires_at = Timestamp::now().saturating_sub(Duration::from_secs(3600));
    store
        .update(&ended, 1)
        .await
        .expect("update to a past deadline");
    assert_absent(
        &*store,
        &r.key,
        "update writes expires_at as given; a past deadline makes the record invisible",
    )
    .await;
    assert_listed(
        &*store,
        "alice",
        &[],
        "list_user never returns expired records",
    )
    .await;
    let res = store.update(&next_version(&ended, b"again"), 2).await;
    assert!(
        matches!(res, Err(Error::NotFound)),
        "update after expiry must be NotFound; got {res:?}"
    );
}

/// A chain of updates succeeds only when each names the previous version.
pub async fn successive_updates_each_need_the_previous_version(store: Arc<dyn SessionStore>) {
    let mut current = new_record(Some("alice"));
    store.create(&current).await.expect("create");
    for i in 0..20u64 {
        let next = next_version(&current, format!("step {i}").as_bytes());
        if i % 5 == 4 {
            // A writer still holding the previous version.
            let mut stale = next.clone();
            stale.version = current.version;
            let res = store.update(&stale, current.version - 1).await;
            assert!(
                matches!(res, Err(Error::Conflict)),
                "update: Conflict with expected {} while version {} is stored; got {res:?}",
                current.version - 1,
                current.version
            );
            assert_loads(&*store, &current, "update: Conflict changes nothing").await;
        }
        store
            .update(&next, current.version)
            .await
            .unwrap_or_else(|e| panic!("update {} -> {}: {e:?}", current.version, next.version));
        current = next;
        assert_loads(&*store, &current, "after each update").await;
    }
    assert_eq!(current.version, 21);
}
