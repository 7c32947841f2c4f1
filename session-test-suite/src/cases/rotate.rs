//! `rotate`: moving a record to a new key.

use std::sync::Arc;
use std::time::Duration;

use session_core::{Error, SessionId, SessionStore, Timestamp};

use super::fixtures::{
    assert_absent, assert_listed, assert_loads, expired_record, in_from_now, new_record,
    next_version, rotated,
};

/// `rotate` moves the record (same id) to the new key; the old key no longer loads.
pub async fn rotate_moves_the_record_to_the_new_key_and_keeps_its_id(store: Arc<dyn SessionStore>) {
    let r = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    let mut moved = rotated(&r, b"\x00rotated\xff");
    moved.created_at = Timestamp::from_millis(1_234_567_890_123);
    moved.expires_at =
        Timestamp::from_millis(in_from_now(Duration::from_secs(5400)).as_millis() | 1);
    let res = store.rotate(&r.key, &moved, 1).await;
    assert!(
        res.is_ok(),
        "rotate of a live record to a fresh key; got {res:?}"
    );
    assert_absent(
        &*store,
        &r.key,
        "rotate: on success old_key no longer loads",
    )
    .await;
    assert_loads(
        &*store,
        &moved,
        "rotate: on success record loads under the new key, every field as given",
    )
    .await;
    let listed = store.list_user("alice").await.expect("list_user");
    assert_eq!(
        listed.len(),
        1,
        "rotate: the user index follows; exactly one record listed, got {listed:?}"
    );
    assert_eq!(listed[0].id, r.id, "rotate keeps the session id");
    assert_eq!(listed[0].key, moved.key, "the index lists the new key");
}

/// `rotate` onto a live key is `AlreadyExists` and changes neither record nor index.
pub async fn rotate_onto_a_live_key_is_already_exists_and_changes_nothing(
    store: Arc<dyn SessionStore>,
) {
    let r = new_record(Some("alice"));
    let occupant = new_record(Some("bob"));
    store.create(&r).await.expect("create");
    store.create(&occupant).await.expect("create occupant");
    let mut moved = rotated(&r, b"would clobber");
    moved.key = occupant.key;
    let res = store.rotate(&r.key, &moved, 1).await;
    assert!(
        matches!(res, Err(Error::AlreadyExists)),
        "rotate: AlreadyExists if a live record holds the new key; got {res:?}"
    );
    assert_loads(&*store, &r, "a rejected rotate leaves the old record").await;
    assert_loads(
        &*store,
        &occupant,
        "a rejected rotate never overwrites a live record",
    )
    .await;
    assert_listed(
        &*store,
        "alice",
        std::slice::from_ref(&r),
        "a rejected rotate leaves alice's index",
    )
    .await;
    assert_listed(
        &*store,
        "bob",
        std::slice::from_ref(&occupant),
        "a rejected rotate leaves bob's index",
    )
    .await;
}

/// `rotate` onto a key held only by an expired record succeeds and replaces it.
pub async fn rotate_onto_an_expired_key_replaces_it(store: Arc<dyn SessionStore>) {
    let r = new_record(Some("alice"));
    let stale = expired_record(Some("bob"));
    store.create(&r).await.expect("create");
    store.create(&stale).await.expect("create expired occupant");
    let mut moved = rotated(&r, b"onto expired");
    moved.key = stale.key;
    let res = store.rotate(&r.key, &moved, 1).await;
    assert!(
        res.is_ok(),
        "rotate: only a *live* record on the new key is AlreadyExists; got {res:?}"
    );
    assert_absent(&*store, &r.key, "old key gone after rotate").await;
    assert_loads(&*store, &moved, "rotate replaced the expired record").await;
    assert_listed(
        &*store,
        "bob",
        &[],
        "the replaced expired record is not listed",
    )
    .await;
    assert_listed(
        &*store,
        "alice",
        std::slice::from_ref(&moved),
        "the rotated record is listed",
    )
    .await;
    let purged = store.purge_expired().await.expect("purge_expired");
    assert!(
        purged <= 1,
        "purge_expired removed {purged}, at most 1 was expired"
    );
    assert_loads(
        &*store,
        &moved,
        "purge_expired must keep the rotated record",
    )
    .await;
}

/// `rotate` to the same key is `InvalidInput` and changes nothing.
pub async fn rotate_to_the_same_key_is_invalid_input_and_changes_nothing(
    store: Arc<dyn SessionStore>,
) {
    let r = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    let same = next_version(&r, b"same key");
    let res = store.rotate(&r.key, &same, 1).await;
    assert!(
        matches!(res, Err(Error::InvalidInput(_))),
        "rotate: record.key must differ from old_key, else InvalidInput; got {res:?}"
    );
    assert_loads(&*store, &r, "rotate: InvalidInput changes nothing").await;
}

/// `rotate` with an id other than the stored one is `InvalidInput`; nothing changes.
pub async fn rotate_with_a_different_id_is_invalid_input_and_changes_nothing(
    store: Arc<dyn SessionStore>,
) {
    let r = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    let mut other = rotated(&r, b"other id");
    other.id = SessionId::generate();
    let res = store.rotate(&r.key, &other, 1).await;
    assert!(
        matches!(res, Err(Error::InvalidInput(_))),
        "rotate: record.id must be the stored record's id, else InvalidInput; got {res:?}"
    );
    assert_loads(&*store, &r, "rotate with another id changes nothing").await;
    assert_absent(
        &*store,
        &other.key,
        "rotate with another id creates nothing",
    )
    .await;
    assert_listed(
        &*store,
        "alice",
        std::slice::from_ref(&r),
        "rotate with another id leaves the index",
    )
    .await;
}

/// `rotate` whose version is not `expected_version + 1` is `InvalidInput`; nothing changes.
pub async fn rotate_with_wrong_next_version_is_invalid_input_and_changes_nothing(
    store: Arc<dyn SessionStore>,
) {
    let r = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    // expected_version is the stored one (1): only the next-version rule is broken.
    for (version, expected) in [(1, 1), (3, 1), (0, 1), (100, 1), (u64::MAX, 1)] {
        let mut bad = rotated(&r, b"bad version");
        bad.version = version;
        let res = store.rotate(&r.key, &bad, expected).await;
        assert!(
            matches!(res, Err(Error::InvalidInput(_))),
            "rotate: record.version must be expected_version + 1, else InvalidInput \
             (version {version}, expected {expected}); got {res:?}"
        );
        assert_loads(&*store, &r, "rotate: InvalidInput changes nothing").await;
        assert_absent(&*store, &bad.key, "rotate: InvalidInput creates nothing").await;
    }
}

/// `rotate` with a stale expected version is `Conflict` and changes nothing.
pub async fn rotate_with_stale_version_is_conflict_and_changes_nothing(
    store: Arc<dyn SessionStore>,
) {
    let r = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    let v2 = next_version(&r, b"v2");
    store.update(&v2, 1).await.expect("update 1 -> 2");
    let late = rotated(&r, b"late rotate");
    let res = store.rotate(&r.key, &late, 1).await;
    assert!(
        matches!(res, Err(Error::Conflict)),
        "rotate: Conflict if the stored version (2) is not expected_version (1); got {res:?}"
    );
    assert_loads(&*store, &v2, "rotate: Conflict changes nothing").await;
    assert_absent(&*store, &late.key, "rotate: Conflict creates nothing").await;
    let mut ahead = rotated(&v2, b"ahead");
    ahead.version = 10;
    let res = store.rotate(&r.key, &ahead, 9).await;
    assert!(
        matches!(res, Err(Error::Conflict)),
        "rotate: Conflict if the stored version (2) is not expected_version (9); got {res:?}"
    );
    assert_loads(&*store, &v2, "rotate: Conflict changes nothing").await;
    assert_absent(&*store, &ahead.key, "rotate: Conflict creates nothing").await;
}

/// `rotate` from an unknown, expired or deleted key is `NotFound` and creates nothing.
pub async fn rotate_of_a_missing_expired_or_deleted_key_is_not_found(store: Arc<dyn SessionStore>) {
    let unknown = new_record(Some("alice"));
    let expired = expired_record(Some("alice"));
    store.create(&expired).await.expect("create expired");
    let deleted = new_record(Some("alice"));
    store.create(&deleted).await.expect("create");
    assert!(store.delete(&deleted.key).await.expect("delete"));
    for (what, r) in [
        ("unknown", &unknown),
        ("expired", &expired),
        ("deleted", &deleted),
    ] {
        let mut moved = rotated(r, b"late");
        moved.expires_at = in_from_now(Duration::from_secs(3600));
        let res = store.rotate(&r.key, &moved, 1).await;
        assert!(
            matches!(res, Err(Error::NotFound)),
            "rotate: NotFound if the record under old_key is not live ({what}); got {res:?}"
        );
        assert_absent(&*store, &moved.key, "rotate: NotFound creates nothing").await;
        assert_absent(&*store, &r.key, "rotate: NotFound revives nothing").await;
    }
    assert_listed(&*store, "alice", &[], "nothing of alice's is live").await;
}

/// The user index follows `rotate`: to another user, to no user, and back.
pub async fn rotate_moves_the_user_index_entry(store: Arc<dyn SessionStore>) {
    let r = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    let mut to_bob = rotated(&r, b"bob's");
    to_bob.user = Some("bob".into());
    store
        .rotate(&r.key, &to_bob, 1)
        .await
        .expect("rotate alice -> bob");
    assert_listed(
        &*store,
        "alice",
        &[],
        "rotate: the old user's index loses the record",
    )
    .await;
    assert_listed(
        &*store,
        "bob",
        std::slice::from_ref(&to_bob),
        "rotate: the new user's index gains the record under the new key",
    )
    .await;

    let mut anon = rotated(&to_bob, b"anonymous");
    anon.user = None;
    store
        .rotate(&to_bob.key, &anon, 2)
        .await
        .expect("rotate bob -> None");
    assert_listed(
        &*store,
        "bob",
        &[],
        "rotate to user None leaves every index",
    )
    .await;
    assert_loads(&*store, &anon, "the anonymous rotated record").await;

    let mut back = rotated(&anon, b"alice again");
    back.user = Some("alice".into());
    store
        .rotate(&anon.key, &back, 3)
        .await
        .expect("rotate None -> alice");
    assert_listed(
        &*store,
        "alice",
        std::slice::from_ref(&back),
        "rotate from user None indexes the new user",
    )
    .await;
    assert_eq!(back.id, r.id, "the id survived three rotations");
}

/// After `rotate` the old key is `NotFound` to update/touch/rotate and `false` to delete.
pub async fn rotated_away_key_is_dead_for_every_method(store: Arc<dyn SessionStore>) {
    let r = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    let moved = rotated(&r, b"moved");
    store.rotate(&r.key, &moved, 1).await.expect("rotate");

    let res = store.update(&next_version(&r, b"late"), 1).await;
    assert!(
        matches!(res, Err(Error::NotFound)),
        "update of the rotated-away key: NotFound; got {res:?}"
    );
    let res = store
        .touch(&r.key, in_from_now(Duration::from_secs(3600)))
        .await;
    assert!(
        matches!(res, Err(Error::NotFound)),
        "touch of the rotated-away key: NotFound; got {res:?}"
    );
    let res = store.rotate(&r.key, &rotated(&r, b"again"), 1).await;
    assert!(
        matches!(res, Err(Error::NotFound)),
        "rotate of the rotated-away key: NotFound; got {res:?}"
    );
    let res = store.delete(&r.key).await;
    assert!(
        matches!(res, Ok(false)),
        "delete of the rotated-away key: false; got {res:?}"
    );
    assert_absent(&*store, &r.key, "the old key stays dead").await;
    assert_loads(&*store, &moved, "the new key is unaffected").await;
    assert_listed(
        &*store,
        "alice",
        std::slice::from_ref(&moved),
        "list_user never returns moved-away records",
    )
    .await;
}
