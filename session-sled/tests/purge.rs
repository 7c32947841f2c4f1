//! `purge_expired` reads only what expired, and the background task runs it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::record;
use session_core::{Clock, ManualClock, PurgeTask, SessionStore, Timestamp};
use session_sled::{SledOptions, SledStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_reads_only_the_expired_among_a_million_records() {
    const STORED: usize = 1_000_000;
    const EXPIRED: usize = 1_000;
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let store =
        SledStore::temporary(SledOptions::default().clock(Arc::new(clock.clone()))).unwrap();
    let now = clock.now();
    let tasks: Vec<_> = (0..2)
        .map(|part| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in (part..STORED).step_by(2) {
                    let ttl = if i % (STORED / EXPIRED) == 0 {
                        1_000
                    } else {
                        3_600_000
                    };
                    let user = format!("user{}", i % 1000);
                    store
                        .create(&record(Some(&user), now, Duration::from_millis(ttl)))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    clock.advance(Duration::from_secs(1));
    let before = store.purge_examined();
    assert_eq!(store.purge_expired().await.unwrap(), EXPIRED as u64);
    let examined = store.purge_examined() - before;
    assert_eq!(
        examined, EXPIRED as u64,
        "purge must read the {EXPIRED} expired index entries and nothing else"
    );
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    // user0 held exactly the expired ones; user1 only live ones.
    assert!(store.list_user("user0").await.unwrap().is_empty());
    assert_eq!(store.list_user("user1").await.unwrap().len(), 1_000);
}

#[tokio::test(start_paused = true)]
async fn the_background_task_purges_every_period_and_stops_on_shutdown() {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let store =
        SledStore::temporary(SledOptions::default().clock(Arc::new(clock.clone()))).unwrap();
    let r = record(None, clock.now(), Duration::from_millis(10));
    store.create(&r).await.unwrap();
    clock.advance(Duration::from_millis(10));
    let task = PurgeTask::spawn(Arc::new(store.clone()), Duration::from_secs(60));
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert_eq!(
        store.check_indexes().unwrap().records,
        1,
        "not before the first period"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        store.check_indexes().unwrap().records,
        0,
        "purged after one period"
    );
    task.shutdown().await;

    let late = record(None, clock.now(), Duration::from_millis(10));
    store.create(&late).await.unwrap();
    clock.advance(Duration::from_millis(10));
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(
        store.check_indexes().unwrap().records,
        1,
        "a stopped task purges nothing"
    );
}

/// The store on a manual clock, starting at a fixed instant.
fn store_on(clock: &ManualClock) -> SledStore {
    SledStore::temporary(SledOptions::default().clock(Arc::new(clock.clone()))).unwrap()
}

#[tokio::test]
async fn an_extended_deadline_is_filed_again_by_purge_not_by_every_write() {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let store = store_on(&clock);
    let mut r = record(Some("alice"), clock.now(), Duration::from_secs(60));
    store.create(&r).await.unwrap();
    // Every minute a request extends the deadline by another minute.
    for _ in 0..5 {
        clock.advance(Duration::from_secs(50));
        r.version += 1;
        r.expires_at = clock.now().saturating_add(Duration::from_secs(60));
        store.update(&r, r.version - 1).await.unwrap();
        assert!(
            store.check_indexes().unwrap().is_tidy(),
            "one entry, no leftovers"
        );
    }
    let before = store.purge_examined();
    assert_eq!(store.purge_expired().await.unwrap(), 0, "still live");
    assert_eq!(
        store.purge_examined() - before,
        1,
        "the first deadline passed long ago: its entry is read once and moved"
    );
    assert_eq!(store.purge_expired().await.unwrap(), 0);
    assert_eq!(store.purge_examined() - before, 1, "moved past now");
    assert_eq!(store.load(&r.key).await.unwrap(), Some(r.clone()));
    assert!(store.check_indexes().unwrap().is_tidy());

    clock.advance(Duration::from_secs(60));
    assert_eq!(
        store.purge_expired().await.unwrap(),
        1,
        "gone at its deadline"
    );
    assert!(store.list_user("alice").await.unwrap().is_empty());
    assert_eq!(store.check_indexes().unwrap(), Default::default());
}

#[tokio::test]
async fn a_deadline_moved_earlier_is_filed_at_once_and_purged_then() {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let store = store_on(&clock);
    let r = record(None, clock.now(), Duration::from_secs(3600));
    store.create(&r).await.unwrap();
    // Only an update moves a deadline earlier (a touch never does).
    let mut sooner = r.clone();
    sooner.version = 2;
    sooner.expires_at = clock.now().saturating_add(Duration::from_secs(10));
    store.update(&sooner, 1).await.unwrap();
    assert!(
        store.check_indexes().unwrap().is_tidy(),
        "the old entry went"
    );
    clock.advance(Duration::from_secs(10));
    let before = store.purge_examined();
    assert_eq!(store.purge_expired().await.unwrap(), 1);
    assert_eq!(store.purge_examined() - before, 1);
    assert_eq!(store.check_indexes().unwrap(), Default::default());
}

#[tokio::test]
async fn leftover_index_entries_are_harmless_and_cleared() {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let (store, db) = common::store_in_temporary_db(&clock);
    let live = record(Some("bob"), clock.now(), Duration::from_secs(60));
    let gone = record(Some("bob"), clock.now(), Duration::from_secs(60));
    store.create(&live).await.unwrap();
    store.create(&gone).await.unwrap();
    // What a crash between "record removed" and "its entries removed" leaves.
    db.open_tree("t.records")
        .unwrap()
        .remove(gone.key.as_bytes())
        .unwrap();
    let report = store.check_indexes().unwrap();
    assert!(report.is_consistent(), "{report:?}");
    assert!(!report.is_tidy());
    assert_eq!(
        (report.dangling_user_entries, report.dangling_expiry_entries),
        (1, 1)
    );

    assert_eq!(store.list_user("bob").await.unwrap(), vec![live.clone()]);
    assert_eq!(store.delete_user("bob", Some(&live.key)).await.unwrap(), 0);
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        store.purge_expired().await.unwrap(),
        1,
        "only the real record"
    );
    assert_eq!(store.check_indexes().unwrap(), Default::default());
}
