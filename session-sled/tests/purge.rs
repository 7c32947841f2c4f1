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
