//! `list_user` and `delete_user`: the per-user index.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use session_core::{Error, Record, SessionKey, SessionStore, Timestamp};

use super::fixtures::{
    assert_absent, assert_listed, assert_loads, expired_record, fresh_key, in_from_now, listed,
    new_record, next_version, rotated, sorted_keys,
};

/// `list_user` of a user nobody logged in as is empty.
pub async fn list_user_of_an_unknown_user_is_empty(store: Arc<dyn SessionStore>) {
    store
        .create(&new_record(Some("alice")))
        .await
        .expect("create");
    store.create(&new_record(None)).await.expect("create");
    assert_listed(&*store, "nobody", &[], "list_user of an unknown user").await;
    assert_listed(&*store, "alic", &[], "list_user of a prefix of a user").await;
}

/// `list_user` returns exactly the live records: no expired, deleted or moved-away ones.
pub async fn list_user_returns_exactly_the_users_live_records(store: Arc<dyn SessionStore>) {
    let live: Vec<Record> = (0..3).map(|_| new_record(Some("alice"))).collect();
    for r in &live {
        store.create(r).await.expect("create");
    }
    let expired = expired_record(Some("alice"));
    store.create(&expired).await.expect("create expired");
    let deleted = new_record(Some("alice"));
    store.create(&deleted).await.expect("create");
    assert!(store.delete(&deleted.key).await.expect("delete"));
    let moved = new_record(Some("alice"));
    store.create(&moved).await.expect("create");
    let mut moved_v2 = next_version(&moved, b"bob's now");
    moved_v2.user = Some("bob".into());
    store.update(&moved_v2, 1).await.expect("update to bob");
    let to_rotate = new_record(Some("alice"));
    store.create(&to_rotate).await.expect("create");
    let rotated_v2 = rotated(&to_rotate, b"rotated");
    store
        .rotate(&to_rotate.key, &rotated_v2, 1)
        .await
        .expect("rotate");
    store
        .create(&new_record(Some("bob")))
        .await
        .expect("create bob's");
    store
        .create(&new_record(None))
        .await
        .expect("create anonymous");

    let mut want = live.clone();
    want.push(rotated_v2.clone());
    assert_listed(
        &*store,
        "alice",
        &want,
        "list_user: every live record of the user, never expired, deleted or moved-away ones",
    )
    .await;
    let bobs = listed(&*store, "bob", "list_user(bob)").await;
    assert_eq!(
        bobs.len(),
        2,
        "bob has the moved record and his own: {bobs:?}"
    );
    assert!(
        bobs.iter().any(|r| r.key == moved_v2.key && r.version == 2),
        "the record moved to bob is listed under bob"
    );
}

/// User names match bytewise: no case folding, trimming or Unicode normalisation.
pub async fn list_user_matches_user_names_bytewise(store: Arc<dyn SessionStore>) {
    let names = [
        "alice",
        "Alice",
        "ALICE",
        "alice ",
        " alice",
        "alice\t",
        "al ice",
        "alic\u{e9}",
        "alice\u{301}",
        "alic",
        "alicee",
    ];
    let records: Vec<Record> = names.iter().map(|n| new_record(Some(n))).collect();
    for r in &records {
        store.create(r).await.expect("create");
    }
    for (name, r) in names.iter().zip(&records) {
        assert_listed(
            &*store,
            name,
            std::slice::from_ref(r),
            "list_user: user equals exactly (bytewise, no case folding or trimming)",
        )
        .await;
    }
    let n = store.delete_user("alice", None).await.expect("delete_user");
    assert_eq!(
        n, 1,
        "delete_user(\"alice\") must delete only \"alice\"'s record"
    );
    for r in &records[1..] {
        assert_loads(&*store, r, "delete_user(\"alice\") spares similar names").await;
    }
}

/// Unicode, quotes, `\`, `%`, `:`, `{}`, newline, "" and 1,000-char user names work.
pub async fn user_names_with_special_characters_round_trip_and_list_exactly(
    store: Arc<dyn SessionStore>,
) {
    let long: String = (0..1000u32)
        .map(|i| char::from(b'a' + u8::try_from(i % 26).unwrap_or(0)))
        .collect();
    assert_eq!(long.chars().count(), 1000);
    let names: Vec<String> = [
        "Zoë Ørsted 李小龍 🦀",
        "with space",
        "  ",
        "o'brien",
        "say \"hi\"",
        "`backtick`",
        "back\\slash",
        "\\",
        "100%",
        "under_score",
        "ns:user:1",
        ":",
        "{alice}",
        "{}",
        "}{",
        "a{b}c",
        "line\nbreak",
        "\r\n",
        "tab\there",
        "semi;colon -- comment",
        "' OR '1'='1",
        "$1",
        "user@example.com",
        "\u{200b}",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain(std::iter::once(long))
    .collect();
    let records: Vec<Record> = names.iter().map(|n| new_record(Some(n))).collect();
    for r in &records {
        store
            .create(r)
            .await
            .unwrap_or_else(|e| panic!("create for user {:?}: {e:?}", r.user));
    }
    for r in &records {
        assert_loads(&*store, r, "the user name round-trips exactly").await;
    }
    for (name, r) in names.iter().zip(&records) {
        assert_listed(
            &*store,
            name,
            std::slice::from_ref(r),
            "list_user: exactly the records whose user equals this name",
        )
        .await;
    }
    for (i, name) in names.iter().enumerate() {
        let n = store.delete_user(name, None).await.expect("delete_user");
        assert_eq!(
            n, 1,
            "delete_user({name:?}) must delete exactly its own record"
        );
        assert_absent(&*store, &records[i].key, "deleted by delete_user").await;
        for r in &records[i + 1..] {
            assert_loads(
                &*store,
                r,
                "delete_user of one special name spares every other user",
            )
            .await;
        }
    }
}

/// Glob, `LIKE` and regex characters in user names match only themselves.
pub async fn pattern_characters_in_user_names_match_literally(store: Arc<dyn SessionStore>) {
    let names = [
        "a", "ab", "abc", "a%", "a_", "a*", "a?", "a[b]", "[ab]", "a\\", "%", "_", "*", "?", "[",
        "a.*", ".*", "^a$", "a|b", "a[!b]",
    ];
    let records: Vec<Record> = names.iter().map(|n| new_record(Some(n))).collect();
    for r in &records {
        store.create(r).await.expect("create");
    }
    for (name, r) in names.iter().zip(&records) {
        assert_listed(
            &*store,
            name,
            std::slice::from_ref(r),
            "list_user: a pattern character in the name matches only itself",
        )
        .await;
    }
    for pattern in ["a%", "a*", "%", "*", "a?", "_", "[ab]", ".*"] {
        let n = store.delete_user(pattern, None).await.expect("delete_user");
        assert_eq!(
            n, 1,
            "delete_user({pattern:?}) must delete only the user named exactly so"
        );
    }
    for name in [
        "a", "ab", "abc", "a_", "a[b]", "a\\", "?", "[", "a.*", "^a$", "a|b",
    ] {
        let i = names.iter().position(|n| *n == name).unwrap_or(0);
        assert_loads(
            &*store,
            &records[i],
            "delete_user with a pattern-like name spares other users",
        )
        .await;
    }
}

/// The user-name rule, on `create`, `update` and `rotate` alike: a name
/// that breaks it is `InvalidInput` and nothing changes.
async fn assert_user_name_refused(store: &dyn SessionStore, name: &str, why: &str) {
    let bad = new_record(Some(name));
    let res = store.create(&bad).await;
    assert!(
        matches!(res, Err(Error::InvalidInput(_))),
        "create with a user name that {why}: InvalidInput; got {res:?}"
    );
    assert_absent(store, &bad.key, "a refused create stores nothing").await;

    let good = new_record(Some("alice"));
    store.create(&good).await.expect("create");
    let mut renamed = next_version(&good, b"renamed");
    renamed.user = Some(name.to_owned());
    let res = store.update(&renamed, 1).await;
    assert!(
        matches!(res, Err(Error::InvalidInput(_))),
        "update to a user name that {why}: InvalidInput; got {res:?}"
    );
    let mut moved = rotated(&good, b"moved");
    moved.user = Some(name.to_owned());
    let res = store.rotate(&good.key, &moved, 1).await;
    assert!(
        matches!(res, Err(Error::InvalidInput(_))),
        "rotate to a user name that {why}: InvalidInput; got {res:?}"
    );
    assert_absent(store, &moved.key, "a refused rotate creates no new key").await;
    assert_loads(store, &good, "refused writes change nothing").await;
    assert!(store.delete(&good.key).await.expect("clean up"));
}

/// An empty user name is `InvalidInput` on every write; `None` is "nobody".
pub async fn empty_user_name_is_invalid_input_and_changes_nothing(store: Arc<dyn SessionStore>) {
    assert_user_name_refused(&*store, "", "is empty").await;
    let none = new_record(None);
    store.create(&none).await.expect("create without user");
    assert_loads(&*store, &none, "None round-trips").await;
    assert_listed(&*store, "", &[], "no record is listed for \"\"").await;
}

/// A user name with a NUL character is `InvalidInput` on every write, on
/// every backend (PostgreSQL text cannot hold one).
pub async fn user_name_with_nul_is_invalid_input_and_changes_nothing(store: Arc<dyn SessionStore>) {
    for name in ["a\0b", "\0", "alice\0"] {
        assert_user_name_refused(&*store, name, "contains NUL").await;
        // Reads and revocations by such a name find nothing, on every
        // backend alike (no error: no session can carry the name).
        assert_listed(&*store, name, &[], "list_user of a name no record can hold").await;
        let n = store.delete_user(name, None).await;
        assert!(
            matches!(n, Ok(0)),
            "delete_user of a name no record can hold: 0; got {n:?}"
        );
        let res = store
            .delete_id(name, session_core::SessionId::generate())
            .await;
        assert!(
            matches!(res, Ok(false)),
            "delete_id with a name no record can hold: false; got {res:?}"
        );
    }
    assert_listed(&*store, "a", &[], "nothing stored under a prefix").await;
}

/// 1,024 bytes of mixed text is the longest user name, and it round-trips;
/// one byte more is `InvalidInput`.
pub async fn user_name_of_1024_bytes_round_trips_and_longer_is_invalid_input(
    store: Arc<dyn SessionStore>,
) {
    // Mixed widths: 1-, 2-, 3- and 4-byte characters, 1,024 bytes in all.
    let mut name = String::new();
    for c in ['a', 'é', '李', '🦀'].iter().cycle() {
        if name.len() + c.len_utf8() > session_core::MAX_USER_LEN {
            break;
        }
        name.push(*c);
    }
    while name.len() < session_core::MAX_USER_LEN {
        name.push('z');
    }
    assert_eq!(name.len(), 1024);
    let r = new_record(Some(&name));
    store
        .create(&r)
        .await
        .expect("create with a 1 KiB user name");
    assert_loads(&*store, &r, "a 1 KiB user name round-trips exactly").await;
    assert_listed(
        &*store,
        &name,
        std::slice::from_ref(&r),
        "list_user finds the 1 KiB user",
    )
    .await;
    let longer = format!("{name}z");
    assert_user_name_refused(&*store, &longer, "is 1,025 bytes long").await;
    assert_eq!(
        store.delete_user(&name, None).await.expect("delete_user"),
        1
    );
}

/// User names are compared byte for byte: the same word in Unicode
/// normalisation forms NFC and NFD is two users.
pub async fn user_names_in_nfc_and_nfd_are_distinct_users(store: Arc<dyn SessionStore>) {
    let nfc = "Zo\u{eb} \u{c5}ngstr\u{f6}m"; // precomposed
    let nfd = "Zoe\u{308} A\u{30a}ngstro\u{308}m"; // decomposed
    assert_ne!(nfc.as_bytes(), nfd.as_bytes());
    let a = new_record(Some(nfc));
    let b = new_record(Some(nfd));
    store.create(&a).await.expect("create NFC");
    store.create(&b).await.expect("create NFD");
    assert_loads(&*store, &a, "the NFC name round-trips byte for byte").await;
    assert_loads(&*store, &b, "the NFD name round-trips byte for byte").await;
    assert_listed(
        &*store,
        nfc,
        std::slice::from_ref(&a),
        "list_user(NFC) lists only the NFC record: no normalisation",
    )
    .await;
    assert_listed(
        &*store,
        nfd,
        std::slice::from_ref(&b),
        "list_user(NFD) lists only the NFD record",
    )
    .await;
    assert_eq!(store.delete_user(nfc, None).await.expect("delete_user"), 1);
    assert_loads(&*store, &b, "delete_user(NFC) spares the NFD user").await;
}

/// `delete_user` deletes every live record of the user and returns how many.
pub async fn delete_user_deletes_every_live_session_and_returns_the_count(
    store: Arc<dyn SessionStore>,
) {
    let mine: Vec<Record> = (0..5).map(|_| new_record(Some("alice"))).collect();
    for r in &mine {
        store.create(r).await.expect("create");
    }
    let n = store.delete_user("alice", None).await;
    assert!(
        matches!(n, Ok(5)),
        "delete_user: deletes every live record and returns how many (5); got {n:?}"
    );
    for r in &mine {
        assert_absent(&*store, &r.key, "delete_user deleted this record").await;
    }
    assert_listed(&*store, "alice", &[], "nothing left after delete_user").await;
    let again = store.delete_user("alice", None).await;
    assert!(
        matches!(again, Ok(0)),
        "a second delete_user finds nothing live; got {again:?}"
    );
}

/// `delete_user` with `keep` deletes all other sessions and leaves the kept one as is.
pub async fn delete_user_with_keep_spares_only_that_session(store: Arc<dyn SessionStore>) {
    let mine: Vec<Record> = (0..4).map(|_| new_record(Some("alice"))).collect();
    for r in &mine {
        store.create(r).await.expect("create");
    }
    let keep = &mine[2];
    let n = store.delete_user("alice", Some(&keep.key)).await;
    assert!(
        matches!(n, Ok(3)),
        "delete_user: deletes every live record except the one under keep, returns 3; got {n:?}"
    );
    assert_loads(&*store, keep, "delete_user: the kept session is unchanged").await;
    assert_listed(
        &*store,
        "alice",
        std::slice::from_ref(keep),
        "only the kept session is listed",
    )
    .await;
    let again = store.delete_user("alice", Some(&keep.key)).await;
    assert!(
        matches!(again, Ok(0)),
        "delete_user again with the same keep deletes nothing; got {again:?}"
    );
    assert_loads(&*store, keep, "the kept session survives twice").await;
}

/// `delete_user` whose `keep` is someone else's (or nobody's) deletes all the user's.
pub async fn delete_user_with_keep_of_another_user_deletes_all(store: Arc<dyn SessionStore>) {
    let mine: Vec<Record> = (0..3).map(|_| new_record(Some("alice"))).collect();
    for r in &mine {
        store.create(r).await.expect("create");
    }
    let bobs = new_record(Some("bob"));
    store.create(&bobs).await.expect("create bob's");
    let n = store.delete_user("alice", Some(&bobs.key)).await;
    assert!(
        matches!(n, Ok(3)),
        "delete_user: keep names bob's session, so all 3 of alice's go; got {n:?}"
    );
    assert_listed(&*store, "alice", &[], "alice has nothing left").await;
    assert_loads(
        &*store,
        &bobs,
        "delete_user(alice) never deletes bob's session",
    )
    .await;

    let more: Vec<Record> = (0..2).map(|_| new_record(Some("alice"))).collect();
    for r in &more {
        store.create(r).await.expect("create");
    }
    let n = store.delete_user("alice", Some(&fresh_key())).await;
    assert!(
        matches!(n, Ok(2)),
        "delete_user with a keep key nobody holds deletes all; got {n:?}"
    );
}

/// `delete_user` counts only live records: expired ones are not counted.
pub async fn delete_user_counts_only_live_records(store: Arc<dyn SessionStore>) {
    let live: Vec<Record> = (0..3).map(|_| new_record(Some("alice"))).collect();
    for r in &live {
        store.create(r).await.expect("create");
    }
    let expired: Vec<Record> = (0..4).map(|_| expired_record(Some("alice"))).collect();
    for r in &expired {
        store.create(r).await.expect("create expired");
    }
    let live_then = new_record(Some("alice"));
    store.create(&live_then).await.expect("create");
    let mut ended = next_version(&live_then, b"ended");
    ended.expires_at = Timestamp::now().saturating_sub(Duration::from_secs(3600));
    store
        .update(&ended, 1)
        .await
        .expect("update to a past deadline");
    let n = store.delete_user("alice", None).await;
    assert!(
        matches!(n, Ok(3)),
        "delete_user: returns how many *live* records it deleted (3 live, 5 expired); got {n:?}"
    );
    for r in live.iter().chain(&expired).chain([&ended]) {
        assert_absent(&*store, &r.key, "nothing of alice's is live").await;
    }
}

/// `delete_user` of a user with no sessions deletes nothing and returns 0.
pub async fn delete_user_of_an_unknown_user_returns_zero(store: Arc<dyn SessionStore>) {
    let bobs = new_record(Some("bob"));
    store.create(&bobs).await.expect("create");
    let n = store.delete_user("nobody", None).await;
    assert!(
        matches!(n, Ok(0)),
        "delete_user of an unknown user; got {n:?}"
    );
    let n = store.delete_user("nobody", Some(&bobs.key)).await;
    assert!(
        matches!(n, Ok(0)),
        "delete_user of an unknown user with keep; got {n:?}"
    );
    assert_loads(&*store, &bobs, "bob's session is untouched").await;
}

/// After `delete_user`, `update`, `touch` and `rotate` are `NotFound` and nothing revives.
pub async fn revoked_session_is_not_brought_back_by_update_touch_or_rotate(
    store: Arc<dyn SessionStore>,
) {
    let r = new_record(Some("alice"));
    let kept = new_record(Some("alice"));
    store.create(&r).await.expect("create");
    store.create(&kept).await.expect("create");
    let n = store
        .delete_user("alice", Some(&kept.key))
        .await
        .expect("delete_user");
    assert_eq!(n, 1, "delete_user with keep deletes the other session");

    let res = store.update(&next_version(&r, b"late"), 1).await;
    assert!(
        matches!(res, Err(Error::NotFound)),
        "delete_user: a revoked session is never brought back by a late update; got {res:?}"
    );
    let res = store
        .touch(&r.key, in_from_now(Duration::from_secs(3600)))
        .await;
    assert!(
        matches!(res, Err(Error::NotFound)),
        "delete_user: a revoked session is never brought back by a late touch; got {res:?}"
    );
    let moved = rotated(&r, b"late");
    let res = store.rotate(&r.key, &moved, 1).await;
    assert!(
        matches!(res, Err(Error::NotFound)),
        "delete_user: a revoked session is never brought back by a late rotate; got {res:?}"
    );
    assert_absent(&*store, &r.key, "the revoked session stays gone").await;
    assert_absent(&*store, &moved.key, "the late rotate created nothing").await;
    assert_listed(
        &*store,
        "alice",
        std::slice::from_ref(&kept),
        "only the kept session is listed",
    )
    .await;
}

/// 10,000 sessions of one user: all listed with distinct keys, all removed by `delete_user`.
pub async fn ten_thousand_sessions_for_one_user_list_and_delete_user(store: Arc<dyn SessionStore>) {
    const TOTAL: usize = 10_000;
    const TASKS: usize = 32;
    let user = "many";
    let mut handles = Vec::with_capacity(TASKS);
    for t in 0..TASKS {
        let store = Arc::clone(&store);
        handles.push(tokio::spawn(async move {
            let mut keys = Vec::new();
            for _ in (t..TOTAL).step_by(TASKS) {
                let r = new_record(Some(user));
                store
                    .create(&r)
                    .await
                    .unwrap_or_else(|e| panic!("create one of 10,000: {e:?}"));
                keys.push(r.key);
            }
            keys
        }));
    }
    let mut created: Vec<SessionKey> = Vec::with_capacity(TOTAL);
    for h in handles {
        created.extend(h.await.expect("creating task panicked"));
    }
    created.sort();
    assert_eq!(created.len(), TOTAL);

    let list = store.list_user(user).await.expect("list_user");
    assert_eq!(
        list.len(),
        TOTAL,
        "list_user: returns every live record of the user (10,000)"
    );
    let distinct: BTreeSet<SessionKey> = list.iter().map(|r| r.key).collect();
    assert_eq!(distinct.len(), TOTAL, "list_user returned duplicate keys");
    assert_eq!(
        sorted_keys(&list),
        created,
        "list_user returned other keys than the 10,000 created"
    );
    let n = store.delete_user(user, None).await;
    assert!(
        matches!(n, Ok(10_000)),
        "delete_user: returns how many live records it deleted (10,000); got {n:?}"
    );
    assert_listed(&*store, user, &[], "list_user after delete_user").await;
    for key in created.iter().step_by(499) {
        assert_absent(&*store, key, "a session deleted by delete_user").await;
    }
}
