//! `purge_expired`, on records that expired an hour ago.

use std::sync::Arc;
use std::time::Duration;

use session_core::{Record, SessionStore, Timestamp};

use super::fixtures::{
    assert_absent, assert_listed, assert_loads, expired_record, new_record, next_version,
};

/// `purge_expired` removes the expired records and no live one, counting at most those.
pub async fn purge_removes_exactly_the_expired_records(store: Arc<dyn SessionStore>) {
    let mut live: Vec<Record> = Vec::new();
    let mut expired: Vec<Record> = Vec::new();
    for user in [Some("alice"), Some("bob"), None] {
        for _ in 0..4 {
            live.push(new_record(user));
        }
        for _ in 0..3 {
            expired.push(expired_record(user));
        }
    }
    for r in live.iter().chain(&expired) {
        store.create(r).await.expect("create");
    }
    let n = store.purge_expired().await.expect("purge_expired");
    assert!(
        n <= expired.len() as u64,
        "purge_expired: returns how many records this call removed; \
         {n} is more than the {} that had expired",
        expired.len()
    );
    for r in &expired {
        assert_absent(&*store, &r.key, "purge_expired: expired records stay gone").await;
    }
    for r in &live {
        assert_loads(&*store, r, "purge_expired removes no live record").await;
    }
    for user in ["alice", "bob"] {
        let want: Vec<Record> = live
            .iter()
            .filter(|r| r.user.as_deref() == Some(user))
            .cloned()
            .collect();
        assert_listed(
            &*store,
            user,
            &want,
            "purge_expired: removes index entries of expired records, keeps live ones",
        )
        .await;
    }
    let again = store.purge_expired().await.expect("second purge_expired");
    assert_eq!(
        again, 0,
        "a second purge_expired with nothing newly expired must remove nothing"
    );
    for r in &live {
        assert_loads(&*store, r, "a second purge removes no live record").await;
    }
}

/// `purge_expired` with nothing expired returns 0 and removes nothing.
pub async fn purge_with_nothing_expired_returns_zero_and_removes_nothing(
    store: Arc<dyn SessionStore>,
) {
    let n = store.purge_expired().await;
    assert!(
        matches!(n, Ok(0)),
        "purge_expired on an empty store; got {n:?}"
    );
    let live: Vec<Record> = (0..10).map(|_| new_record(Some("alice"))).collect();
    for r in &live {
        store.create(r).await.expect("create");
    }
    let n = store.purge_expired().await;
    assert!(
        matches!(n, Ok(0)),
        "purge_expired: no live record is removed (all live); got {n:?}"
    );
    assert_listed(&*store, "alice", &live, "every live record stays").await;
}

/// `purge_expired` follows deadlines as last written by `touch` and `update`.
pub async fn purge_follows_deadlines_changed_by_touch_and_update(store: Arc<dyn SessionStore>) {
    let hour_ago = Timestamp::now().saturating_sub(Duration::from_secs(3600));
    let in_two_hours = Timestamp::now().saturating_add(Duration::from_secs(7200));

    let touched_away = new_record(Some("alice"));
    let updated_away = new_record(Some("alice"));
    let touched_longer = new_record(Some("alice"));
    let updated_longer = new_record(Some("alice"));
    for r in [
        &touched_away,
        &updated_away,
        &touched_longer,
        &updated_longer,
    ] {
        store.create(r).await.expect("create");
    }
    store
        .touch(&touched_away.key, hour_ago)
        .await
        .expect("touch into the past: Ok, and nothing moves");
    let mut ended = next_version(&updated_away, b"ended");
    ended.expires_at = hour_ago;
    store
        .update(&ended, 1)
        .await
        .expect("update to a past deadline");
    store
        .touch(&touched_longer.key, in_two_hours)
        .await
        .expect("touch later");
    let mut longer = next_version(&updated_longer, b"longer");
    longer.expires_at = in_two_hours;
    store
        .update(&longer, 1)
        .await
        .expect("update to a later deadline");

    let n = store.purge_expired().await.expect("purge_expired");
    assert!(
        n <= 1,
        "purge_expired: at most the 1 expired record; got {n}"
    );
    assert_loads(
        &*store,
        &touched_away,
        "purge_expired: a touch never moves a deadline earlier, so this one is live",
    )
    .await;
    assert_absent(&*store, &ended.key, "updated into the past").await;
    let mut touched_want = touched_longer.clone();
    touched_want.expires_at = in_two_hours;
    assert_loads(
        &*store,
        &touched_want,
        "purge_expired: a record whose deadline touch moved later is live",
    )
    .await;
    assert_loads(
        &*store,
        &longer,
        "purge_expired: a record whose deadline update moved later is live",
    )
    .await;
    assert_listed(
        &*store,
        "alice",
        &[touched_away, touched_want, longer],
        "list_user after purge",
    )
    .await;
}

/// A purged key can be created again, and the new record survives the next purge.
pub async fn purged_keys_can_be_created_again_and_survive_the_next_purge(
    store: Arc<dyn SessionStore>,
) {
    let old = expired_record(Some("alice"));
    store.create(&old).await.expect("create expired");
    let n = store.purge_expired().await.expect("purge_expired");
    assert!(n <= 1, "purge_expired: at most 1 expired; got {n}");
    let mut again = new_record(Some("alice"));
    again.key = old.key;
    store
        .create(&again)
        .await
        .expect("create under a purged key");
    let n = store.purge_expired().await;
    assert!(
        matches!(n, Ok(0)),
        "purge_expired: nothing is expired now; got {n:?}"
    );
    assert_loads(
        &*store,
        &again,
        "purge_expired removes no live record (one recreated under a purged key)",
    )
    .await;
    assert_listed(
        &*store,
        "alice",
        std::slice::from_ref(&again),
        "the recreated record is indexed once",
    )
    .await;
}
