//! The demo binary with `--client-side`: keys from `SESSION_DEMO_KEYS`, clear
//! start-up errors that never repeat a key, and the revocation list's effect
//! on a cookie replayed after logout, with and without the list.

mod process;

use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use process::{DemoProcess, TempDir};
use serde_json::Value;

const KEYS: &str = "SESSION_DEMO_KEYS";

fn key(byte: u8) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

#[tokio::test]
async fn client_side_without_keys_exits_with_how_to_make_one() {
    let out = DemoProcess::spawn_with("memory:", &["--client-side"], &[])
        .wait_exit(Duration::from_secs(30));
    assert!(out.status.is_some_and(|s| !s.success()), "{}", out.all());
    assert!(
        out.stderr.iter().any(|l| l
            .contains("--client-side needs sealing keys in SESSION_DEMO_KEYS")
            && l.contains("/dev/urandom")),
        "{}",
        out.all()
    );
}

#[tokio::test]
async fn a_malformed_key_is_named_and_never_printed() {
    use base64::Engine as _;
    let short = base64::engine::general_purpose::STANDARD.encode(b"sixteen byte key");
    let keys = format!("1:{short}");
    let out = DemoProcess::spawn_with("memory:", &["--client-side"], &[(KEYS, &keys)])
        .wait_exit(Duration::from_secs(30));
    assert!(out.status.is_some_and(|s| !s.success()), "{}", out.all());
    assert!(
        out.stderr
            .iter()
            .any(|l| l.contains("SESSION_DEMO_KEYS: key 1 is 16 bytes, not 32")),
        "{}",
        out.all()
    );
    out.assert_never_says(&short);
}

struct Reply {
    status: u16,
    cookies: Vec<String>,
    json: Value,
}

async fn call(demo: &DemoProcess, method: &str, path: &str, cookie: &str, body: &str) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = axum::http::Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", demo.addr))
        .header("content-type", "application/json");
    if !cookie.is_empty() {
        req = req.header("cookie", cookie);
    }
    let res = client
        .request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let cookies = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        cookies,
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// Logs alice in, logs her out, and replays the logged-in cookie: the user
/// the replay is served as.
async fn replay_after_logout(demo: &DemoProcess) -> Value {
    let login = call(
        demo,
        "POST",
        "/api/login",
        "",
        r#"{"username":"alice","password":"alice-password"}"#,
    )
    .await;
    assert_eq!(login.status, 200, "{:?}", login.json);
    assert_eq!(login.cookies.len(), 1, "{:?}", login.cookies);
    let cookie = login.cookies[0].clone();
    assert!(cookie.starts_with("session="), "{cookie}");
    let me = call(demo, "GET", "/api/me", &cookie, "").await;
    assert_eq!(me.json["user"], "alice");
    let sessions = call(demo, "GET", "/api/sessions", &cookie, "").await;
    assert_eq!(sessions.status, 200);
    assert_eq!(
        sessions.json.as_array().map(Vec::len),
        Some(1),
        "this session only"
    );
    assert_eq!(sessions.json[0]["current"], true);
    let out = call(demo, "POST", "/api/logout", &cookie, "").await;
    assert_eq!(out.status, 204);
    assert_eq!(out.cookies, ["session="], "logout clears the cookie");
    call(demo, "GET", "/api/me", &cookie, "").await.json["user"].clone()
}

#[tokio::test]
async fn a_cookie_replayed_after_logout_is_refused_only_with_the_revocation_list() {
    let keys = format!("1:{}, 2:{}", key(1), key(2));
    let mut plain = DemoProcess::spawn_with(
        "memory:",
        &["--client-side", "--dev-cookies"],
        &[(KEYS, &keys)],
    );
    if let Err(out) = plain.wait_serving().await {
        panic!("the demo did not serve:\n{}", out.all());
    }
    assert_eq!(
        replay_after_logout(&plain).await,
        "alice",
        "without a list, a copied cookie outlives logout (documented)"
    );
    plain.stop();

    let dir = TempDir::new("client-side-revocations");
    let store = format!("sled:{}", dir.0.join("data").display());
    let mut listed = DemoProcess::spawn_with(
        &store,
        &["--client-side", "--revocation-list", "--dev-cookies"],
        &[(KEYS, &keys)],
    );
    if let Err(out) = listed.wait_serving().await {
        panic!("the demo did not serve:\n{}", out.all());
    }
    assert_eq!(replay_after_logout(&listed).await, Value::Null);
    let out = listed.stop();
    out.assert_never_says(&key(1));
    out.assert_never_says(&key(2));
}
