//! Concurrent writers, creators, revokers, rotators and readers on one store.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_core::{Error, Record, SessionKey, SessionStore};

use super::fixtures::{
    assert_absent, assert_listed, assert_loads, in_from_now, new_record, next_version, rotated,
    StartGate, LIVE_FOR,
};

/// Waits until `counter` reaches `at_least`, panicking after `limit`.
async fn wait_for(counter: &AtomicU64, at_least: u64, limit: Duration, what: &str) {
    let started = Instant::now();
    while counter.load(Ordering::SeqCst) < at_least {
        assert!(
            started.elapsed() < limit,
            "{what}: only {} of {at_least} operations after {limit:?}",
            counter.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// 32 tasks × 10 load→update rounds retrying on `Conflict`: no write lost, none doubled.
pub async fn concurrent_updates_never_lose_a_write(store: Arc<dyn SessionStore>) {
    const TASKS: u64 = 32;
    const EACH: usize = 10;
    let r = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    let gate = StartGate::new();
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let store = Arc::clone(&store);
        let gate = gate.clone();
        let key = r.key;
        handles.push(tokio::spawn(async move {
            gate.wait().await;
            let mut written: Vec<(u64, Vec<u8>)> = Vec::with_capacity(EACH);
            let mut attempts = 0u32;
            while written.len() < EACH {
                // An in-process store never returns Pending: let other tasks run.
                tokio::task::yield_now().await;
                attempts += 1;
                assert!(attempts < 100_000, "task {t} made no progress");
                let current = store
                    .load(&key)
                    .await
                    .expect("load")
                    .expect("the record stays live while tasks update it");
                let data = format!("task {t} write {}", written.len()).into_bytes();
                let next = next_version(&current, &data);
                match store.update(&next, current.version).await {
                    Ok(()) => written.push((next.version, data)),
                    Err(Error::Conflict) => {}
                    Err(e) => panic!(
                        "update: only Conflict may stop a racing writer of a live record; got {e:?}"
                    ),
                }
            }
            written
        }));
    }
    gate.open();
    let mut all: Vec<(u64, Vec<u8>)> = Vec::new();
    for h in handles {
        all.extend(h.await.expect("updating task panicked"));
    }
    let versions: BTreeSet<u64> = all.iter().map(|(v, _)| *v).collect();
    assert_eq!(
        versions.len(),
        all.len(),
        "update: two successful updates wrote the same version, so one of them was lost \
         (replace only if the stored version equals expected_version)"
    );
    let want: BTreeSet<u64> = (2..=1 + TASKS * EACH as u64).collect();
    assert_eq!(versions, want, "successful updates wrote versions 2..=321");
    let last = store.load(&r.key).await.expect("load").expect("still live");
    assert_eq!(
        last.version,
        1 + TASKS * EACH as u64,
        "final version must be 1 + 320: every successful update counted once"
    );
    let last_data = all
        .iter()
        .find(|(v, _)| *v == last.version)
        .map(|(_, d)| d.clone())
        .unwrap_or_default();
    assert_eq!(
        last.data, last_data,
        "the stored data is the one written with the final version"
    );
}

/// 32 racing creates of one key: exactly one succeeds, the rest are `AlreadyExists`.
pub async fn concurrent_creates_of_the_same_key_have_exactly_one_winner(
    store: Arc<dyn SessionStore>,
) {
    const TASKS: usize = 32;
    let key = new_record(None).key;
    let gate = StartGate::new();
    let mut handles = Vec::new();
    for i in 0..TASKS {
        let store = Arc::clone(&store);
        let gate = gate.clone();
        let mut r = new_record(Some(&format!("racer-{i}")));
        r.key = key;
        r.data = format!("created by {i}").into_bytes();
        handles.push(tokio::spawn(async move {
            gate.wait().await;
            let res = store.create(&r).await;
            (r, res)
        }));
    }
    gate.open();
    let mut winners: Vec<Record> = Vec::new();
    let mut losers: Vec<Record> = Vec::new();
    for h in handles {
        let (r, res) = h.await.expect("creating task panicked");
        match res {
            Ok(()) => winners.push(r),
            Err(Error::AlreadyExists) => losers.push(r),
            Err(e) => panic!("create: a racing create must be Ok or AlreadyExists; got {e:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "create: exactly one racing create succeeds, the others get AlreadyExists \
         (never overwrites a live record); winners: {winners:?}"
    );
    let winner = &winners[0];
    assert_loads(&*store, winner, "the winner's record is stored").await;
    for r in &losers {
        let user = r.user.as_deref().unwrap_or_default();
        assert_listed(
            &*store,
            user,
            &[],
            "a losing create must not index its user",
        )
        .await;
    }
    let user = winner.user.as_deref().unwrap_or_default();
    assert_listed(
        &*store,
        user,
        std::slice::from_ref(winner),
        "the winner is indexed",
    )
    .await;
}

/// Once `delete` returned, updates racing it are `NotFound` and the session stays gone.
pub async fn deleted_session_is_not_brought_back_by_concurrent_updates(
    store: Arc<dyn SessionStore>,
) {
    const TASKS: usize = 4;
    let r = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    let deleted = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let store = Arc::clone(&store);
        let deleted = Arc::clone(&deleted);
        let progress = Arc::clone(&progress);
        let original = r.clone();
        let key = r.key;
        handles.push(tokio::spawn(async move {
            let mut i = 0u64;
            loop {
                // An in-process store never returns Pending: let other tasks run.
                tokio::task::yield_now().await;
                i += 1;
                let after = deleted.load(Ordering::SeqCst);
                let Some(current) = store.load(&key).await.expect("load") else {
                    break;
                };
                assert!(
                    !after,
                    "load after delete returned must be None; got {current:?}"
                );
                let next = next_version(&current, format!("{t}/{i}").as_bytes());
                let after = deleted.load(Ordering::SeqCst);
                match store.update(&next, current.version).await {
                    Ok(()) => assert!(
                        !after,
                        "update: a deleted session is never brought back by a late write, \
                         but an update started after delete returned succeeded"
                    ),
                    Err(Error::NotFound) => break,
                    Err(Error::Conflict) if !after => {}
                    Err(e) => panic!(
                        "update after delete returned must be NotFound (after={after}); got {e:?}"
                    ),
                }
                progress.fetch_add(1, Ordering::SeqCst);
            }
            let res = store.update(&next_version(&original, b"late"), 1).await;
            assert!(
                matches!(res, Err(Error::NotFound)),
                "update after delete: NotFound; got {res:?}"
            );
        }));
    }
    wait_for(
        &progress,
        20,
        Duration::from_secs(10),
        "updates before delete",
    )
    .await;
    let res = store.delete(&r.key).await;
    deleted.store(true, Ordering::SeqCst);
    assert!(
        matches!(res, Ok(true)),
        "delete of a live session being updated returns true; got {res:?}"
    );
    for h in handles {
        h.await.expect("updating task panicked");
    }
    assert_absent(&*store, &r.key, "the deleted session stays gone").await;
    assert_listed(&*store, "alice", &[], "the deleted session is not listed").await;
}

/// Once `delete_user` returned, racing updates and touches are `NotFound`; nothing revives.
pub async fn revoked_sessions_are_not_brought_back_by_concurrent_updates_and_touches(
    store: Arc<dyn SessionStore>,
) {
    const SESSIONS: usize = 8;
    let records: Vec<Record> = (0..SESSIONS).map(|_| new_record(Some("alice"))).collect();
    for r in &records {
        store.create(r).await.expect("create");
    }
    let bobs = new_record(Some("bob"));
    store.create(&bobs).await.expect("create bob's");
    let revoked = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for r in records.clone() {
        let store = Arc::clone(&store);
        let revoked = Arc::clone(&revoked);
        let progress = Arc::clone(&progress);
        handles.push(tokio::spawn(async move {
            let mut current = r;
            let mut i = 0u64;
            loop {
                // An in-process store never returns Pending: let other tasks run.
                tokio::task::yield_now().await;
                i += 1;
                let after = revoked.load(Ordering::SeqCst);
                let (what, res) = if i % 3 == 0 {
                    let at = in_from_now(LIVE_FOR + Duration::from_millis(i));
                    ("touch", store.touch(&current.key, at).await.map(|()| None))
                } else {
                    let next = next_version(&current, format!("write {i}").as_bytes());
                    let res = store.update(&next, current.version).await;
                    ("update", res.map(|()| Some(next)))
                };
                match res {
                    Ok(next) => {
                        assert!(
                            !after,
                            "delete_user: a revoked session is never brought back by a late \
                             {what}, but one started after delete_user returned succeeded"
                        );
                        if let Some(next) = next {
                            current = next;
                        }
                    }
                    Err(Error::NotFound) => break,
                    Err(e) => {
                        panic!("{what} of a session being revoked: Ok or NotFound; got {e:?}")
                    }
                }
                progress.fetch_add(1, Ordering::SeqCst);
            }
            let res = store.touch(&current.key, in_from_now(LIVE_FOR)).await;
            assert!(
                matches!(res, Err(Error::NotFound)),
                "touch of a revoked session: NotFound; got {res:?}"
            );
            current.key
        }));
    }
    wait_for(
        &progress,
        (SESSIONS * 5) as u64,
        Duration::from_secs(10),
        "writes before delete_user",
    )
    .await;
    let n = store.delete_user("alice", None).await;
    revoked.store(true, Ordering::SeqCst);
    assert!(
        matches!(n, Ok(c) if c == SESSIONS as u64),
        "delete_user: deletes every live record of the user and returns how many ({SESSIONS}); \
         got {n:?}"
    );
    for h in handles {
        let key = h.await.expect("writing task panicked");
        assert_absent(&*store, &key, "a revoked session stays gone").await;
    }
    assert_listed(&*store, "alice", &[], "no revoked session is listed").await;
    assert_loads(&*store, &bobs, "delete_user(alice) leaves bob's session").await;
}

/// `delete_user` revokes sessions being rotated: none escapes under a new key.
pub async fn revoked_sessions_are_not_brought_back_by_concurrent_rotations(
    store: Arc<dyn SessionStore>,
) {
    // A few rounds, since a missed rotation is a matter of timing.
    for round in 0..5 {
        revoke_while_rotating(&store, &format!("alice-{round}")).await;
    }
}

/// One round of [`revoked_sessions_are_not_brought_back_by_concurrent_rotations`].
async fn revoke_while_rotating(store: &Arc<dyn SessionStore>, user: &str) {
    const SESSIONS: usize = 8;
    let records: Vec<Record> = (0..SESSIONS).map(|_| new_record(Some(user))).collect();
    for r in &records {
        store.create(r).await.expect("create");
    }
    let revoked = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = records
        .iter()
        .map(|r| spawn_rotating(store, r.clone(), &revoked, &progress, "delete_user"))
        .collect();
    wait_for(
        &progress,
        (SESSIONS * 5) as u64,
        Duration::from_secs(10),
        "rotations before delete_user",
    )
    .await;
    let n = store.delete_user(user, None).await;
    revoked.store(true, Ordering::SeqCst);
    assert!(
        matches!(n, Ok(c) if c == SESSIONS as u64),
        "delete_user: deletes every live record of the user ({SESSIONS}), including one \
         being rotated; got {n:?}"
    );
    for h in handles {
        for key in h.await.expect("rotating task panicked") {
            assert_absent(&**store, &key, "no key of a revoked session loads").await;
        }
    }
    assert_listed(&**store, user, &[], "no revoked session is listed").await;
}

/// Rotates `r` in a loop until the store answers `NotFound`, counting
/// rotations in `progress`; a rotation that succeeds after `revoked` was set
/// (the revocation, by `what`, had returned) fails the case. Returns every
/// key the session had.
fn spawn_rotating(
    store: &Arc<dyn SessionStore>,
    r: Record,
    revoked: &Arc<AtomicBool>,
    progress: &Arc<AtomicU64>,
    what: &'static str,
) -> tokio::task::JoinHandle<Vec<SessionKey>> {
    let store = Arc::clone(store);
    let revoked = Arc::clone(revoked);
    let progress = Arc::clone(progress);
    tokio::spawn(async move {
        let mut used: Vec<SessionKey> = vec![r.key];
        let mut current = r;
        loop {
            // An in-process store never returns Pending: let other tasks run.
            tokio::task::yield_now().await;
            let after = revoked.load(Ordering::SeqCst);
            let next = rotated(&current, b"rotated");
            match store.rotate(&current.key, &next, current.version).await {
                Ok(()) => {
                    assert!(
                        !after,
                        "{what}: a revoked session is never brought back by a late rotate, \
                         but one started after {what} returned succeeded"
                    );
                    used.push(next.key);
                    current = next;
                }
                Err(Error::NotFound) => break,
                Err(e) => panic!("rotate of a session being revoked: Ok or NotFound; got {e:?}"),
            }
            progress.fetch_add(1, Ordering::SeqCst);
        }
        used
    })
}

/// `delete_id` ends a session that rotates in a loop meanwhile: it returns
/// `true`, the rotating task then meets `NotFound`, and no key the session
/// ever had loads. (A revoke by id must never answer "gone" for a session
/// that lives on under a newer token.)
pub async fn delete_id_ends_a_session_that_keeps_rotating(store: Arc<dyn SessionStore>) {
    // A few rounds, since a missed rotation is a matter of timing.
    for round in 0..8 {
        let user = format!("alice-{round}");
        let r = new_record(Some(&user));
        let bystander = new_record(Some(&user));
        store.create(&r).await.expect("create");
        store.create(&bystander).await.expect("create");
        let target_id = r.id;
        let revoked = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(AtomicU64::new(0));
        let rotating = spawn_rotating(&store, r, &revoked, &progress, "delete_id");
        wait_for(
            &progress,
            3,
            Duration::from_secs(10),
            "rotations before delete_id",
        )
        .await;
        let res = store.delete_id(&user, target_id).await;
        revoked.store(true, Ordering::SeqCst);
        assert!(
            matches!(res, Ok(true)),
            "delete_id: a session that is live throughout (it only rotates) is found and \
             ended, never reported gone; got {res:?}"
        );
        let used = tokio::time::timeout(Duration::from_secs(10), rotating)
            .await
            .expect("the rotating task meets NotFound once its session is ended")
            .expect("rotating task panicked");
        for key in used {
            assert_absent(&*store, &key, "no key of the ended session loads").await;
        }
        assert_listed(
            &*store,
            &user,
            std::slice::from_ref(&bystander),
            "delete_id ended only that session",
        )
        .await;
    }
}

/// The per-user cap over this store: 16 logins of one user committing at
/// once, under caps of 1 and 3, leave exactly `cap` live sessions, the
/// newest by (last activity, id), and every login gets its token. (Two
/// logins that each ended the other's session used to leave none.)
pub async fn concurrent_logins_under_a_per_user_cap_keep_exactly_the_newest(
    store: Arc<dyn SessionStore>,
) {
    const LOGINS: usize = 16;
    for cap in [1usize, 3] {
        let user = format!("capped-{cap}");
        let config = session_core::SessionConfig::default().max_sessions_per_user(cap);
        let manager =
            session_core::SessionManager::new(Arc::clone(&store), config).expect("a valid config");
        let gate = StartGate::new();
        let mut handles = Vec::new();
        for _ in 0..LOGINS {
            let manager = manager.clone();
            let gate = gate.clone();
            let user = user.clone();
            handles.push(tokio::spawn(async move {
                let s = manager.load(None).await.expect("load");
                s.login(user).expect("a valid user name");
                gate.wait().await;
                let action = s.commit().await.expect("every login commits");
                assert!(action.token().is_some(), "every login gets its token");
                (s.created_at().expect("stored"), s.id().expect("stored"))
            }));
        }
        gate.open();
        let mut all = Vec::new();
        for h in handles {
            all.push(h.await.expect("login task panicked"));
        }
        // A fresh session's last activity is its creation.
        all.sort_by(|a, b| b.cmp(a));
        let mut want: Vec<_> = all.iter().take(cap).map(|(_, id)| *id).collect();
        want.sort();
        let mut kept: Vec<_> = manager
            .list_user(&user)
            .await
            .expect("list_user")
            .into_iter()
            .map(|i| i.id)
            .collect();
        kept.sort();
        assert_eq!(
            kept, want,
            "cap {cap}: after {LOGINS} concurrent logins exactly the {cap} newest sessions \
             by (last activity, id) stay"
        );
        manager.revoke_user(&user, None).await.expect("clean up");
    }
}

/// 16 racing rotations of one key and version: exactly one wins, one record stays live.
pub async fn concurrent_rotations_of_one_key_have_exactly_one_winner(store: Arc<dyn SessionStore>) {
    const TASKS: usize = 16;
    let r = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    let gate = StartGate::new();
    let mut handles = Vec::new();
    for i in 0..TASKS {
        let store = Arc::clone(&store);
        let gate = gate.clone();
        let candidate = rotated(&r, format!("rotated by {i}").as_bytes());
        let old_key = r.key;
        handles.push(tokio::spawn(async move {
            gate.wait().await;
            let res = store.rotate(&old_key, &candidate, 1).await;
            (candidate, res)
        }));
    }
    gate.open();
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for h in handles {
        let (candidate, res) = h.await.expect("rotating task panicked");
        match res {
            Ok(()) => winners.push(candidate),
            Err(Error::Conflict) | Err(Error::NotFound) => losers.push(candidate),
            Err(e) => panic!("a losing rotate must be Conflict or NotFound; got {e:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "rotate: exactly one of 16 racing rotations with the same expected version succeeds; \
         winners: {:?}",
        winners.iter().map(|w| w.key).collect::<Vec<_>>()
    );
    let winner = &winners[0];
    assert_absent(&*store, &r.key, "rotate: old_key no longer loads").await;
    assert_loads(
        &*store,
        winner,
        "rotate: the winning record loads under its key",
    )
    .await;
    for l in &losers {
        assert_absent(&*store, &l.key, "a losing rotate created nothing").await;
    }
    let listed = store.list_user("alice").await.expect("list_user");
    let with_id: Vec<&Record> = listed.iter().filter(|x| x.id == r.id).collect();
    assert_eq!(
        with_id.len(),
        1,
        "exactly one record with the session's id is live after the race; got {with_id:?}"
    );
    assert_eq!(
        with_id[0].key, winner.key,
        "the listed record is the winner's"
    );
}

/// Readers loading both keys during a rotation never see both live nor neither.
pub async fn readers_never_see_both_or_neither_key_during_rotation(store: Arc<dyn SessionStore>) {
    const ROUNDS: usize = 40;
    const READERS: usize = 3;
    for round in 0..ROUNDS {
        let r = new_record(None);
        store.create(&r).await.expect("create");
        let moved = rotated(&r, format!("round {round}").as_bytes());
        let done = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        for _ in 0..READERS {
            let store = Arc::clone(&store);
            let done = Arc::clone(&done);
            let reads = Arc::clone(&reads);
            let (r, moved) = (r.clone(), moved.clone());
            handles.push(tokio::spawn(async move {
                for _ in 0..1_000_000u32 {
                    // An in-process store never returns Pending: let other tasks run.
                    tokio::task::yield_now().await;
                    let finished = done.load(Ordering::SeqCst);
                    // Old first: if the old key is gone, the rotation happened,
                    // so the new key must load.
                    let old = store.load(&r.key).await.expect("load old");
                    let new = store.load(&moved.key).await.expect("load new");
                    assert!(
                        old.is_some() || new.is_some(),
                        "rotate: no reader ever sees neither key (old gone, new not there)"
                    );
                    // New first: if the new key loads, the old one must be gone.
                    let new = store.load(&moved.key).await.expect("load new");
                    let old = store.load(&r.key).await.expect("load old");
                    assert!(
                        !(new.is_some() && old.is_some()),
                        "rotate: no reader ever sees both keys live"
                    );
                    if let Some(old) = &old {
                        assert_eq!(old, &r, "the old key holds the old record until rotation");
                    }
                    if let Some(new) = &new {
                        assert_eq!(new, &moved, "the new key holds the rotated record");
                    }
                    reads.fetch_add(1, Ordering::SeqCst);
                    if finished {
                        assert!(
                            new.is_some() && old.is_none(),
                            "after rotate returned, only the new key loads"
                        );
                        return;
                    }
                }
                panic!("the reader never saw the rotation finish");
            }));
        }
        wait_for(&reads, 2, Duration::from_secs(10), "reads before rotation").await;
        store
            .rotate(&r.key, &moved, 1)
            .await
            .expect("rotate while readers read");
        done.store(true, Ordering::SeqCst);
        for h in handles {
            h.await.expect("reading task panicked");
        }
    }
}

/// `list_user` during rotations never lists a session twice and never drops a steady one.
pub async fn list_user_during_rotations_never_lists_a_session_twice(store: Arc<dyn SessionStore>) {
    const ROTATIONS: usize = 200;
    let steady: Vec<Record> = (0..2).map(|_| new_record(Some("alice"))).collect();
    for r in &steady {
        store.create(r).await.expect("create");
    }
    let spinning = new_record(Some("alice"));
    store.create(&spinning).await.expect("create");
    let done = Arc::new(AtomicBool::new(false));
    let mut listers = Vec::new();
    for _ in 0..2 {
        let store = Arc::clone(&store);
        let done = Arc::clone(&done);
        let steady = steady.clone();
        let id = spinning.id;
        listers.push(tokio::spawn(async move {
            let mut lists = 0u64;
            while !done.load(Ordering::SeqCst) || lists == 0 {
                // An in-process store never returns Pending: let other tasks run.
                tokio::task::yield_now().await;
                let list = store.list_user("alice").await.expect("list_user");
                let copies = list.iter().filter(|r| r.id == id).count();
                assert!(
                    copies <= 1,
                    "list_user never returns moved-away records: a rotating session was \
                     listed {copies} times"
                );
                for s in &steady {
                    assert!(
                        list.iter().any(|r| r == s),
                        "list_user: returns every live record of the user; a session that \
                         never changed was missing during another session's rotation"
                    );
                }
                assert!(list.len() <= 3, "list_user returned {} records", list.len());
                lists += 1;
            }
            lists
        }));
    }
    let mut current = spinning;
    for i in 0..ROTATIONS {
        let next = rotated(&current, format!("rotation {i}").as_bytes());
        store
            .rotate(&current.key, &next, current.version)
            .await
            .expect("rotate");
        current = next;
        if i % 8 == 0 {
            tokio::task::yield_now().await;
        }
    }
    done.store(true, Ordering::SeqCst);
    for h in listers {
        h.await.expect("listing task panicked");
    }
    let mut want = steady.clone();
    want.push(current);
    assert_listed(&*store, "alice", &want, "list_user after the rotations").await;
}

/// An `update` and a `rotate` racing on one version: exactly one wins.
pub async fn update_and_rotate_racing_on_one_version_have_exactly_one_winner(
    store: Arc<dyn SessionStore>,
) {
    const ROUNDS: usize = 30;
    for round in 0..ROUNDS {
        let r = new_record(Some("alice"));
        store.create(&r).await.expect("create");
        let updated = next_version(&r, format!("updated {round}").as_bytes());
        let moved = rotated(&r, format!("rotated {round}").as_bytes());
        let gate = StartGate::new();
        let u = {
            let (store, gate, updated) = (Arc::clone(&store), gate.clone(), updated.clone());
            tokio::spawn(async move {
                gate.wait().await;
                store.update(&updated, 1).await
            })
        };
        let m = {
            let (store, gate, moved, old) =
                (Arc::clone(&store), gate.clone(), moved.clone(), r.key);
            tokio::spawn(async move {
                gate.wait().await;
                store.rotate(&old, &moved, 1).await
            })
        };
        gate.open();
        let u = u.await.expect("update task panicked");
        let m = m.await.expect("rotate task panicked");
        match (&u, &m) {
            (Ok(()), Err(Error::Conflict)) => {
                assert_loads(&*store, &updated, "update won the race").await;
                assert_absent(&*store, &moved.key, "the losing rotate created nothing").await;
            }
            (Err(Error::NotFound), Ok(())) => {
                assert_absent(&*store, &r.key, "rotate won: old key gone").await;
                assert_loads(&*store, &moved, "rotate won the race").await;
            }
            _ => panic!(
                "update and rotate on the same version: exactly one succeeds and the other \
                 is Conflict (update first) or NotFound (rotate first); got update {u:?}, \
                 rotate {m:?}"
            ),
        }
        store.delete_user("alice", None).await.expect("clean up");
    }
}

/// A `delete` and a `rotate` of one key racing never both succeed.
pub async fn delete_and_rotate_racing_never_both_succeed(store: Arc<dyn SessionStore>) {
    const ROUNDS: usize = 30;
    for round in 0..ROUNDS {
        let r = new_record(Some("alice"));
        store.create(&r).await.expect("create");
        let moved = rotated(&r, format!("rotated {round}").as_bytes());
        let gate = StartGate::new();
        let d = {
            let (store, gate, key) = (Arc::clone(&store), gate.clone(), r.key);
            tokio::spawn(async move {
                gate.wait().await;
                store.delete(&key).await
            })
        };
        let m = {
            let (store, gate, moved, old) =
                (Arc::clone(&store), gate.clone(), moved.clone(), r.key);
            tokio::spawn(async move {
                gate.wait().await;
                store.rotate(&old, &moved, 1).await
            })
        };
        gate.open();
        let d = d.await.expect("delete task panicked");
        let m = m.await.expect("rotate task panicked");
        assert_absent(&*store, &r.key, "the old key is gone either way").await;
        match (&d, &m) {
            (Ok(true), Err(Error::NotFound)) => {
                assert_absent(&*store, &moved.key, "delete won: rotate created nothing").await;
            }
            (Ok(false), Ok(())) => {
                assert_loads(&*store, &moved, "rotate won: the record lives on").await;
            }
            _ => panic!(
                "delete and rotate of one key: either delete is true and rotate NotFound, or \
                 rotate succeeds and delete is false; got delete {d:?}, rotate {m:?}"
            ),
        }
        store.delete_user("alice", None).await.expect("clean up");
    }
}

/// `touch` racing a single writer's updates never undoes one of them.
pub async fn concurrent_touches_never_undo_an_update(store: Arc<dyn SessionStore>) {
    const UPDATES: u64 = 100;
    let r = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    let done = Arc::new(AtomicBool::new(false));
    let mut touchers = Vec::new();
    for t in 0..2u64 {
        let store = Arc::clone(&store);
        let done = Arc::clone(&done);
        let key = r.key;
        touchers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !done.load(Ordering::SeqCst) {
                i += 1;
                let at = in_from_now(LIVE_FOR + Duration::from_millis(2 * i + t));
                let res = store.touch(&key, at).await;
                assert!(res.is_ok(), "touch of a live record; got {res:?}");
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut current = r;
    for i in 0..UPDATES {
        let next = next_version(&current, format!("update {i}").as_bytes());
        let res = store.update(&next, current.version).await;
        assert!(
            res.is_ok(),
            "touch: changes nothing but expires_at (no version bump, no data rewrite), so \
             the only writer's update {} -> {} must succeed; got {res:?}",
            current.version,
            next.version
        );
        current = next;
        tokio::task::yield_now().await;
    }
    done.store(true, Ordering::SeqCst);
    for h in touchers {
        h.await.expect("touching task panicked");
    }
    let last = store.load(&current.key).await.expect("load").expect("live");
    assert_eq!(last.version, 1 + UPDATES, "no touch changed the version");
    assert_eq!(last.data, current.data, "no touch rewrote the data");
    assert_eq!(last.id, current.id);
    assert_eq!(last.user, current.user);
    assert_eq!(last.created_at, current.created_at);
}
