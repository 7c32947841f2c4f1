//! Damaged bytes on disk: a `Decode` error for that record, nothing else hurt.

mod common;

use std::time::Duration;

use common::record;
use session_core::{Clock, Error, ManualClock, SessionStore, Timestamp};
use session_sled::{SledOptions, SledStore};

#[tokio::test]
async fn a_corrupted_record_is_a_decode_error_and_does_not_block_others() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let store = SledStore::from_db(db.clone(), SledOptions::default().namespace("t")).unwrap();
    let now = Timestamp::now();
    let good = record(Some("alice"), now, Duration::from_secs(3600));
    let bad = record(Some("alice"), now, Duration::from_secs(3600));
    store.create(&good).await.unwrap();
    store.create(&bad).await.unwrap();

    let records = db.open_tree("t.records").unwrap();
    for garbage in [
        &b""[..],
        b"\x01short",
        b"\x07not our format at all, not at all!!!!!!!!!!!",
    ] {
        records.insert(bad.key.as_bytes(), garbage).unwrap();
        let err = store.load(&bad.key).await.unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{err:?}");
        assert_eq!(store.load(&good.key).await.unwrap(), Some(good.clone()));
        let listed = store.list_user("alice").await.unwrap();
        assert_eq!(
            listed,
            vec![good.clone()],
            "the damaged record is skipped, not fatal"
        );
    }
    let mut next = good.clone();
    next.version += 1;
    next.data = b"still writable".to_vec();
    store.update(&next, good.version).await.unwrap();
    assert_eq!(store.load(&next.key).await.unwrap(), Some(next));
    assert!(
        store.delete(&bad.key).await.unwrap(),
        "a damaged record can be deleted"
    );
    assert!(store.load(&bad.key).await.unwrap().is_none());
}

#[tokio::test]
async fn damaged_records_are_removed_by_delete_user_and_purge() {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let (store, db) = common::store_in_temporary_db(&clock);
    let now = clock.now();
    let a = record(Some("bob"), now, Duration::from_secs(3600));
    let b = record(Some("bob"), now, Duration::from_secs(3600));
    let mut c = record(None, now, Duration::from_secs(3600));
    c.created_at = now.saturating_sub(Duration::from_secs(7200));
    c.expires_at = now.saturating_sub(Duration::from_secs(1));
    for r in [&a, &b, &c] {
        store.create(r).await.unwrap();
    }
    let records = db.open_tree("t.records").unwrap();
    records.insert(a.key.as_bytes(), &b"\xffjunk"[..]).unwrap();
    records.insert(c.key.as_bytes(), &b"\xffjunk"[..]).unwrap();

    assert_eq!(
        store.delete_user("bob", None).await.unwrap(),
        1,
        "b counted; damaged a removed"
    );
    assert!(store.purge_expired().await.unwrap() <= 1);
    let report = store.check_indexes().unwrap();
    assert_eq!(report.records, 0, "{report:?}");
    assert_eq!(report.dangling_user_entries, 0, "{report:?}");
    // The damaged record's expiry entry could not be named when it went; it
    // goes when its deadline passes.
    assert_eq!(report.dangling_expiry_entries, 1, "{report:?}");
    clock.advance(Duration::from_secs(3600));
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    let report = store.check_indexes().unwrap();
    assert!(report.is_consistent(), "{report:?}");
}
