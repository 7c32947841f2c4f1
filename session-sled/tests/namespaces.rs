//! Several stores in one application-owned database stay apart.

mod common;

use std::time::Duration;

use common::{record, TempDir};
use session_core::{SessionStore, Timestamp};
use session_sled::{Durability, SledOptions, SledStore};

#[tokio::test]
async fn stores_with_different_namespaces_do_not_see_each_other() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let a = SledStore::from_db(db.clone(), SledOptions::default().namespace("a")).unwrap();
    let b = SledStore::from_db(db, SledOptions::default().namespace("b")).unwrap();
    let r = record(Some("alice"), Timestamp::now(), Duration::from_secs(60));
    a.create(&r).await.unwrap();
    assert!(b.load(&r.key).await.unwrap().is_none());
    assert!(b.list_user("alice").await.unwrap().is_empty());
    assert_eq!(b.delete_user("alice", None).await.unwrap(), 0);
    assert!(a.load(&r.key).await.unwrap().is_some());
}

#[tokio::test]
async fn data_written_with_every_write_durability_is_there_after_reopening() {
    let dir = TempDir::new("reopen");
    let r = record(Some("alice"), Timestamp::now(), Duration::from_secs(60));
    {
        let store = SledStore::open_with(
            &dir.0,
            SledOptions::default().durability(Durability::EveryWrite),
        )
        .unwrap();
        store.create(&r).await.unwrap();
    }
    let store = SledStore::open(&dir.0).unwrap();
    assert_eq!(store.load(&r.key).await.unwrap(), Some(r));
    assert!(store.check_indexes().unwrap().is_consistent());
}
