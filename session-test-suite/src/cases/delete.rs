//! `delete` and `delete_id`.

use std::sync::Arc;

use session_core::{Error, SessionId, SessionStore};

use super::fixtures::{
    assert_absent, assert_listed, assert_loads, expired_record, fresh_key, in_from_now, new_record,
    next_version, rotated, LIVE_FOR,
};

/// `delete` returns `true` for a live record, then `false` once it is gone.
pub async fn delete_returns_true_once_then_false(store: Arc<dyn SessionStore>) {
    let r = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    let first = store.delete(&r.key).await;
    assert!(
        matches!(first, Ok(true)),
        "delete: true if a live record was removed; got {first:?}"
    );
    assert_absent(&*store, &r.key, "delete: removes the record under key").await;
    let second = store.delete(&r.key).await;
    assert!(
        matches!(second, Ok(false)),
        "delete: false if there was none (already deleted); got {second:?}"
    );
}

/// `delete` removes the record from its user's index too.
pub async fn delete_removes_the_index_entry(store: Arc<dyn SessionStore>) {
    let gone = new_record(Some("alice"));
    let kept = new_record(Some("alice"));
    store.create(&gone).await.expect("create");
    store.create(&kept).await.expect("create");
    assert!(store.delete(&gone.key).await.expect("delete"));
    assert_listed(
        &*store,
        "alice",
        std::slice::from_ref(&kept),
        "delete: removes the record and its index entries",
    )
    .await;
    let n = store.delete_user("alice", None).await.expect("delete_user");
    assert_eq!(
        n, 1,
        "delete_user after delete must count only the remaining live record"
    );
}

/// `delete` of an expired record returns `false` and it stays invisible.
pub async fn delete_of_an_expired_record_returns_false(store: Arc<dyn SessionStore>) {
    let r = expired_record(Some("alice"));
    store.create(&r).await.expect("create expired");
    let res = store.delete(&r.key).await;
    assert!(
        matches!(res, Ok(false)),
        "delete: false if the record had already expired; got {res:?}"
    );
    assert_absent(&*store, &r.key, "the expired record stays invisible").await;
    assert_listed(&*store, "alice", &[], "the expired record stays unlisted").await;
}

/// `delete` of a key nobody created returns `false`.
pub async fn delete_of_an_unknown_key_returns_false(store: Arc<dyn SessionStore>) {
    let res = store.delete(&fresh_key()).await;
    assert!(
        matches!(res, Ok(false)),
        "delete: false if there was no record; got {res:?}"
    );
}

/// `delete` removes only the record under its key.
pub async fn delete_leaves_other_records_alone(store: Arc<dyn SessionStore>) {
    let target = new_record(Some("alice"));
    let same_user = new_record(Some("alice"));
    let other_user = new_record(Some("bob"));
    let anonymous = new_record(None);
    for r in [&target, &same_user, &other_user, &anonymous] {
        store.create(r).await.expect("create");
    }
    assert!(store.delete(&target.key).await.expect("delete"));
    for r in [&same_user, &other_user, &anonymous] {
        assert_loads(&*store, r, "delete must not touch other records").await;
    }
    assert_listed(
        &*store,
        "bob",
        std::slice::from_ref(&other_user),
        "delete leaves other users' indexes",
    )
    .await;
}

/// `delete_id` ends the user's live session with that id, and only it.
pub async fn delete_id_removes_exactly_that_session_and_its_index_entry(
    store: Arc<dyn SessionStore>,
) {
    let target = new_record(Some("alice"));
    let sibling = new_record(Some("alice"));
    store.create(&target).await.expect("create");
    store.create(&sibling).await.expect("create");
    let res = store.delete_id("alice", target.id).await;
    assert!(
        matches!(res, Ok(true)),
        "delete_id: true when it deleted the user's live session with that id; got {res:?}"
    );
    assert_absent(&*store, &target.key, "delete_id removed the record").await;
    assert_listed(
        &*store,
        "alice",
        std::slice::from_ref(&sibling),
        "delete_id removes the index entry and spares the user's other sessions",
    )
    .await;
    let again = store.delete_id("alice", target.id).await;
    assert!(
        matches!(again, Ok(false)),
        "delete_id: false once the session is gone; got {again:?}"
    );
}

/// `delete_id` never ends another user's session, whatever the id.
pub async fn delete_id_of_another_users_session_returns_false_and_changes_nothing(
    store: Arc<dyn SessionStore>,
) {
    let alices = new_record(Some("alice"));
    let anonymous = new_record(None);
    store.create(&alices).await.expect("create");
    store.create(&anonymous).await.expect("create");
    for (user, id) in [("bob", alices.id), ("alice", anonymous.id), ("", alices.id)] {
        let res = store.delete_id(user, id).await;
        assert!(
            matches!(res, Ok(false)),
            "delete_id({user:?}, id of another's session): false; got {res:?}"
        );
    }
    assert_loads(&*store, &alices, "alice's session is untouched").await;
    assert_loads(&*store, &anonymous, "a session without user is nobody's").await;
}

/// `delete_id` of an id nobody has, or of an expired or deleted session, is `false`.
pub async fn delete_id_of_an_unknown_expired_or_deleted_session_returns_false(
    store: Arc<dyn SessionStore>,
) {
    let res = store.delete_id("alice", SessionId::generate()).await;
    assert!(
        matches!(res, Ok(false)),
        "delete_id of an unknown id: false; got {res:?}"
    );
    let expired = expired_record(Some("alice"));
    store.create(&expired).await.expect("create expired");
    let res = store.delete_id("alice", expired.id).await;
    assert!(
        matches!(res, Ok(false)),
        "delete_id of an expired session: false (it is not live); got {res:?}"
    );
    let deleted = new_record(Some("alice"));
    store.create(&deleted).await.expect("create");
    assert!(store.delete(&deleted.key).await.expect("delete"));
    let res = store.delete_id("alice", deleted.id).await;
    assert!(
        matches!(res, Ok(false)),
        "delete_id of a deleted session: false; got {res:?}"
    );
}

/// `delete_id` finds a session under the key a rotation gave it, and the
/// ended session is not brought back by a late write under either key.
pub async fn delete_id_finds_a_rotated_session_and_late_writes_do_not_revive_it(
    store: Arc<dyn SessionStore>,
) {
    let r = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    let moved = rotated(&r, b"moved");
    store.rotate(&r.key, &moved, 1).await.expect("rotate");
    let res = store.delete_id("alice", r.id).await;
    assert!(
        matches!(res, Ok(true)),
        "delete_id: finds the session under its new key; got {res:?}"
    );
    assert_absent(&*store, &moved.key, "no key of the session loads").await;
    let late = next_version(&moved, b"late");
    let res = store.update(&late, moved.version).await;
    assert!(
        matches!(res, Err(Error::NotFound)),
        "update after delete_id: NotFound; got {res:?}"
    );
    let res = store.touch(&moved.key, in_from_now(LIVE_FOR)).await;
    assert!(
        matches!(res, Err(Error::NotFound)),
        "touch after delete_id: NotFound; got {res:?}"
    );
    let again = rotated(&moved, b"again");
    let res = store.rotate(&moved.key, &again, moved.version).await;
    assert!(
        matches!(res, Err(Error::NotFound)),
        "rotate after delete_id: NotFound; got {res:?}"
    );
    assert_absent(&*store, &again.key, "a late rotate creates nothing").await;
    assert_listed(&*store, "alice", &[], "nothing of alice's is live").await;
}
