//! `create` and `load`.

use std::sync::Arc;
use std::time::Duration;

use session_core::{Error, SessionStore, Timestamp};

use super::fixtures::{
    assert_absent, assert_listed, assert_loads, expired_record, fresh_key, new_record,
};

/// `create` then `load` gives back every field exactly.
pub async fn create_then_load_returns_every_field_exactly(store: Arc<dyn SessionStore>) {
    let record = new_record(Some("alice"));
    store.create(&record).await.expect("create a new record");
    let loaded = store.load(&record.key).await.expect("load");
    assert_eq!(
        loaded,
        Some(record),
        "load must return the record exactly as created"
    );
}

/// `create` stores `version` as given (7), and `update` continues from it.
pub async fn create_stores_the_version_as_given(store: Arc<dyn SessionStore>) {
    let mut record = new_record(Some("alice"));
    record.version = 7;
    store.create(&record).await.expect("create with version 7");
    assert_loads(
        &*store,
        &record,
        "create: `version` is stored as given (7 here)",
    )
    .await;
    let mut next = record.clone();
    next.version = 8;
    let res = store.update(&next, 7).await;
    assert!(
        res.is_ok(),
        "create stored version 7, so update(expected 7 -> 8) must succeed; got {res:?}"
    );
    assert_loads(&*store, &next, "update after create with version 7").await;
}

/// Odd and far-past timestamps round-trip through `create` to the millisecond.
pub async fn create_round_trips_timestamps_to_the_millisecond(store: Arc<dyn SessionStore>) {
    let now = Timestamp::now().as_millis();
    // Deadlines at odd milliseconds an hour or more ahead, and in 2100.
    let cases = [
        (1_234_567_890_123, now + 3_600_001),
        (1, now + 3_600_999),
        (0, now + 7_200_007),
        (now - 86_400_000 * 365 * 20 - 1, now + 3_601_234),
        (now - 1, 4_102_444_800_999),
        (1_700_000_000_001, now + 3_600_000 + 1),
    ];
    let mut records = Vec::new();
    for (created, expires) in cases {
        let mut r = new_record(Some("alice"));
        r.created_at = Timestamp::from_millis(created);
        r.expires_at = Timestamp::from_millis(expires);
        store.create(&r).await.expect("create");
        records.push(r);
    }
    for r in &records {
        assert_loads(
            &*store,
            r,
            "create/load: every field round-trips, timestamps to the millisecond",
        )
        .await;
    }
    assert_listed(
        &*store,
        "alice",
        &records,
        "list_user returns the records with exact timestamps",
    )
    .await;
}

/// `create` over a live record is `AlreadyExists` and changes nothing.
pub async fn create_over_a_live_record_is_already_exists_and_changes_nothing(
    store: Arc<dyn SessionStore>,
) {
    let original = new_record(Some("alice"));
    store.create(&original).await.expect("create the original");
    let mut intruder = new_record(Some("mallory"));
    intruder.key = original.key;
    intruder.data = b"overwritten".to_vec();
    intruder.version = 1;
    let res = store.create(&intruder).await;
    assert!(
        matches!(res, Err(Error::AlreadyExists)),
        "create: returns AlreadyExists if a live record holds record.key; got {res:?}"
    );
    assert_loads(&*store, &original, "create: never overwrites a live record").await;
    assert_listed(
        &*store,
        "mallory",
        &[],
        "a rejected create must not index its user",
    )
    .await;
    assert_listed(
        &*store,
        "alice",
        std::slice::from_ref(&original),
        "a rejected create must leave the original indexed",
    )
    .await;
}

/// A second `create` of the very same record is also `AlreadyExists`.
pub async fn create_twice_with_the_same_record_is_already_exists(store: Arc<dyn SessionStore>) {
    let record = new_record(None);
    store.create(&record).await.expect("first create");
    let res = store.create(&record).await;
    assert!(
        matches!(res, Err(Error::AlreadyExists)),
        "create: AlreadyExists if a live record holds record.key (identical record); got {res:?}"
    );
    assert_loads(&*store, &record, "after the rejected second create").await;
}

/// `create` replaces an expired record under its key; the new one is indexed and survives a purge.
pub async fn create_replaces_an_expired_record_under_the_same_key(store: Arc<dyn SessionStore>) {
    let old = expired_record(Some("alice"));
    store.create(&old).await.expect("create an expired record");
    let mut new = new_record(Some("bob"));
    new.key = old.key;
    new.data = b"replacement".to_vec();
    let res = store.create(&new).await;
    assert!(
        res.is_ok(),
        "create: an expired record under the same key does not count as taken; got {res:?}"
    );
    assert_loads(&*store, &new, "create replaced the expired record").await;
    assert_listed(
        &*store,
        "bob",
        std::slice::from_ref(&new),
        "the replacement appears in its user's index",
    )
    .await;
    assert_listed(
        &*store,
        "alice",
        &[],
        "the replaced expired record is not listed",
    )
    .await;
    let purged = store.purge_expired().await.expect("purge_expired");
    assert!(
        purged <= 1,
        "purge_expired: at most the one replaced record could have been removed, got {purged}"
    );
    assert_loads(
        &*store,
        &new,
        "purge_expired removes no live record, including one that replaced an expired one",
    )
    .await;
}

/// A record created with a deadline already past is invisible to every method.
pub async fn create_with_a_past_deadline_is_invisible(store: Arc<dyn SessionStore>) {
    let r = expired_record(Some("alice"));
    let res = store.create(&r).await;
    assert!(res.is_ok(), "create of an expired record; got {res:?}");
    assert_absent(&*store, &r.key, "load: None when expires_at <= now").await;
    assert_listed(
        &*store,
        "alice",
        &[],
        "list_user never returns expired records",
    )
    .await;
    let mut just_past = new_record(Some("alice"));
    just_past.expires_at = Timestamp::now().saturating_sub(Duration::from_secs(60));
    store.create(&just_past).await.expect("create");
    assert_absent(
        &*store,
        &just_past.key,
        "load: None for a deadline a minute ago",
    )
    .await;
    assert_listed(&*store, "alice", &[], "list_user hides expired records").await;
}

/// A record created with no user is in no user's index, not even `""`.
pub async fn create_without_user_is_in_no_index(store: Arc<dyn SessionStore>) {
    let r = new_record(None);
    store.create(&r).await.expect("create");
    assert_loads(&*store, &r, "create with user None round-trips").await;
    for name in ["", "None", "null", "nil"] {
        assert_listed(
            &*store,
            name,
            &[],
            "a record without user appears in no user's index",
        )
        .await;
    }
}

/// `load` of a key nobody created is `None`.
pub async fn load_of_an_unknown_key_is_none(store: Arc<dyn SessionStore>) {
    store
        .create(&new_record(Some("alice")))
        .await
        .expect("create");
    assert_absent(&*store, &fresh_key(), "load: None when there is no record").await;
}

/// A key whose record was deleted can be created again.
pub async fn create_after_delete_succeeds(store: Arc<dyn SessionStore>) {
    let r = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    assert!(store.delete(&r.key).await.expect("delete"));
    let mut again = new_record(Some("alice"));
    again.key = r.key;
    let res = store.create(&again).await;
    assert!(
        res.is_ok(),
        "create: a deleted key holds no live record, so create succeeds; got {res:?}"
    );
    assert_loads(&*store, &again, "create after delete").await;
    assert_listed(
        &*store,
        "alice",
        std::slice::from_ref(&again),
        "only the new record is indexed",
    )
    .await;
}
