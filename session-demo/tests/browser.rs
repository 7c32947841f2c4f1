//! A person's walk through the demo in real headless Chromium, driven over
//! WebDriver: log in, increment, see the sessions table, log out; the cookie's
//! attributes as the browser stored them; a screenshot in
//! `CARGO_TARGET_TMPDIR`.
//!
//! Everything the test writes is under a temp dir: the sled store, and
//! Chromium's profile and home (its crash-report database and caches) in a
//! folder that [`Browser`] removes on drop, after killing chromedriver's
//! whole process group and anything else still using the folder, so that no
//! Chromium outlives the test, panics included.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them).
//! Without them the test is skipped loudly, and fails under `CI`.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cookie::SameSite;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use session_axum::TransportConfig;
use session_cli::StoreUrl;
use session_core::{SessionConfig, SessionManager};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A fresh folder under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "session-demo-{tag}-{}-{}",
            std::process::id(),
            &session_core::SessionToken::generate().key().to_hex()[..8]
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// chromedriver on `port`, in a process group of its own that the Chromium
/// it starts joins, with `HOME` and the XDG folders in a scratch folder.
/// Dropping it kills the group and every other process whose command line
/// names the folder (Chromium's crash handler starts a session of its own),
/// waits (up to 10 s) until none is left, not even unreaped, then removes the
/// folder.
struct Browser {
    driver: Child,
    dir: TempDir,
}

impl Browser {
    fn start(port: u16) -> Self {
        let dir = TempDir::new("chromium");
        let home = dir.0.join("home");
        std::fs::create_dir_all(&home).unwrap();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        Self { driver, dir }
    }

    fn profile(&self) -> PathBuf {
        self.dir.0.join("profile")
    }

    /// Processes other than this one that are in chromedriver's process
    /// group (zombies not yet reaped included) or whose command line holds
    /// the folder.
    fn stragglers(&self) -> Vec<String> {
        let group = self.driver.id().to_string();
        let needle = self.dir.0.to_string_lossy().into_owned();
        let me = std::process::id().to_string();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()) && *pid != me)
            .filter(|pid| {
                // `pid (comm) state ppid pgrp …`; comm may hold spaces.
                let in_group = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|stat| {
                        let after_comm = stat.rsplit_once(')')?.1.to_owned();
                        after_comm.split_whitespace().nth(2).map(str::to_owned)
                    })
                    .is_some_and(|pgrp| pgrp == group);
                in_group
                    || std::fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
            })
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = self.stragglers();
            if left.is_empty() || Instant::now() > deadline {
                break;
            }
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(&left)
                .stderr(Stdio::null())
                .status();
            std::thread::sleep(Duration::from_millis(100));
        }
        // `dir` is removed after this, with every process gone.
    }
}

/// Aborts the spawned server when dropped, so the store closes with the test.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn webdriver(port: u16, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1000,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match ClientBuilder::new(HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => return client,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("could not start a Chromium session through chromedriver: {e}"),
        }
    }
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits (a form post navigates) until `css` shows `expected`.
async fn wait_text(c: &Client, css: &str, expected: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = match c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if seen == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{css}: expected {expected:?}, still {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_logs_in_counts_sees_sessions_and_logs_out_in_chromium() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        session_test_suite::skip(
            "browser test",
            "install Debian's chromium and chromium-driver",
        );
        return;
    }
    // The demo as `cargo run -p session-demo` serves it: sled store, default
    // (Secure, __Host-) cookies. Chromium treats http://localhost as a secure
    // context, so it keeps Secure cookies there.
    let data = TempDir::new("sled");
    let store = StoreUrl::parse(&format!("sled:{}", data.0.display()))
        .unwrap()
        .open()
        .await
        .unwrap();
    let manager = SessionManager::new(store, SessionConfig::default()).unwrap();
    let app = session_demo::app::router(manager.clone(), TransportConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_port = listener.local_addr().unwrap().port();
    let _server = AbortOnDrop(tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap()
    }));

    let driver_port = session_test_suite::free_loopback_port();
    let browser = Browser::start(driver_port);
    let c = webdriver(driver_port, &browser.profile()).await;
    let base = format!("http://localhost:{app_port}");

    c.goto(&format!("{base}/")).await.unwrap();
    let form = c.form(Locator::Css("#login")).await.unwrap();
    form.set_by_name("username", "alice").await.unwrap();
    form.set_by_name("password", "alice-password")
        .await
        .unwrap();
    form.submit().await.unwrap();
    wait_text(&c, "#user", "alice").await;

    for expected in ["1", "2"] {
        c.find(Locator::Css("#increment"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_text(&c, "#count", expected).await;
    }
    let rows = c.find_all(Locator::Css("#sessions tr")).await.unwrap();
    assert_eq!(rows.len(), 2, "a header row and this device");
    assert!(text(&c, "#sessions").await.contains("this device"));

    let cookies = c.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|k| k.name() == "__Host-session")
        .unwrap_or_else(|| panic!("the browser kept the session cookie: {cookies:?}"));
    assert_eq!(session.value().len(), 43);
    assert_eq!(session.secure(), Some(true), "Secure");
    assert_eq!(session.http_only(), Some(true), "HttpOnly");
    assert_eq!(session.same_site(), Some(SameSite::Lax), "SameSite=Lax");
    assert_eq!(session.path(), Some("/"), "Path=/");
    assert!(
        session.domain().is_none_or(|d| d == "localhost"),
        "host-only cookie, no Domain attribute: {:?}",
        session.domain()
    );
    // Not readable from page scripts.
    let seen_by_js = c.execute("return document.cookie", vec![]).await.unwrap();
    assert!(!seen_by_js.as_str().unwrap_or("").contains("__Host-session"));

    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(shots).unwrap();
    std::fs::write(shots.join("browser-demo.png"), &png).unwrap();

    c.find(Locator::Css("#logout"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#login"))
        .await
        .expect("the login form is back");
    // The logged-in token is gone from the browser and dead on the server.
    // (The login page itself starts a fresh anonymous session for its
    // CSRF token, so the browser may hold a new, different cookie.)
    let logged_in = session.value().to_owned();
    let after = c.get_all_cookies().await.unwrap();
    assert!(
        after
            .iter()
            .all(|k| k.name() != "__Host-session" || k.value() != logged_in),
        "logout replaced the cookie: {after:?}"
    );
    assert!(manager.load(Some(&logged_in)).await.unwrap().is_new());

    // The guards stop the server, chromedriver and Chromium and remove the
    // folders, on this path and on a panic's.
    let _ = c.close().await;
}

/// Runs `script` in the page as an async function body and returns what it
/// resolves to (WebDriver's `executeAsync`, with a promise).
async fn run_async(c: &Client, script: &str) -> serde_json::Value {
    let wrapped = format!(
        "const done = arguments[arguments.length - 1];\
         (async () => {{ {script} }})().then(done, e => done({{ error: String(e) }}));"
    );
    c.execute_async(&wrapped, vec![]).await.unwrap()
}

/// The names of the cookies Chromium keeps for the app, sorted.
async fn cookie_names(c: &Client) -> Vec<String> {
    let mut names: Vec<String> = c
        .get_all_cookies()
        .await
        .unwrap()
        .iter()
        .map(|k| k.name().to_owned())
        .collect();
    names.sort();
    names
}

/// Issue 22: client-side sessions in a real browser. The demo's pages work
/// unchanged with the session sealed in the cookie; a 10 KiB note travels in
/// chunked cookies that Chromium keeps and sends back whole; shrinking it
/// leaves no stale chunk behind; logout clears every cookie of the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_sessions_round_trip_ten_kib_through_chunks_in_chromium() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        session_test_suite::skip(
            "browser test",
            "install Debian's chromium and chromium-driver",
        );
        return;
    }
    let config = SessionConfig::default().sealing_keys(session_core::KeyRing::new(
        1,
        session_core::KeyRing::generate_key(),
    ));
    let client = session_core::ClientSide::new().chunks(session_demo::app::CLIENT_SIDE_CHUNKS);
    let manager = SessionManager::client_side(config, client).unwrap();
    let app = session_demo::app::router(manager, session_demo::app::cookies(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_port = listener.local_addr().unwrap().port();
    let _server = AbortOnDrop(tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap()
    }));

    let driver_port = session_test_suite::free_loopback_port();
    let browser = Browser::start(driver_port);
    let c = webdriver(driver_port, &browser.profile()).await;
    let base = format!("http://localhost:{app_port}");

    // The HTML pages, unchanged: sign in, count.
    c.goto(&format!("{base}/")).await.unwrap();
    let form = c.form(Locator::Css("#login")).await.unwrap();
    form.set_by_name("username", "alice").await.unwrap();
    form.set_by_name("password", "alice-password")
        .await
        .unwrap();
    form.submit().await.unwrap();
    wait_text(&c, "#user", "alice").await;
    c.find(Locator::Css("#increment"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&c, "#count", "1").await;
    assert!(text(&c, "#sessions").await.contains("this device"));
    assert_eq!(cookie_names(&c).await, ["__Host-session"]);

    // 10 KiB of note: the session spans chunks, each within the browser's limit.
    let note = run_async(
        &c,
        "const text = 'n'.repeat(10 * 1024);\
         const r = await fetch('/api/note', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text }) });\
         return { status: r.status, body: await r.json() };",
    )
    .await;
    assert_eq!(note["status"], 200, "{note}");
    let names = cookie_names(&c).await;
    assert!(names.len() >= 3, "chunks kept by Chromium: {names:?}");
    for (i, name) in names.iter().enumerate() {
        let want = if i == 0 {
            "__Host-session".to_owned()
        } else {
            format!("__Host-session.{i}")
        };
        assert_eq!(*name, want);
    }
    for k in c.get_all_cookies().await.unwrap() {
        assert!(
            k.name().len() + k.value().len() <= 4096,
            "{} too big",
            k.name()
        );
        assert_eq!(k.secure(), Some(true), "{} Secure", k.name());
        assert_eq!(k.http_only(), Some(true), "{} HttpOnly", k.name());
    }
    let me = run_async(&c, "return await (await fetch('/api/me')).json();").await;
    assert_eq!(me["user"], "alice", "{me}");
    assert_eq!(me["count"], 1, "{me}");
    assert_eq!(
        me["note_length"],
        10 * 1024,
        "the whole note came back: {me}"
    );

    // Shrink it: one cookie again, no stale chunk left in the browser.
    let small = run_async(
        &c,
        "const r = await fetch('/api/note', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'short' }) });\
         return r.status;",
    )
    .await;
    assert_eq!(small, 200);
    assert_eq!(cookie_names(&c).await, ["__Host-session"]);
    let me = run_async(&c, "return await (await fetch('/api/me')).json();").await;
    assert_eq!(me["note_length"], 5, "{me}");
    assert_eq!(me["user"], "alice", "{me}");

    // Grow it again, then log out: every chunk goes.
    run_async(
        &c,
        "await fetch('/api/note', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'm'.repeat(8000) }) });",
    )
    .await;
    assert!(cookie_names(&c).await.len() >= 2);
    let out = run_async(
        &c,
        "const r = await fetch('/api/logout', { method: 'POST', headers: { 'content-type': 'application/json' } });\
         return r.status;",
    )
    .await;
    assert_eq!(out, 204);
    assert_eq!(cookie_names(&c).await, Vec::<String>::new());
    let me = run_async(&c, "return await (await fetch('/api/me')).json();").await;
    assert_eq!(me["user"], serde_json::Value::Null, "{me}");

    let _ = c.close().await;
}

/// Signs in on the `/tab` page of the current window.
async fn tab_sign_in(c: &Client, user: &str) {
    let form = c.form(Locator::Css("#tab-login")).await.unwrap();
    form.set_by_name("username", user).await.unwrap();
    form.set_by_name("password", &format!("{user}-password"))
        .await
        .unwrap();
    form.submit().await.unwrap();
    wait_text(c, "#tab-user", user).await;
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Issue 23: the `/tab` client in Chromium. Two tabs of one browser are two
/// users, each seeing only its own data; a closed tab's session token is
/// gone with it; revoking a tab's session from the account page stops it at
/// the strict check at once and at its next refresh; the page runs under a
/// strict CSP and keeps nothing in `localStorage`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_are_two_users_with_access_tokens_and_revocation_reaches_the_strict_check() {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        session_test_suite::skip(
            "browser test",
            "install Debian's chromium and chromium-driver",
        );
        return;
    }
    let manager = SessionManager::new(
        std::sync::Arc::new(session_core::MemoryStore::new()),
        SessionConfig::default(),
    )
    .unwrap();
    let app = session_demo::app::router(manager.clone(), session_demo::app::transport(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_port = listener.local_addr().unwrap().port();
    let _server = AbortOnDrop(tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap()
    }));
    let driver_port = session_test_suite::free_loopback_port();
    let browser = Browser::start(driver_port);
    let c = webdriver(driver_port, &browser.profile()).await;
    let base = format!("http://localhost:{app_port}");

    // Tab A: alice.
    c.goto(&format!("{base}/tab")).await.unwrap();
    let tab_a = c.window().await.unwrap();
    tab_sign_in(&c, "alice").await;
    click(&c, "#tab-increment").await;
    wait_text(&c, "#tab-count", "1").await;
    let alice_session = text(&c, "#tab-session").await;
    let stored = c
        .execute(
            "return [sessionStorage.getItem('session-token'), localStorage.length, document.cookie]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        stored[0].as_str().map(str::len),
        Some(43),
        "the session token is in sessionStorage: {stored}"
    );
    assert_eq!(stored[1], 0, "nothing in localStorage");
    assert_eq!(stored[2], "", "no cookie: the tab's session is bearer-only");

    // Tab B, same browser: bob.
    let tab_b = c.new_window(true).await.unwrap().handle;
    c.switch_to_window(tab_b.clone()).await.unwrap();
    c.goto(&format!("{base}/tab")).await.unwrap();
    wait_text(&c, "#tab-status", "Sign in to start this tab's session.").await;
    tab_sign_in(&c, "bob").await;
    for n in ["1", "2"] {
        click(&c, "#tab-increment").await;
        wait_text(&c, "#tab-count", n).await;
    }

    // Each tab sees only its own session and data.
    c.switch_to_window(tab_a.clone()).await.unwrap();
    c.refresh().await.unwrap();
    wait_text(&c, "#tab-user", "alice").await;
    wait_text(&c, "#tab-count", "1").await;
    assert_eq!(text(&c, "#tab-session").await, alice_session);

    // The CSP the page runs under: an inline script is blocked.
    let inline = c
        .execute(
            "const s = document.createElement('script'); s.textContent = 'window.__inline = 1';\
             document.body.appendChild(s); return window.__inline === undefined",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(inline, true, "inline script refused by the CSP");

    // Closing tab B ends its use: a new tab has no session.
    c.switch_to_window(tab_b).await.unwrap();
    c.close_window().await.unwrap();
    c.switch_to_window(tab_a.clone()).await.unwrap();
    let tab_c = c.new_window(true).await.unwrap().handle;
    c.switch_to_window(tab_c).await.unwrap();
    c.goto(&format!("{base}/tab")).await.unwrap();
    wait_text(&c, "#tab-status", "Sign in to start this tab's session.").await;

    // The account page (cookie session) as alice revokes tab A's session.
    c.goto(&format!("{base}/")).await.unwrap();
    let form = c.form(Locator::Css("#login")).await.unwrap();
    form.set_by_name("username", "alice").await.unwrap();
    form.set_by_name("password", "alice-password")
        .await
        .unwrap();
    form.submit().await.unwrap();
    wait_text(&c, "#user", "alice").await;
    let rows = c.find_all(Locator::Css("#sessions tr")).await.unwrap();
    assert_eq!(rows.len(), 3, "a header, this device and tab A");
    click(&c, "#sessions form button").await;
    // The form post navigates: wait for the page that lists one session
    // (the old page's table is still there until it does).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = match c.find_all(Locator::Css("#sessions tr")).await {
            Ok(rows) => rows.len(),
            Err(_) => 0,
        };
        if rows == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the revoked row is still listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        manager.list_user("alice").await.unwrap().len(),
        1,
        "only the account page's session is left"
    );

    // Tab A: the strict check refuses at once; the next refresh fails.
    c.switch_to_window(tab_a).await.unwrap();
    click(&c, "#tab-strict").await;
    wait_text(&c, "#tab-strict-result", "refused: session ended").await;
    click(&c, "#tab-increment").await;
    wait_text(&c, "#tab-status", "Your session has ended: sign in again.").await;
    let left = c
        .execute("return sessionStorage.getItem('session-token')", vec![])
        .await
        .unwrap();
    assert_eq!(left, serde_json::Value::Null, "the dead token is dropped");

    let _ = c.close().await;
}
