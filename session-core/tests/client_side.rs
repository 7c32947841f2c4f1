//! Client-side sessions (issue 22): the same `Session` API with the session
//! sealed in the cookie, timeouts read from inside the seal, size limits and
//! chunks, key rotation, tampering, the documented concurrency, and the
//! optional revocation list (its cost: at most one store read per request).

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{default_config, fixture, MIN};
use proptest::prelude::*;
use session_core::{
    ClientSide, Clock as _, Error, KeyRing, ManualClock, SealedCookie, Session, SessionConfig,
    SessionManager, SessionStore as _, Timestamp, TokenAction,
};

const NAME: &str = "__Host-session";

fn ring(ids: &[u32]) -> KeyRing {
    let mut ring = KeyRing::new(ids[0], [ids[0] as u8; 32]);
    for &id in &ids[1..] {
        ring = ring.with_key(id, [id as u8; 32]).unwrap();
    }
    ring
}

struct Client {
    manager: SessionManager,
    clock: ManualClock,
}

fn client_with(config: SessionConfig, side: ClientSide) -> Client {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let manager = SessionManager::client_side_with_clock(
        config.sealing_keys(ring(&[1])),
        side,
        Arc::new(clock.clone()),
    )
    .expect("valid client-side config");
    Client { manager, clock }
}

fn client() -> Client {
    client_with(default_config(), ClientSide::new())
}

/// The cookies a commit sets; panics on any other action.
async fn commit(s: &Session) -> Vec<SealedCookie> {
    match s.commit().await.expect("commit") {
        TokenAction::IssueCookies { cookies, .. } => cookies,
        other => panic!("expected cookies, got {other:?}"),
    }
}

/// One cookie's value.
async fn commit_one(s: &Session) -> String {
    let cookies = commit(s).await;
    assert_eq!(cookies.len(), 1);
    cookies[0].value().to_owned()
}

async fn load(c: &Client, cookie: &str) -> Session {
    c.manager
        .load_cookie(NAME, Some(cookie))
        .await
        .expect("load")
}

#[tokio::test]
async fn the_session_api_works_the_same_with_the_data_in_the_cookie() {
    let c = client();
    let s = c.manager.load_cookie(NAME, None).await.unwrap();
    assert!(s.is_new());
    assert_eq!(
        s.commit().await.unwrap(),
        TokenAction::Unchanged,
        "nothing to store"
    );
    s.insert("theme", &"dark").unwrap();
    s.insert("gone", &1).unwrap();
    assert!(s.remove("gone"));
    assert_eq!(
        s.modify("n", |n: Option<u32>| n.unwrap_or(0) + 1)
            .await
            .unwrap(),
        1
    );
    s.set_meta("user_agent", "Firefox on Linux");
    let cookie = commit_one(&s).await;
    assert_eq!(s.token(), None, "client-side sessions have no token");
    let id = s.id().expect("an id once issued");

    let s = load(&c, &cookie).await;
    assert!(!s.is_new());
    assert_eq!(s.id(), Some(id));
    assert_eq!(s.get::<String>("theme").unwrap().as_deref(), Some("dark"));
    assert_eq!(s.get::<u32>("gone").unwrap(), None);
    assert_eq!(s.get::<u32>("n").unwrap(), Some(1));
    assert_eq!(s.meta("user_agent").as_deref(), Some("Firefox on Linux"));
    let info = s.info().expect("info of the current session");
    assert_eq!(info.id, id);
    assert_eq!(
        info.meta.get("user_agent").map(String::as_str),
        Some("Firefox on Linux")
    );

    // Login keeps the data and the id, and changes the credential.
    s.login("alice").unwrap();
    s.set_remember(true);
    let (cookies, max_age) = match s.commit().await.unwrap() {
        TokenAction::IssueCookies { cookies, max_age } => (cookies, max_age),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        max_age,
        Some(60 * MIN),
        "remembered: Max-Age is the absolute timeout"
    );
    let s = load(&c, cookies[0].value()).await;
    assert_eq!(s.user().as_deref(), Some("alice"));
    assert_eq!(s.id(), Some(id));
    assert_eq!(s.get::<String>("theme").unwrap().as_deref(), Some("dark"));
    assert!(s.remember());

    // A later write keeps the cookie persistent, with the time left.
    c.clock.advance(5 * MIN);
    s.insert("x", &1).unwrap();
    match s.commit().await.unwrap() {
        TokenAction::IssueCookies { max_age, .. } => assert_eq!(max_age, Some(55 * MIN)),
        other => panic!("{other:?}"),
    }

    // Login as another user starts afresh.
    s.login("bob").unwrap();
    let s = load(&c, &commit_one(&s).await).await;
    assert_eq!(s.user().as_deref(), Some("bob"));
    assert_ne!(s.id(), Some(id));
    assert_eq!(s.get::<String>("theme").unwrap(), None);

    s.logout();
    assert_eq!(s.commit().await.unwrap(), TokenAction::Clear);
}

#[tokio::test]
async fn calls_that_need_server_state_are_unsupported_errors_not_silent() {
    let c = client();
    let s = c.manager.load(None).await.unwrap();
    s.login("alice").unwrap();
    commit_one(&s).await;
    let unsupported = |r: Result<(), Error>, what: &str| match r {
        Err(e @ Error::Unsupported { .. }) => {
            assert!(e.to_string().contains("not supported"), "{what}: {e}");
        }
        other => panic!("{what}: expected Unsupported, got {other:?}"),
    };
    unsupported(c.manager.list_user("alice").await.map(drop), "list_user");
    unsupported(
        c.manager.revoke("alice", s.id().unwrap()).await.map(drop),
        "revoke",
    );
    unsupported(
        c.manager.revoke_user("alice", None).await.map(drop),
        "revoke_user without a revocation list",
    );
    unsupported(c.manager.destroy("x").await.map(drop), "destroy");
    unsupported(
        c.manager.store().list_user("alice").await.map(drop),
        "the placeholder store",
    );
}

#[test]
fn a_client_side_manager_needs_keys_and_refuses_a_per_user_cap() {
    let err = SessionManager::client_side(SessionConfig::default(), ClientSide::new()).unwrap_err();
    assert!(err.to_string().contains("sealing keys"), "{err}");
    let err = SessionManager::client_side(
        SessionConfig::default()
            .sealing_keys(ring(&[1]))
            .max_sessions_per_user(3),
        ClientSide::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("max_sessions_per_user"), "{err}");
    for bad in [
        ClientSide::new().chunks(0),
        ClientSide::new().chunks(17),
        ClientSide::new().cookie_limit(100),
        ClientSide::new().cookie_limit(5000),
    ] {
        let err =
            SessionManager::client_side(SessionConfig::default().sealing_keys(ring(&[1])), bad)
                .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    }
}

#[tokio::test]
async fn idle_and_absolute_timeouts_come_from_inside_the_seal() {
    // Idle 10 min, absolute 60 min, touch after half the idle window.
    let c = client();
    let s = c.manager.load(None).await.unwrap();
    s.insert("n", &1).unwrap();
    let cookie = commit_one(&s).await;

    // Idle: the same cookie, presented after the idle window, is dead,
    // whatever Max-Age a client might have given it.
    c.clock.advance(10 * MIN);
    assert!(load(&c, &cookie).await.is_new(), "idle timeout");

    // Kept alive by requests, it still ends at the absolute deadline.
    let c = client();
    let s = c.manager.load(None).await.unwrap();
    s.insert("n", &1).unwrap();
    let mut cookie = commit_one(&s).await;
    for _ in 0..20 {
        c.clock.advance(5 * MIN + Duration::from_millis(1));
        let s = load(&c, &cookie).await;
        if s.is_new() {
            break;
        }
        if let TokenAction::IssueCookies { cookies, .. } = s.commit().await.unwrap() {
            cookie = cookies[0].value().to_owned();
        }
    }
    let started = Timestamp::from_millis(1_800_000_000_000);
    let now = c.clock.now();
    let lived = now.since(started);
    assert!(
        lived >= 60 * MIN && lived < 66 * MIN,
        "kept alive every 5 minutes, it ends at the absolute deadline (ended after {lived:?})"
    );
}

#[tokio::test]
async fn the_cookie_is_reissued_for_an_idle_extension_only_after_the_touch_fraction() {
    let c = client();
    let s = c.manager.load(None).await.unwrap();
    s.insert("n", &1).unwrap();
    let cookie = commit_one(&s).await;

    // Under half the idle window: reading costs no new cookie.
    c.clock.advance(4 * MIN);
    let s = load(&c, &cookie).await;
    assert_eq!(s.commit().await.unwrap(), TokenAction::Unchanged);

    // Past half: a new cookie with a later idle deadline.
    c.clock.advance(2 * MIN);
    let s = load(&c, &cookie).await;
    let before = s.expires_at().unwrap();
    let extended = commit_one(&s).await;
    let s = load(&c, &extended).await;
    assert!(s.expires_at().unwrap() > before);
    assert_eq!(
        s.get::<u32>("n").unwrap(),
        Some(1),
        "the data is carried over"
    );
    // The old cookie would have ended at its own deadline.
    c.clock.advance(5 * MIN);
    assert!(load(&c, &cookie).await.is_new());
    assert!(!load(&c, &extended).await.is_new());
}

#[tokio::test]
async fn a_session_too_large_for_its_cookie_is_an_error_and_the_old_cookie_still_works() {
    let c = client();
    let s = c.manager.load(None).await.unwrap();
    s.insert("small", &"x").unwrap();
    let cookie = commit_one(&s).await;
    let s = load(&c, &cookie).await;
    s.insert("big", &"y".repeat(5000)).unwrap();
    match s.commit().await {
        Err(Error::TooLarge { size, limit }) => {
            assert!(size > 5000 && limit < size, "{size} {limit}");
            assert!(limit <= 4096, "one cookie: {limit}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let again = load(&c, &cookie).await;
    assert_eq!(again.get::<String>("small").unwrap().as_deref(), Some("x"));
    assert_eq!(again.get::<String>("big").unwrap(), None);
}

#[tokio::test]
async fn a_logout_whose_next_cookie_is_too_large_revokes_nothing_until_it_lands() {
    let store = Arc::new(session_core::MemoryStore::new());
    let c = client_with(default_config(), ClientSide::new().revocation_list(store));
    let s = c.manager.load(None).await.unwrap();
    s.login("alice").unwrap();
    let cookie = commit_one(&s).await;
    let s = load(&c, &cookie).await;
    s.login("bob").unwrap(); // ends alice's session…
    s.insert("big", &"y".repeat(5000)).unwrap(); // …but bob's does not fit
    assert!(matches!(s.commit().await, Err(Error::TooLarge { .. })));
    assert_eq!(
        load(&c, &cookie).await.user().as_deref(),
        Some("alice"),
        "nothing was written: the old cookie is not revoked"
    );
    s.remove("big");
    let bob = commit_one(&s).await;
    assert_eq!(load(&c, &bob).await.user().as_deref(), Some("bob"));
    assert!(
        load(&c, &cookie).await.is_new(),
        "now alice's cookie is revoked"
    );
}

#[tokio::test]
async fn with_chunks_a_ten_kib_session_round_trips_and_each_cookie_fits() {
    let c = client_with(default_config(), ClientSide::new().chunks(4));
    let s = c.manager.load(None).await.unwrap();
    let text: String = (0..10 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    s.insert("note", &text).unwrap();
    let cookies = commit(&s).await;
    assert_eq!(
        cookies.len(),
        4,
        "10 KiB of data and its seal take 4 cookies"
    );
    for (i, cookie) in cookies.iter().enumerate() {
        assert_eq!(cookie.name(), ClientSide::chunk_name(NAME, i));
        assert!(cookie.name().len() + cookie.value().len() <= 4096);
    }
    let joined = c
        .manager
        .client()
        .unwrap()
        .join(cookies[0].value(), |i| {
            cookies.get(i).map(SealedCookie::value)
        })
        .unwrap();
    let s = load(&c, &joined).await;
    assert_eq!(s.get::<String>("note").unwrap(), Some(text));
    s.insert("note", &"short").unwrap();
    assert_eq!(
        commit(&s).await.len(),
        1,
        "a smaller session is one cookie again"
    );
}

#[tokio::test]
async fn rotating_keys_logs_nobody_out_and_a_retired_key_is_a_fresh_session() {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let manager = |ids: &[u32]| {
        SessionManager::client_side_with_clock(
            default_config().sealing_keys(ring(ids)),
            ClientSide::new(),
            Arc::new(clock.clone()),
        )
        .unwrap()
    };
    let old = manager(&[1]);
    let s = old.load(None).await.unwrap();
    s.login("alice").unwrap();
    let under_1 = match s.commit().await.unwrap() {
        TokenAction::IssueCookies { cookies, .. } => cookies[0].value().to_owned(),
        other => panic!("{other:?}"),
    };

    // Key 2 added: the old cookie opens, new cookies are sealed under 2.
    let both = manager(&[1, 2]);
    let s = both.load(Some(&under_1)).await.unwrap();
    assert_eq!(s.user().as_deref(), Some("alice"));
    s.insert("n", &1).unwrap();
    let under_2 = match s.commit().await.unwrap() {
        TokenAction::IssueCookies { cookies, .. } => cookies[0].value().to_owned(),
        other => panic!("{other:?}"),
    };
    assert!(
        old.load(Some(&under_2)).await.unwrap().is_new(),
        "sealed under key 2, which the old ring lacks"
    );

    // Key 1 retired: its cookies are fresh sessions, not errors.
    let new = manager(&[2]);
    assert!(new.load(Some(&under_1)).await.unwrap().is_new());
    assert_eq!(
        new.load(Some(&under_2)).await.unwrap().user().as_deref(),
        Some("alice")
    );
}

#[tokio::test]
async fn a_cookie_moved_to_another_cookie_name_is_a_fresh_session() {
    let c = client();
    let s = c.manager.load_cookie("__Host-a", None).await.unwrap();
    s.login("alice").unwrap();
    let cookies = commit(&s).await;
    assert_eq!(cookies[0].name(), "__Host-a");
    let value = cookies[0].value();
    assert!(!c
        .manager
        .load_cookie("__Host-a", Some(value))
        .await
        .unwrap()
        .is_new());
    assert!(c
        .manager
        .load_cookie("__Host-b", Some(value))
        .await
        .unwrap()
        .is_new());
}

/// The documented behaviour of the mode: two concurrent requests of one
/// client each carry the whole session, so the response that lands last
/// wins and the other's change is lost (server-side sessions keep both).
#[tokio::test]
async fn concurrent_requests_of_one_client_last_response_wins_as_documented() {
    let c = client();
    let s = c.manager.load(None).await.unwrap();
    s.insert("count", &0).unwrap();
    let cookie = commit_one(&s).await;
    let first = load(&c, &cookie).await;
    let second = load(&c, &cookie).await;
    first
        .modify("count", |n: Option<u32>| n.unwrap_or(0) + 1)
        .await
        .unwrap();
    second.insert("theme", &"dark").unwrap();
    let from_first = commit_one(&first).await;
    let from_second = commit_one(&second).await;
    // The browser keeps the cookie of the response it got last.
    let kept = load(&c, &from_second).await;
    assert_eq!(
        kept.get::<String>("theme").unwrap().as_deref(),
        Some("dark")
    );
    assert_eq!(
        kept.get::<u32>("count").unwrap(),
        Some(0),
        "the first request's increment is lost: last response wins"
    );
    assert_eq!(
        load(&c, &from_first).await.get::<u32>("count").unwrap(),
        Some(1)
    );
}

#[tokio::test]
async fn without_a_revocation_list_a_copied_cookie_outlives_logout_until_its_deadline() {
    let c = client();
    let s = c.manager.load(None).await.unwrap();
    s.login("alice").unwrap();
    let cookie = commit_one(&s).await;
    let s = load(&c, &cookie).await;
    s.logout();
    assert_eq!(s.commit().await.unwrap(), TokenAction::Clear);
    assert_eq!(
        load(&c, &cookie).await.user().as_deref(),
        Some("alice"),
        "documented: logout only tells this browser to forget its cookie"
    );
    c.clock.advance(10 * MIN);
    assert!(load(&c, &cookie).await.is_new(), "until its idle deadline");
}

#[tokio::test]
async fn with_a_revocation_list_each_request_costs_at_most_one_store_read() {
    let f = fixture(default_config());
    let c = client_with(
        default_config(),
        ClientSide::new().revocation_list(f.store.clone()),
    );
    let reads = || f.store.loads.load(Ordering::SeqCst);

    let s = c.manager.load(None).await.unwrap();
    assert_eq!(reads(), 0, "no cookie, no read");
    s.insert("n", &1).unwrap();
    let anonymous = commit_one(&s).await;
    assert_eq!(f.store.writes(), 0, "creating a session writes nothing");
    let before = reads();
    let s = load(&c, &anonymous).await;
    assert_eq!(reads() - before, 1, "an anonymous cookie: one read");
    s.login("alice").unwrap();
    let alice = commit_one(&s).await;
    let before = reads();
    let s = load(&c, &alice).await;
    assert_eq!(reads() - before, 1, "a logged-in cookie: one read");
    s.insert("n", &2).unwrap();
    let writes = f.store.writes();
    commit_one(&s).await;
    assert_eq!(
        f.store.writes(),
        writes,
        "an ordinary write touches no store"
    );
}

#[tokio::test]
async fn revoked_credentials_expire_with_their_sessions_and_purge_removes_them() {
    let f = fixture(default_config());
    let c = client_with(
        default_config(),
        ClientSide::new().revocation_list(f.store.clone()),
    );
    let s = c.manager.load(None).await.unwrap();
    s.login("alice").unwrap();
    let cookie = commit_one(&s).await;
    let s = load(&c, &cookie).await;
    s.logout();
    s.commit().await.unwrap();
    // The revocation list shares the fixture's clock through the store.
    f.clock.advance(30 * MIN);
    assert_eq!(
        f.store.inner.purge_expired().await.unwrap(),
        0,
        "still needed"
    );
    f.clock.advance(31 * MIN);
    assert_eq!(
        f.store.inner.purge_expired().await.unwrap(),
        1,
        "gone after the absolute deadline"
    );
}

/// A cookie value mangled by `edit`, as a browser would send it back.
fn tampered(cookie: &str, edit: impl FnOnce(&mut Vec<u8>)) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let mut bytes = URL_SAFE_NO_PAD.decode(cookie).unwrap();
    edit(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// A valid cookie for a logged-in session holding some data.
fn sealed_cookie(c: &Client) -> String {
    runtime().block_on(async {
        let s = c.manager.load(None).await.unwrap();
        s.login("alice").unwrap();
        s.insert("role", &"admin").unwrap();
        commit_one(&s).await
    })
}

fn is_fresh(c: &Client, cookie: &str) -> bool {
    runtime().block_on(async {
        let s = c
            .manager
            .load_cookie(NAME, Some(cookie))
            .await
            .expect("never an error");
        s.is_new() && s.user().is_none()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_byte_flip_of_the_sealed_bytes_is_a_fresh_session(
        at in any::<prop::sample::Index>(), flip in 1u8..=255,
    ) {
        let c = client();
        let cookie = sealed_cookie(&c);
        let bad = tampered(&cookie, |b| { let i = at.index(b.len()); b[i] ^= flip; });
        prop_assert!(is_fresh(&c, &bad));
    }

    #[test]
    fn every_character_change_of_the_cookie_text_is_a_fresh_session(
        at in any::<prop::sample::Index>(), with in any::<u8>(),
    ) {
        let c = client();
        let cookie = sealed_cookie(&c);
        let mut bytes = cookie.clone().into_bytes();
        let i = at.index(bytes.len());
        prop_assume!(bytes[i] != with);
        bytes[i] = with;
        let bad = String::from_utf8_lossy(&bytes).into_owned();
        prop_assume!(bad != cookie);
        prop_assert!(is_fresh(&c, &bad));
    }

    #[test]
    fn every_truncation_is_a_fresh_session(at in any::<prop::sample::Index>()) {
        let c = client();
        let cookie = sealed_cookie(&c);
        let cut = at.index(cookie.len());
        prop_assert!(is_fresh(&c, &cookie[..cut]));
        let bad = tampered(&cookie, |b| { let n = at.index(b.len()); b.truncate(n); });
        prop_assert!(is_fresh(&c, &bad));
    }

    #[test]
    fn every_extension_is_a_fresh_session(extra in proptest::collection::vec(any::<u8>(), 1..64)) {
        let c = client();
        let cookie = sealed_cookie(&c);
        let bad = tampered(&cookie, |b| b.extend_from_slice(&extra));
        prop_assert!(is_fresh(&c, &bad));
        let text: String = extra.iter().map(|b| char::from(b'A' + b % 26)).collect();
        let longer = format!("{cookie}{text}");
        prop_assert!(is_fresh(&c, &longer));
    }

    #[test]
    fn arbitrary_cookie_text_is_a_fresh_session_and_never_panics(text in ".{0,600}") {
        let c = client();
        prop_assert!(is_fresh(&c, &text));
    }

    #[test]
    fn another_key_or_cookie_name_is_a_fresh_session(key in any::<[u8; 32]>(), name in "[A-Za-z-]{1,20}") {
        let c = client();
        let cookie = sealed_cookie(&c);
        let other = SessionManager::client_side(
            default_config().sealing_keys(KeyRing::new(1, key)),
            ClientSide::new(),
        ).unwrap();
        prop_assume!(key != [1; 32]);
        let fresh = runtime().block_on(async { other.load_cookie(NAME, Some(&cookie)).await.unwrap().is_new() });
        prop_assert!(fresh, "same key id, another key");
        prop_assume!(name != NAME);
        let fresh = runtime().block_on(async { c.manager.load_cookie(&name, Some(&cookie)).await.unwrap().is_new() });
        prop_assert!(fresh, "another cookie name");
    }
}

/// A client whose revocation list is the fixture's counting store.
fn with_list() -> (Client, common::Fixture) {
    let f = fixture(default_config());
    let clock = f.clock.clone();
    let manager = SessionManager::client_side_with_clock(
        default_config().sealing_keys(ring(&[1])),
        ClientSide::new().revocation_list(f.store.clone()),
        Arc::new(clock.clone()),
    )
    .unwrap();
    (Client { manager, clock }, f)
}

async fn logged_in(c: &Client, user: &str) -> String {
    let s = c.manager.load(None).await.unwrap();
    s.login(user).unwrap();
    commit_one(&s).await
}

#[tokio::test]
async fn a_logout_or_rotation_of_a_logged_in_cookie_reads_the_list_once() {
    let (c, f) = with_list();
    let cookie = logged_in(&c, "alice").await;
    for end in ["logout", "rotate"] {
        let cookie = if end == "logout" {
            cookie.clone()
        } else {
            logged_in(&c, "alice").await
        };
        let before = f.store.loads.load(Ordering::SeqCst);
        let s = load(&c, &cookie).await;
        match end {
            "logout" => s.logout(),
            _ => s.rotate(),
        }
        s.commit().await.unwrap();
        assert_eq!(
            f.store.loads.load(Ordering::SeqCst) - before,
            1,
            "{end}: the read at load is the only read"
        );
        assert!(
            load(&c, &cookie).await.is_new(),
            "{end}: old cookie refused"
        );
    }
}

#[tokio::test]
async fn a_rotation_after_log_out_everywhere_ended_the_session_hands_out_nothing() {
    let (c, _f) = with_list();
    let stolen = logged_in(&c, "alice").await;
    // The attacker's request passes the check at load…
    let s = load(&c, &stolen).await;
    assert_eq!(s.user().as_deref(), Some("alice"));
    // …alice logs out everywhere from another device meanwhile…
    let mine = load(&c, &logged_in(&c, "alice").await).await;
    c.manager.revoke_user("alice", Some(&mine)).await.unwrap();
    let mine = commit_one(&mine).await;
    // …and the attacker's step-up login must not get a fresh credential.
    s.login("alice").unwrap();
    assert!(matches!(s.commit().await, Err(Error::NotFound)));
    assert!(load(&c, &stolen).await.is_new());
    assert_eq!(load(&c, &mine).await.user().as_deref(), Some("alice"));
}

#[tokio::test]
async fn a_cookie_issued_in_the_same_millisecond_as_log_out_everywhere_is_refused() {
    let (c, _f) = with_list();
    let other = logged_in(&c, "alice").await;
    let mine = load(&c, &logged_in(&c, "alice").await).await;
    // No time passes: the other cookie was issued at the not-before instant.
    c.manager.revoke_user("alice", Some(&mine)).await.unwrap();
    let mine = commit_one(&mine).await;
    assert!(load(&c, &other).await.is_new());
    assert_eq!(load(&c, &mine).await.user().as_deref(), Some("alice"));
}

#[tokio::test]
async fn a_logout_while_a_rotation_is_in_flight_ends_the_session_and_sends_clear() {
    let (c, f) = with_list();
    // Give alice a revocation record, so the rotation's revoke is an update.
    let first = logged_in(&c, "alice").await;
    let s = load(&c, &first).await;
    s.logout();
    s.commit().await.unwrap();

    let cookie = logged_in(&c, "alice").await;
    let s = load(&c, &cookie).await;
    s.rotate();
    s.insert("x", &1).unwrap();
    let held = f.store.update_gate.write().await;
    let committing = tokio::spawn({
        let s = s.clone();
        async move { s.commit().await }
    });
    f.store.update_entered.notified().await;
    s.logout();
    drop(held);
    assert_eq!(committing.await.unwrap().unwrap(), TokenAction::Clear);
    assert_eq!(s.commit().await.unwrap(), TokenAction::Clear);
    assert!(
        load(&c, &cookie).await.is_new(),
        "the old cookie is refused"
    );
}

#[tokio::test]
async fn raising_the_absolute_timeout_never_extends_an_existing_cookie() {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let manager = |absolute: Duration| {
        SessionManager::client_side_with_clock(
            SessionConfig::default()
                .idle_timeout(30 * MIN)
                .absolute_timeout(absolute)
                .sealing_keys(ring(&[1])),
            ClientSide::new(),
            Arc::new(clock.clone()),
        )
        .unwrap()
    };
    let short = manager(60 * MIN);
    let s = short.load(None).await.unwrap();
    s.login("alice").unwrap();
    let mut cookie = match s.commit().await.unwrap() {
        TokenAction::IssueCookies { cookies, .. } => cookies[0].value().to_owned(),
        other => panic!("{other:?}"),
    };
    let long = manager(120 * MIN);
    for _ in 0..4 {
        clock.advance(20 * MIN);
        let s = long.load(Some(&cookie)).await.unwrap();
        if s.is_new() {
            break;
        }
        if let TokenAction::IssueCookies { cookies, .. } = s.commit().await.unwrap() {
            cookie = cookies[0].value().to_owned();
        }
    }
    assert!(
        long.load(Some(&cookie)).await.unwrap().is_new(),
        "ended at the absolute deadline sealed at creation (60 min), not 120"
    );
}
