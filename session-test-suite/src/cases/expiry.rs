//! Real short deadlines: records that expire a few hundred milliseconds after
//! they are written, checked after sleeping past them.

use std::sync::Arc;
use std::time::Duration;

use session_core::{Error, Record, SessionStore};

use super::fixtures::{
    assert_absent, assert_listed, assert_loads, in_from_now, new_record, next_version,
    record_expiring_in, rotated, sleep_past,
};

/// How long a short-lived record lives.
const SHORT: Duration = Duration::from_millis(300);
/// How far past a deadline the cases sleep, for clock skew and slow servers.
const MARGIN: Duration = Duration::from_millis(400);

/// A record 300 ms from expiry is live before and invisible to every method after.
pub async fn short_lived_record_disappears_after_its_deadline(store: Arc<dyn SessionStore>) {
    let r = record_expiring_in(Some("alice"), SHORT);
    let long = new_record(Some("alice"));
    store.create(&r).await.expect("create short-lived");
    store.create(&long).await.expect("create long-lived");
    assert_loads(&*store, &r, "live while now < expires_at").await;
    assert_listed(
        &*store,
        "alice",
        &[r.clone(), long.clone()],
        "both live before the deadline",
    )
    .await;
    sleep_past(r.expires_at, MARGIN).await;
    assert_absent(&*store, &r.key, "load: None when expires_at <= now").await;
    assert_listed(
        &*store,
        "alice",
        std::slice::from_ref(&long),
        "list_user never returns expired records",
    )
    .await;
    let res = store.delete(&r.key).await;
    assert!(
        matches!(res, Ok(false)),
        "delete: false when the record already expired; got {res:?}"
    );
}

/// After a real expiry writes are `NotFound`, nothing revives, and `create` reuses the key.
pub async fn writes_after_a_real_expiry_are_not_found_and_create_reuses_the_key(
    store: Arc<dyn SessionStore>,
) {
    let r = record_expiring_in(Some("alice"), SHORT);
    store.create(&r).await.expect("create short-lived");
    sleep_past(r.expires_at, MARGIN).await;

    let mut revive = next_version(&r, b"late");
    revive.expires_at = in_from_now(Duration::from_secs(3600));
    let res = store.update(&revive, 1).await;
    assert!(
        matches!(res, Err(Error::NotFound)),
        "update: NotFound after expiry (never brought back by a late write); got {res:?}"
    );
    let res = store
        .touch(&r.key, in_from_now(Duration::from_secs(3600)))
        .await;
    assert!(
        matches!(res, Err(Error::NotFound)),
        "touch: NotFound after expiry; got {res:?}"
    );
    let mut moved = rotated(&r, b"late");
    moved.expires_at = in_from_now(Duration::from_secs(3600));
    let res = store.rotate(&r.key, &moved, 1).await;
    assert!(
        matches!(res, Err(Error::NotFound)),
        "rotate: NotFound when the record under old_key expired; got {res:?}"
    );
    assert_absent(&*store, &r.key, "nothing brought the expired record back").await;
    assert_absent(&*store, &moved.key, "the failed rotate created nothing").await;
    assert_listed(&*store, "alice", &[], "nothing of alice's is live").await;

    let mut again = new_record(Some("alice"));
    again.key = r.key;
    let res = store.create(&again).await;
    assert!(
        res.is_ok(),
        "create: an expired record under the same key is replaced; got {res:?}"
    );
    assert_loads(&*store, &again, "the new record under the reused key").await;
}

/// `touch` extends a real deadline and never shortens one: an extended
/// record survives its old deadline, and a touch to a sooner deadline leaves
/// the record live past it.
pub async fn touch_extends_a_real_deadline_and_never_shortens_it(store: Arc<dyn SessionStore>) {
    let extended = record_expiring_in(Some("alice"), SHORT);
    let kept = new_record(Some("alice"));
    store.create(&extended).await.expect("create");
    store.create(&kept).await.expect("create");
    let later = in_from_now(Duration::from_secs(3600));
    store
        .touch(&extended.key, later)
        .await
        .expect("touch later");
    let soon = in_from_now(SHORT);
    store
        .touch(&kept.key, soon)
        .await
        .expect("touch sooner: Ok, and nothing moves");

    sleep_past(extended.expires_at.max(soon), MARGIN).await;
    // A store may have filed the record for purging at its old deadline;
    // purging (twice: once to file it again, once after) must not end it.
    for _ in 0..2 {
        store.purge_expired().await.expect("purge");
    }
    let mut extended_want = extended.clone();
    extended_want.expires_at = later;
    assert_loads(
        &*store,
        &extended_want,
        "touch: a deadline moved later keeps the record past its old deadline",
    )
    .await;
    assert_loads(
        &*store,
        &kept,
        "touch: a sooner deadline is never set, so the record outlives it",
    )
    .await;
    assert_listed(
        &*store,
        "alice",
        &[extended_want, kept],
        "list_user follows touched deadlines",
    )
    .await;
}

/// `update` moves deadlines both ways for real, like `touch`.
pub async fn update_moves_a_real_deadline_both_ways(store: Arc<dyn SessionStore>) {
    let a = record_expiring_in(Some("alice"), SHORT);
    let b = new_record(Some("alice"));
    store.create(&a).await.expect("create");
    store.create(&b).await.expect("create");
    let mut a2 = next_version(&a, b"extended");
    a2.expires_at = in_from_now(Duration::from_secs(3600));
    store
        .update(&a2, 1)
        .await
        .expect("update to a later deadline");
    let mut b2 = next_version(&b, b"shortened");
    b2.expires_at = in_from_now(SHORT);
    store
        .update(&b2, 1)
        .await
        .expect("update to a short deadline");
    assert_loads(&*store, &b2, "live until the short deadline").await;

    sleep_past(a.expires_at.max(b2.expires_at), MARGIN).await;
    // As for touch: purging past the old deadline keeps the extended record.
    for _ in 0..2 {
        store.purge_expired().await.expect("purge");
    }
    assert_loads(
        &*store,
        &a2,
        "update: the written expires_at replaces the short one",
    )
    .await;
    assert_absent(
        &*store,
        &b.key,
        "update: the written short deadline is enforced",
    )
    .await;
    let res = store.update(&next_version(&b2, b"late"), 2).await;
    assert!(
        matches!(res, Err(Error::NotFound)),
        "update after the written deadline passed: NotFound; got {res:?}"
    );
}

/// `rotate` carries the new record's deadline for real, in both directions.
pub async fn rotate_carries_a_real_deadline_both_ways(store: Arc<dyn SessionStore>) {
    let a = record_expiring_in(Some("alice"), SHORT);
    let b = new_record(Some("alice"));
    store.create(&a).await.expect("create");
    store.create(&b).await.expect("create");
    let mut a2 = rotated(&a, b"extended");
    a2.expires_at = in_from_now(Duration::from_secs(3600));
    store
        .rotate(&a.key, &a2, 1)
        .await
        .expect("rotate to a later deadline");
    let mut b2 = rotated(&b, b"shortened");
    b2.expires_at = in_from_now(SHORT);
    store
        .rotate(&b.key, &b2, 1)
        .await
        .expect("rotate to a short deadline");
    assert_loads(&*store, &b2, "live until the short deadline").await;

    sleep_past(a.expires_at.max(b2.expires_at), MARGIN).await;
    assert_loads(
        &*store,
        &a2,
        "rotate: the new key has the new, later deadline",
    )
    .await;
    assert_absent(&*store, &a.key, "the old key stays gone").await;
    assert_absent(
        &*store,
        &b2.key,
        "rotate: the new short deadline is enforced",
    )
    .await;
    assert_absent(
        &*store,
        &b.key,
        "the old key of the short rotation stays gone",
    )
    .await;
    assert_listed(
        &*store,
        "alice",
        std::slice::from_ref(&a2),
        "list_user after rotations with real deadlines",
    )
    .await;
}

/// `purge_expired` after a real expiry removes only the expired and keeps every live record.
pub async fn purge_after_a_real_expiry_keeps_every_live_record(store: Arc<dyn SessionStore>) {
    let short: Vec<Record> = (0..5)
        .map(|i| record_expiring_in(if i % 2 == 0 { Some("alice") } else { None }, SHORT))
        .collect();
    let long: Vec<Record> = (0..5)
        .map(|i| new_record(if i % 2 == 0 { Some("alice") } else { None }))
        .collect();
    for r in short.iter().chain(&long) {
        store.create(r).await.expect("create");
    }
    let latest = short.iter().map(|r| r.expires_at).max().unwrap_or_default();
    sleep_past(latest, MARGIN).await;
    let n = store.purge_expired().await.expect("purge_expired");
    assert!(
        n <= 5,
        "purge_expired: returns how many it removed, at most the 5 expired; got {n}"
    );
    for r in &short {
        assert_absent(&*store, &r.key, "expired records are gone after purge").await;
    }
    for r in &long {
        assert_loads(&*store, r, "purge_expired removes no live record").await;
    }
    let alices: Vec<Record> = long.iter().filter(|r| r.user.is_some()).cloned().collect();
    assert_listed(&*store, "alice", &alices, "list_user after purge").await;
    let again = store.purge_expired().await;
    assert!(
        matches!(again, Ok(0)),
        "a second purge with nothing newly expired returns 0; got {again:?}"
    );
}

/// `delete_user` after some records really expired counts only the live ones.
pub async fn delete_user_after_a_real_expiry_counts_only_live_records(
    store: Arc<dyn SessionStore>,
) {
    let short: Vec<Record> = (0..3)
        .map(|_| record_expiring_in(Some("alice"), SHORT))
        .collect();
    let long: Vec<Record> = (0..2).map(|_| new_record(Some("alice"))).collect();
    for r in short.iter().chain(&long) {
        store.create(r).await.expect("create");
    }
    let latest = short.iter().map(|r| r.expires_at).max().unwrap_or_default();
    sleep_past(latest, MARGIN).await;
    let n = store.delete_user("alice", None).await;
    assert!(
        matches!(n, Ok(2)),
        "delete_user: returns how many *live* records it deleted (2 of 5); got {n:?}"
    );
    assert_listed(&*store, "alice", &[], "nothing left").await;
}
