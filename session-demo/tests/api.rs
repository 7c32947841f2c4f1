//! The demo's JSON API over HTTP, as the issue specifies it.

mod common;

use axum::http::{Method, StatusCode};
use common::{start, Client};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn me_never_creates_a_session() {
    let demo = start().await;
    let c = Client::new(&demo, "test");
    let r = c.get("/api/me").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json,
        json!({ "user": null, "session": null, "count": 0, "note_length": null })
    );
    assert!(r.set_cookies.is_empty());
    assert!(demo.store.is_empty());
}

#[tokio::test]
async fn the_counter_works_anonymously() {
    let demo = start().await;
    let c = Client::new(&demo, "test");
    for n in 1..=3 {
        assert_eq!(
            c.post_empty("/api/counter").await.json,
            json!({ "count": n })
        );
    }
    let me = c.get("/api/me").await.json;
    assert_eq!(me["count"], 3);
    assert_eq!(me["user"], Value::Null);
    assert!(me["session"]
        .as_str()
        .unwrap()
        .parse::<session_core::SessionId>()
        .is_ok());
}

/// Issue 19, item 4: `/api/login` as bob on alice's session does not show
/// bob alice's counter, nor put her session in his list.
#[tokio::test]
async fn login_as_another_user_starts_afresh_and_never_shows_the_previous_users_data() {
    let demo = start().await;
    let c = Client::new(&demo, "shared computer");
    c.login("alice").await;
    for _ in 0..3 {
        c.post_empty("/api/counter").await;
    }
    let alice = c.get("/api/me").await.json;
    assert_eq!(alice["count"], 3);
    let alices_token = c.token().unwrap();

    let r = c.login("bob").await;
    assert_eq!(r.status, StatusCode::OK);
    let bob = c.get("/api/me").await.json;
    assert_eq!(bob["user"], "bob");
    assert_eq!(bob["count"], 0, "bob does not inherit alice's counter");
    assert_ne!(bob["session"], alice["session"], "a new session id");

    let sessions = c.get("/api/sessions").await.json;
    let ids: Vec<&Value> = sessions
        .as_array()
        .expect("a list of sessions")
        .iter()
        .map(|s| &s["id"])
        .collect();
    assert_eq!(
        ids,
        vec![&bob["session"]],
        "only bob's own session is listed"
    );

    let stale = Client::new(&demo, "shared computer");
    stale.set_token(Some(alices_token));
    assert_eq!(
        stale.get("/api/me").await.json["user"],
        Value::Null,
        "alice's session ended when bob logged in"
    );
}

#[tokio::test]
async fn login_issues_a_new_token_keeps_data_and_kills_the_old_token() {
    let demo = start().await;
    let c = Client::new(&demo, "test");
    c.post_empty("/api/counter").await;
    let before = c.token().unwrap();
    let r = c.login("alice").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json, json!({ "user": "alice" }));
    let after = c.token().unwrap();
    assert_ne!(before, after);
    assert_eq!(
        c.get("/api/me").await.json["count"],
        1,
        "session data survives login"
    );

    let stale = Client::new(&demo, "test");
    stale.set_token(Some(before));
    assert_eq!(
        stale.get("/api/me").await.json["user"],
        Value::Null,
        "pre-login token is dead"
    );
}

#[tokio::test]
async fn bad_credentials_are_401_and_change_nothing() {
    let demo = start().await;
    let c = Client::new(&demo, "test");
    c.post_empty("/api/counter").await;
    let token = c.token();
    for body in [
        json!({ "username": "alice", "password": "wrong" }),
        json!({ "username": "mallory", "password": "mallory-password" }),
        json!({ "username": "alice", "password": "bob-password" }),
    ] {
        let r = c.post_json("/api/login", body).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.json["error"].is_string());
        assert!(r.set_cookies.is_empty());
    }
    assert_eq!(c.token(), token);
    assert_eq!(
        c.get("/api/me").await.json,
        json!({ "user": null, "session": c.get("/api/me").await.json["session"], "count": 1, "note_length": null })
    );
}

#[tokio::test]
async fn posts_need_json_and_bodies_over_64_kib_are_413() {
    let demo = start().await;
    let c = Client::new(&demo, "test");
    let form = c
        .send(
            axum::http::Method::POST,
            "/api/login",
            Some("text/plain"),
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(form.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(
        form.json["error"].is_string(),
        "errors are JSON: {}",
        form.text
    );
    let broken = c
        .send(
            axum::http::Method::POST,
            "/api/login",
            Some("application/json"),
            b"{\"username\":".to_vec(),
        )
        .await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    let big = format!(
        "{{\"username\":\"{}\",\"password\":\"x\"}}",
        "a".repeat(70 * 1024)
    );
    let r = c
        .send(
            axum::http::Method::POST,
            "/api/login",
            Some("application/json"),
            big.into_bytes(),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let r = c
        .send(
            axum::http::Method::POST,
            "/api/counter",
            Some("application/json"),
            vec![b' '; 65 * 1024],
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "on every route");
    assert!(demo.store.is_empty());
}

#[tokio::test]
async fn changes_without_a_json_content_type_are_refused_as_csrf_defence() {
    let demo = start().await;
    let c = Client::new(&demo, "test");
    c.login("alice").await;
    for (method, path) in [
        (Method::POST, "/api/logout"),
        (Method::POST, "/api/counter"),
        (Method::POST, "/api/sessions/revoke-others"),
        (
            Method::DELETE,
            "/api/sessions/00000000-0000-0000-0000-000000000000",
        ),
    ] {
        for body in [&b""[..], b"csrf=1"] {
            let form = c
                .send(
                    method.clone(),
                    path,
                    Some("application/x-www-form-urlencoded"),
                    body.to_vec(),
                )
                .await;
            assert_eq!(
                form.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{method} {path} {body:?}"
            );
        }
        let with_body = c.send(method.clone(), path, None, b"{}".to_vec()).await;
        assert_eq!(
            with_body.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{method} {path} with a body and no content type"
        );
        if method != Method::DELETE {
            let bare = c.send(method.clone(), path, None, Vec::new()).await;
            assert_eq!(
                bare.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{method} {path}"
            );
        }
    }
    let me = c.get("/api/me").await.json;
    assert_eq!(me["user"], "alice", "nothing happened");
    assert_eq!(me["count"], 0);
}

/// Alice on two devices: the phone's client, and the laptop's session id.
async fn alice_on_a_phone_and_a_laptop(demo: &common::Demo) -> (Client, Client, String) {
    let phone = Client::new(demo, "phone");
    let laptop = Client::new(demo, "laptop");
    phone.login("alice").await;
    laptop.login("alice").await;
    let laptop_id = laptop.get("/api/me").await.json["session"]
        .as_str()
        .unwrap()
        .to_owned();
    (phone, laptop, laptop_id)
}

#[tokio::test]
async fn a_bodyless_delete_without_content_type_revokes_another_of_the_users_sessions() {
    let demo = start().await;
    let (phone, laptop, laptop_id) = alice_on_a_phone_and_a_laptop(&demo).await;
    // As `fetch(url, {method: "DELETE"})` sends it through this client:
    // no Content-Type, an empty body (Content-Length: 0).
    let r = phone
        .send(
            Method::DELETE,
            &format!("/api/sessions/{laptop_id}"),
            None,
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(laptop.get("/api/me").await.json["user"], Value::Null);
    assert_eq!(phone.get("/api/me").await.json["user"], "alice");
}

#[tokio::test]
async fn a_delete_as_curl_sends_it_without_content_length_revokes_the_session() {
    let demo = start().await;
    let (phone, laptop, laptop_id) = alice_on_a_phone_and_a_laptop(&demo).await;
    // `curl -X DELETE URL`, byte for byte: no Content-Type, no
    // Content-Length, no body.
    let request = format!(
        "DELETE /api/sessions/{laptop_id} HTTP/1.1\r\nHost: {}\r\nUser-Agent: curl/8.0\r\n\
         Accept: */*\r\nCookie: {}={}\r\nConnection: close\r\n\r\n",
        demo.addr,
        common::COOKIE,
        phone.token().unwrap()
    );
    let mut stream = tokio::net::TcpStream::connect(demo.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 204"), "{reply}");
    assert_eq!(laptop.get("/api/me").await.json["user"], Value::Null);
}

#[tokio::test]
async fn a_delete_with_a_body_and_a_non_json_content_type_is_still_refused() {
    let demo = start().await;
    let (phone, laptop, laptop_id) = alice_on_a_phone_and_a_laptop(&demo).await;
    let path = format!("/api/sessions/{laptop_id}");
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let r = phone
            .send(Method::DELETE, &path, Some(content_type), b"x=1".to_vec())
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}"
        );
        assert!(r.json["error"].is_string(), "{}", r.text);
    }
    assert_eq!(
        laptop.get("/api/me").await.json["user"],
        "alice",
        "the laptop's session survives"
    );
}

#[tokio::test]
async fn a_post_without_content_type_is_still_refused() {
    let demo = start().await;
    let (phone, laptop, _) = alice_on_a_phone_and_a_laptop(&demo).await;
    for path in ["/api/sessions/revoke-others", "/api/logout", "/api/counter"] {
        let r = phone.send(Method::POST, path, None, Vec::new()).await;
        assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path}");
    }
    assert_eq!(laptop.get("/api/me").await.json["user"], "alice");
    assert_eq!(phone.get("/api/me").await.json["count"], 0);
}

#[tokio::test]
async fn logout_is_204_with_a_clearing_cookie_and_the_old_token_is_dead() {
    let demo = start().await;
    let c = Client::new(&demo, "test");
    c.login("alice").await;
    let token = c.token().unwrap();
    let r = c.post_empty("/api/logout").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(
        r.set_cookies[0].starts_with("__Host-session=;"),
        "{:?}",
        r.set_cookies
    );
    assert!(r.set_cookies[0].contains("Max-Age=0"));
    assert!(demo.manager.load(Some(&token)).await.unwrap().is_new());
}

fn is_rfc3339(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| OffsetDateTime::parse(s, &Rfc3339).is_ok())
}

#[tokio::test]
async fn sessions_lists_the_users_sessions_with_the_current_one_marked() {
    let demo = start().await;
    let phone = Client::new(&demo, "Phone/1.0");
    let laptop = Client::new(&demo, "Laptop/2.0");
    phone.login("alice").await;
    laptop.login("alice").await;
    Client::new(&demo, "bob").login("bob").await;

    let list = phone.get("/api/sessions").await;
    assert_eq!(list.status, StatusCode::OK);
    let items = list.json.as_array().unwrap();
    assert_eq!(items.len(), 2, "only alice's: {items:?}");
    let current: Vec<&Value> = items.iter().filter(|i| i["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["user_agent"], "Phone/1.0");
    assert_eq!(current[0]["id"], phone.get("/api/me").await.json["session"]);
    for i in items {
        assert!(
            is_rfc3339(&i["created_at"]) && is_rfc3339(&i["last_seen"]),
            "{i}"
        );
    }
    let anonymous = Client::new(&demo, "x").get("/api/sessions").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn deleting_a_session_works_only_for_the_callers_own() {
    let demo = start().await;
    let phone = Client::new(&demo, "phone");
    let laptop = Client::new(&demo, "laptop");
    let bob = Client::new(&demo, "bob");
    phone.login("alice").await;
    laptop.login("alice").await;
    bob.login("bob").await;
    let laptop_id = laptop.get("/api/me").await.json["session"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob_id = bob.get("/api/me").await.json["session"]
        .as_str()
        .unwrap()
        .to_owned();

    assert_eq!(
        phone
            .delete(&format!("/api/sessions/{bob_id}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        bob.get("/api/me").await.json["user"],
        "bob",
        "bob's session survives"
    );
    assert_eq!(
        phone.delete("/api/sessions/not-a-uuid").await.status,
        StatusCode::NOT_FOUND
    );
    let random = session_core::SessionId::generate();
    assert_eq!(
        phone
            .delete(&format!("/api/sessions/{random}"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    assert_eq!(
        phone
            .delete(&format!("/api/sessions/{laptop_id}"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        laptop.get("/api/me").await.json["user"],
        Value::Null,
        "the laptop is logged out"
    );
    assert_eq!(phone.get("/api/me").await.json["user"], "alice");
}

#[tokio::test]
async fn revoke_others_ends_every_other_session_of_the_user() {
    let demo = start().await;
    let devices: Vec<Client> = (0..3)
        .map(|i| Client::new(&demo, &format!("d{i}")))
        .collect();
    for d in &devices {
        d.login("alice").await;
    }
    let r = devices[0].post_empty("/api/sessions/revoke-others").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json, json!({ "revoked": 2 }));
    assert_eq!(devices[0].get("/api/me").await.json["user"], "alice");
    for d in &devices[1..] {
        assert_eq!(d.get("/api/me").await.json["user"], Value::Null);
    }
}

#[tokio::test]
async fn concurrent_counter_calls_on_one_session_never_lose_an_increment() {
    let demo = start().await;
    let c = Client::new(&demo, "test");
    c.login("alice").await;
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.post_empty("/api/counter").await.status })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(c.get("/api/me").await.json["count"], 50);
}

#[tokio::test]
async fn html_forms_need_the_sessions_csrf_token() {
    let demo = start().await;
    let c = Client::new(&demo, "browser");
    let page = c.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    let marker = "name=\"csrf\" value=\"";
    let at = page.text.find(marker).expect("a CSRF field") + marker.len();
    let csrf = &page.text[at..at + 43];

    let forged = c.post_form("/form/counter", "csrf=forged").await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let missing = c.post_form("/form/counter", "").await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    let stranger = Client::new(&demo, "other");
    let cross = stranger
        .post_form("/form/counter", &format!("csrf={csrf}"))
        .await;
    assert_eq!(
        cross.status,
        StatusCode::FORBIDDEN,
        "a token is only good with its own session"
    );
    assert_eq!(c.get("/api/me").await.json["count"], 0);

    let ok = c.post_form("/form/counter", &format!("csrf={csrf}")).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(c.get("/api/me").await.json["count"], 1);
    let login = c
        .post_form(
            "/form/login",
            &format!("csrf={csrf}&username=alice&password=alice-password"),
        )
        .await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    assert_eq!(c.get("/api/me").await.json["user"], "alice");
    assert!(c
        .get("/")
        .await
        .text
        .contains("Signed in as <strong id=\"user\">alice</strong>"));
}

#[tokio::test]
async fn the_token_reaches_the_client_only_in_set_cookie() {
    let demo = start().await;
    let c = Client::new(&demo, "token-audit");
    let mut replies = Vec::new();
    let mut tokens = Vec::new();
    let mut step = |reply: common::Reply, c: &Client| {
        tokens.extend(c.token());
        replies.push(reply);
    };
    step(c.get("/").await, &c);
    step(c.post_empty("/api/counter").await, &c);
    step(c.login("alice").await, &c);
    step(c.post_empty("/api/counter").await, &c);
    step(c.get("/api/me").await, &c);
    step(c.get("/api/sessions").await, &c);
    step(c.get("/").await, &c);
    step(c.post_empty("/api/logout").await, &c);
    tokens.dedup();
    assert!(
        tokens.len() >= 2,
        "the cycle issued an anonymous and a login token"
    );

    for (i, reply) in replies.iter().enumerate() {
        for token in &tokens {
            assert!(
                !reply.text.contains(token.as_str()),
                "step {i}: the body contains a token"
            );
            for (name, value) in &reply.headers {
                if name == axum::http::header::SET_COOKIE {
                    continue;
                }
                assert!(
                    !String::from_utf8_lossy(value.as_bytes()).contains(token.as_str()),
                    "step {i}: header {name} contains a token"
                );
            }
        }
    }
}

/// One bearer request to the demo: the token (or `new` to start) in
/// `Authorization`, JSON content type on changes.
async fn bearer(c: &Client, method: Method, path: &str, token: &str, body: &str) -> common::Reply {
    let auth = format!("Bearer {token}");
    let ct = (method != Method::GET).then_some("application/json");
    c.send_with(
        method,
        path,
        ct,
        body.as_bytes().to_vec(),
        &[("authorization", &auth)],
    )
    .await
}

#[tokio::test]
async fn bearer_clients_log_in_count_and_log_out_with_the_session_token_header() {
    let demo = start().await;
    let c = Client::new(&demo, "api-client");
    let login = bearer(
        &c,
        Method::POST,
        "/api/login",
        "new",
        r#"{"username":"alice","password":"alice-password"}"#,
    )
    .await;
    assert_eq!(login.status, StatusCode::OK);
    assert_eq!(login.json, json!({ "user": "alice" }));
    assert!(
        login.set_cookies.is_empty(),
        "no cookie for a bearer client"
    );
    let token = login.headers["session-token"].to_str().unwrap().to_owned();
    assert_eq!(token.len(), 43);

    let count = bearer(&c, Method::POST, "/api/counter", &token, "").await;
    assert_eq!(count.json, json!({ "count": 1 }));
    assert!(
        !count.headers.contains_key("session-token"),
        "the token is only sent when it changes"
    );
    let me = bearer(&c, Method::GET, "/api/me", &token, "").await;
    assert_eq!(me.json["user"], "alice");
    assert_eq!(me.json["count"], 1);
    let list = bearer(&c, Method::GET, "/api/sessions", &token, "").await;
    assert_eq!(list.json[0]["user_agent"], "api-client");

    let out = bearer(&c, Method::POST, "/api/logout", &token, "").await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let after = bearer(&c, Method::GET, "/api/me", &token, "").await;
    assert_eq!(
        after.json["user"],
        Value::Null,
        "the logged-out token is dead"
    );
    assert!(demo.store.is_empty());
}
