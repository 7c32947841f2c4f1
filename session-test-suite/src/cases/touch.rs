//! `touch`: moving a deadline and nothing else.

use std::sync::Arc;
use std::time::Duration;

use session_core::{Error, SessionStore, Timestamp};

use super::fixtures::{
    assert_absent, assert_listed, assert_loads, expired_record, in_from_now, new_record,
    next_version,
};

/// `touch` moves the deadline later and changes no other field.
pub async fn touch_moves_the_deadline_later_and_changes_nothing_else(store: Arc<dyn SessionStore>) {
    let mut r = new_record(Some("alice"));
    r.created_at = Timestamp::from_millis(1_234_567_890_123);
    r.data = vec![0, 1, 2, 0xfe, 0xff];
    store.create(&r).await.expect("create");
    let later = Timestamp::from_millis(in_from_now(Duration::from_secs(7200)).as_millis() | 1);
    let res = store.touch(&r.key, later).await;
    assert!(res.is_ok(), "touch of a live record; got {res:?}");
    let mut want = r.clone();
    want.expires_at = later;
    assert_loads(
        &*store,
        &want,
        "touch: sets expires_at and changes nothing else (no data rewrite, no version bump)",
    )
    .await;
    assert_listed(
        &*store,
        "alice",
        std::slice::from_ref(&want),
        "touch keeps the record in its user's index, with the new deadline",
    )
    .await;
}

/// `touch` never moves a deadline earlier: a late touch changes nothing.
pub async fn touch_never_moves_the_deadline_earlier_and_changes_nothing(
    store: Arc<dyn SessionStore>,
) {
    let mut r = new_record(Some("alice"));
    r.expires_at = in_from_now(Duration::from_secs(4 * 3600));
    store.create(&r).await.expect("create");
    let earlier = Timestamp::from_millis(in_from_now(Duration::from_secs(3600)).as_millis() + 7);
    let res = store.touch(&r.key, earlier).await;
    assert!(
        res.is_ok(),
        "touch: Ok for a live record, whether or not the deadline moves; got {res:?}"
    );
    assert_loads(
        &*store,
        &r,
        "touch: never moves a deadline earlier (a late touch must not undo a later one)",
    )
    .await;
    let later = in_from_now(Duration::from_secs(5 * 3600));
    store.touch(&r.key, later).await.expect("touch later");
    store
        .touch(&r.key, r.expires_at)
        .await
        .expect("a late touch after a later one");
    let mut want = r.clone();
    want.expires_at = later;
    assert_loads(
        &*store,
        &want,
        "touch: the later of two touches stands, whatever order they land in",
    )
    .await;
}

/// `touch` to a past deadline changes nothing: the record stays live.
pub async fn touch_into_the_past_changes_nothing(store: Arc<dyn SessionStore>) {
    let r = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    store
        .touch(
            &r.key,
            Timestamp::now().saturating_sub(Duration::from_secs(3600)),
        )
        .await
        .expect("touch: Ok for a live record");
    assert_loads(
        &*store,
        &r,
        "touch never moves a deadline earlier, into the past least of all",
    )
    .await;
    assert_listed(
        &*store,
        "alice",
        std::slice::from_ref(&r),
        "the record stays in its user's index",
    )
    .await;
}

/// `touch` of a key nobody created is `NotFound` and creates nothing.
pub async fn touch_of_an_unknown_key_is_not_found_and_creates_nothing(
    store: Arc<dyn SessionStore>,
) {
    let r = new_record(None);
    let res = store
        .touch(&r.key, in_from_now(Duration::from_secs(3600)))
        .await;
    assert!(
        matches!(res, Err(Error::NotFound)),
        "touch: NotFound if no live record holds the key; got {res:?}"
    );
    assert_absent(&*store, &r.key, "touch must not create a record").await;
}

/// `touch` of an expired or deleted record is `NotFound` and revives nothing.
pub async fn touch_of_an_expired_or_deleted_record_is_not_found(store: Arc<dyn SessionStore>) {
    let expired = expired_record(Some("alice"));
    store.create(&expired).await.expect("create expired");
    let res = store
        .touch(&expired.key, in_from_now(Duration::from_secs(3600)))
        .await;
    assert!(
        matches!(res, Err(Error::NotFound)),
        "touch: NotFound for an expired record; got {res:?}"
    );
    assert_absent(
        &*store,
        &expired.key,
        "touch must not revive an expired record",
    )
    .await;

    let deleted = new_record(Some("alice"));
    store.create(&deleted).await.expect("create");
    assert!(store.delete(&deleted.key).await.expect("delete"));
    let res = store
        .touch(&deleted.key, in_from_now(Duration::from_secs(3600)))
        .await;
    assert!(
        matches!(res, Err(Error::NotFound)),
        "touch: NotFound for a deleted record; got {res:?}"
    );
    assert_absent(
        &*store,
        &deleted.key,
        "touch must not revive a deleted record",
    )
    .await;
    assert_listed(&*store, "alice", &[], "nothing of alice's is live").await;
}

/// `touch` does not bump the version: `update` still expects the version from before.
pub async fn touch_does_not_bump_the_version(store: Arc<dyn SessionStore>) {
    let r = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    for i in 1..=3u64 {
        store
            .touch(&r.key, in_from_now(Duration::from_secs(3600 + i)))
            .await
            .expect("touch");
    }
    let mut bumped = r.clone();
    bumped.version = 3;
    let res = store.update(&bumped, 2).await;
    assert!(
        matches!(res, Err(Error::Conflict)),
        "touch: no version bump, so update expecting version 2 must be Conflict; got {res:?}"
    );
    let next = next_version(&r, b"after touches");
    let res = store.update(&next, 1).await;
    assert!(
        res.is_ok(),
        "touch: no version bump, so update expecting version 1 must succeed; got {res:?}"
    );
    assert_loads(&*store, &next, "update after touches").await;
}
