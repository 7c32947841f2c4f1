//! A person's walk through the demo in real headless Chromium, driven over
//! WebDriver: log in, increment, see the sessions table, log out; the cookie's
//! attributes as the browser stored them; a screenshot under `target/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them).
//! Without them the test is skipped loudly, and fails under `CI`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cookie::SameSite;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use session_axum::TransportConfig;
use session_cli::StoreUrl;
use session_core::{SessionConfig, SessionManager};
use tokio::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "session-demo-{tag}-{}-{}",
        std::process::id(),
        &session_core::SessionToken::generate().key().to_hex()[..8]
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn webdriver(port: u16) -> Client {
    let profile = scratch("chromium-profile");
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
    let data = scratch("sled");
    let store = StoreUrl::parse(&format!("sled:{}", data.display()))
        .unwrap()
        .open()
        .await
        .unwrap();
    let manager = SessionManager::new(store, SessionConfig::default()).unwrap();
    let app = session_demo::app::router(manager.clone(), TransportConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let driver_port = session_test_suite::free_loopback_port();
    let mut driver = Command::new(CHROMEDRIVER)
        .arg(format!("--port={driver_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromedriver");
    let c = webdriver(driver_port).await;
    let base = format!("http://localhost:{app_port}");

    let result = async {
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
        let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-demo.png");
        std::fs::write(&shot, &png).unwrap();
        assert!(png.starts_with(b"\x89PNG"));

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
    }
    .await;
    let _ = c.close().await;
    let _ = driver.kill().await;
    let _ = std::fs::remove_dir_all(&data);
    result
}
