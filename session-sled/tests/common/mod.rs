//! Helpers for the sled-specific tests.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use session_core::{Record, SessionToken, Timestamp};

/// A fresh folder under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "session-sled-{tag}-{}-{}",
            std::process::id(),
            SessionToken::generate().key().to_hex()[..12].to_owned()
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn record(user: Option<&str>, now: Timestamp, ttl: Duration) -> Record {
    session_test_suite::cases::record_at(user, now, ttl)
}

/// A store in namespace `t` of a temporary database on `clock`, and the
/// database, for tests that reach into the trees.
pub fn store_in_temporary_db(
    clock: &session_core::ManualClock,
) -> (session_sled::SledStore, sled::Db) {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let options = session_sled::SledOptions::default()
        .namespace("t")
        .clock(std::sync::Arc::new(clock.clone()));
    (
        session_sled::SledStore::from_db(db.clone(), options).unwrap(),
        db,
    )
}
