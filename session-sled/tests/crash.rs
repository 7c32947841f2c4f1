//! Crash safety: writers in a child process are killed with SIGKILL mid-stream;
//! after reopening, every acknowledged write is there and the indexes agree
//! with the records.
//!
//! The tests re-run their own binary as the child (selected by an environment
//! variable). The first child writes with `Durability::EveryWrite` and prints
//! a line once each session's whole sequence of writes has been acknowledged.
//! The second writes with the default `Durability::Periodic` (with a period
//! far longer than the test) and ends sessions every way there is: after the
//! kill, none of the acknowledged revocations may have been undone.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{record, TempDir};
use session_core::{SessionKey, SessionStore, SessionToken, Timestamp};
use session_sled::{Durability, SledOptions, SledStore};

const CHILD_ENV: &str = "SESSION_SLED_CRASH_CHILD_DIR";
const REVOKE_CHILD_ENV: &str = "SESSION_SLED_REVOKE_CHILD_DIR";
/// Sessions the revoking child ends, each acknowledged before the kill.
const REVOCATIONS: usize = 60;
const KILL_AFTER: usize = 600;

/// What the child promises about one session once its writes are acknowledged.
#[derive(Debug, PartialEq)]
enum Expect {
    Present { version: u64, user: String },
    Gone,
}

#[test]
fn acknowledged_writes_survive_sigkill_and_indexes_agree() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        return child(&dir);
    }
    let dir = TempDir::new("crash");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "acknowledged_writes_survive_sigkill_and_indexes_agree",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &dir.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the writer process");

    let mut acked: HashMap<SessionKey, Expect> = HashMap::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while acked.len() < KILL_AFTER {
        let line = lines
            .next()
            .expect("the writer stopped early")
            .expect("read the writer's output");
        if let Some((key, expect)) = parse_ack(&line) {
            acked.insert(key, expect);
        }
    }
    child.kill().expect("SIGKILL the writer"); // Child::kill sends SIGKILL on Unix.
    child.wait().unwrap();

    let store = SledStore::open(&dir.0).expect("reopen after the crash");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (key, expect) in &acked {
        let found = rt.block_on(store.load(key)).expect("load after crash");
        match (expect, found) {
            (Expect::Gone, None) => {}
            (Expect::Present { version, user }, Some(r)) => {
                assert_eq!(r.version, *version, "{key:?}: acknowledged version lost");
                assert_eq!(r.user.as_deref(), Some(user.as_str()));
            }
            (expect, found) => panic!("{key:?}: acknowledged {expect:?}, found {found:?}"),
        }
    }
    let report = store.check_indexes().unwrap();
    assert!(
        report.is_consistent(),
        "indexes disagree after a crash: {report:?}"
    );
    assert!(report.records >= 200, "{report:?}");
}

fn parse_ack(line: &str) -> Option<(SessionKey, Expect)> {
    let mut parts = line.strip_prefix("ACK ")?.split(' ');
    let key = SessionKey::from_hex(parts.next()?)?;
    let expect = match parts.next()? {
        "gone" => Expect::Gone,
        version => Expect::Present {
            version: version.parse().ok()?,
            user: parts.next()?.to_owned(),
        },
    };
    Some((key, expect))
}

/// The writer: per session, create, update (moving it to another user), then
/// sometimes rotate or delete it; each finished sequence is acknowledged. It
/// runs until it is killed.
fn child(dir: &str) {
    let store = SledStore::open_with(
        dir,
        SledOptions::default().durability(Durability::EveryWrite),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        for i in 0u64.. {
            let first = format!("user{}", i % 7);
            let second = format!("user{}", (i + 1) % 7);
            let mut r = record(Some(&first), Timestamp::now(), Duration::from_secs(3600));
            r.data = vec![u8::try_from(i % 251).unwrap(); 2048];
            store.create(&r).await.unwrap();
            let mut next = r.clone();
            next.version = 2;
            next.user = Some(second.clone());
            store.update(&next, 1).await.unwrap();
            let (key, line) = match i % 3 {
                0 => {
                    let mut rotated = next.clone();
                    rotated.key = SessionToken::generate().key();
                    rotated.version = 3;
                    store.rotate(&next.key, &rotated, 2).await.unwrap();
                    println!("ACK {} gone", next.key.to_hex());
                    (rotated.key, format!("3 {second}"))
                }
                1 => {
                    store.delete(&next.key).await.unwrap();
                    (next.key, "gone".to_owned())
                }
                _ => (next.key, format!("2 {second}")),
            };
            println!("ACK {} {line}", key.to_hex());
        }
    });
}

/// With `Durability::Periodic` (the default), acknowledged logouts, "log out
/// everywhere", revocations by id and the old keys of rotations survive a
/// SIGKILL: after reopening, none of the ended sessions loads again.
#[test]
fn acknowledged_revocations_survive_sigkill_with_periodic_durability() {
    if let Ok(dir) = std::env::var(REVOKE_CHILD_ENV) {
        return revoking_child(&dir);
    }
    let dir = TempDir::new("crash-revoke");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "acknowledged_revocations_survive_sigkill_with_periodic_durability",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(REVOKE_CHILD_ENV, &dir.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the revoking process");
    let mut ended: Vec<SessionKey> = Vec::new();
    let mut kept: Vec<SessionKey> = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .expect("the revoking process stopped early")
            .expect("read its output");
        if line == "DONE" {
            break;
        }
        let parsed = line.strip_prefix("ENDED ").map(|k| (k, &mut ended));
        let parsed = parsed.or_else(|| line.strip_prefix("KEPT ").map(|k| (k, &mut kept)));
        if let Some((hex, list)) = parsed {
            list.push(SessionKey::from_hex(hex).expect("a key in hex"));
        }
    }
    // Right after the last acknowledgement, well within the flush period.
    child.kill().expect("SIGKILL the writer");
    child.wait().unwrap();
    assert!(
        ended.len() >= REVOCATIONS,
        "{} revocations acknowledged",
        ended.len()
    );

    let store = SledStore::open(&dir.0).expect("reopen after the crash");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let back: Vec<&SessionKey> = ended
        .iter()
        .filter(|k| rt.block_on(store.load(k)).expect("load").is_some())
        .collect();
    assert!(
        back.is_empty(),
        "{} of {} acknowledged revocations were undone by the crash: {back:?}",
        back.len(),
        ended.len()
    );
    for key in &kept {
        assert!(
            rt.block_on(store.load(key)).expect("load").is_some(),
            "{key:?}: a session flushed before the revocations is still there"
        );
    }
}

/// The revoking child: creates sessions and flushes them, then ends them one
/// way or another (delete, delete_user, delete_id, rotate), printing each
/// ended key once the call has returned; then waits to be killed.
fn revoking_child(dir: &str) {
    let store = SledStore::open_with(
        dir,
        SledOptions::default().durability(Durability::Periodic(Duration::from_secs(600))),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut sessions = Vec::new();
        for i in 0..REVOCATIONS {
            let user = format!("user{i}");
            let r = record(Some(&user), Timestamp::now(), Duration::from_secs(3600));
            store.create(&r).await.unwrap();
            sessions.push(r);
        }
        // A bystander that must survive: only revocations are in question.
        let bystander = record(
            Some("bystander"),
            Timestamp::now(),
            Duration::from_secs(3600),
        );
        store.create(&bystander).await.unwrap();
        store.flush().await.unwrap();
        println!("KEPT {}", bystander.key.to_hex());
        for (i, r) in sessions.iter().enumerate() {
            let user = r.user.clone().unwrap();
            match i % 4 {
                0 => assert!(store.delete(&r.key).await.unwrap()),
                1 => assert_eq!(store.delete_user(&user, None).await.unwrap(), 1),
                2 => assert!(store.delete_id(&user, r.id).await.unwrap()),
                _ => {
                    let mut moved = r.clone();
                    moved.key = SessionToken::generate().key();
                    moved.version = 2;
                    store.rotate(&r.key, &moved, 1).await.unwrap();
                }
            }
            println!("ENDED {}", r.key.to_hex());
        }
        println!("DONE");
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    });
}
