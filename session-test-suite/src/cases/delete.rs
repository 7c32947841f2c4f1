//! `delete`.

use std::sync::Arc;

use session_core::SessionStore;

use super::fixtures::{
    assert_absent, assert_listed, assert_loads, expired_record, fresh_key, new_record,
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
