//! The demo's access-token endpoints over HTTP: issue from a logged-in
//! session, verify statelessly and strictly, and a verifier built from the
//! JWKS document the demo serves.

mod common;

use axum::http::{header, Method};
use common::{start, Client};
use serde_json::json;
use session_jwt::{Verifier, VerifierConfig};

async fn with_access(c: &Client, path: &str, token: &str) -> common::Reply {
    c.send_with(
        Method::GET,
        path,
        None,
        Vec::new(),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
}

#[tokio::test]
async fn a_logged_in_session_gets_an_access_token_that_the_published_keys_verify() {
    let demo = start().await;
    let c = Client::new(&demo, "tokens-test");
    let refused = c.post_empty("/api/token").await;
    assert_eq!(
        refused.status, 401,
        "no session, no token: {}",
        refused.text
    );
    c.login("alice").await;
    let issued = c.post_empty("/api/token").await;
    assert_eq!(issued.status, 200, "{}", issued.text);
    assert_eq!(issued.json["token_type"], "Bearer");
    assert_eq!(issued.json["expires_in"], 300);
    assert_eq!(issued.headers[header::CACHE_CONTROL], "no-store");
    let token = issued.json["access_token"].as_str().unwrap().to_owned();

    let me = with_access(&c, "/api/whoami", &token).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json["user"], "alice");
    assert_eq!(
        with_access(&c, "/api/whoami/strict", &token).await.status,
        200
    );

    // Another service: fetch the JWKS from the demo, verify on its own.
    let jwks = c.get("/.well-known/jwks.json").await;
    assert_eq!(jwks.status, 200);
    assert_eq!(
        jwks.headers[header::CONTENT_TYPE],
        "application/jwk-set+json"
    );
    let verifier = Verifier::from_jwks(
        &jwks.text,
        VerifierConfig::new(session_demo::tokens::ISSUER, session_demo::tokens::AUDIENCE),
    )
    .unwrap();
    let claims = verifier.verify(&token).unwrap();
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.sid.to_string(), me.json["session"].as_str().unwrap());

    // Logout: no new token, the strict check refuses, the plain one waits for exp.
    c.post_empty("/api/logout").await;
    assert_eq!(c.post_empty("/api/token").await.status, 401);
    let strict = with_access(&c, "/api/whoami/strict", &token).await;
    assert_eq!(strict.status, 401);
    assert_eq!(
        strict.headers[header::WWW_AUTHENTICATE],
        "Bearer error=\"invalid_token\""
    );
    assert_eq!(strict.json, json!({ "error": "invalid_token" }));
    assert_eq!(with_access(&c, "/api/whoami", &token).await.status, 200);
    let forged = format!("{}x", &token[..token.len() - 1]);
    assert_eq!(with_access(&c, "/api/whoami", &forged).await.status, 401);
}

#[tokio::test]
async fn the_tab_page_is_served_under_a_strict_content_security_policy() {
    let demo = start().await;
    let c = Client::new(&demo, "tokens-test");
    for path in ["/tab", "/tab.js", "/tab.css"] {
        let r = c.get(path).await;
        assert_eq!(r.status, 200, "{path}");
        let csp = r.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(r.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
    let page = c.get("/tab").await.text;
    assert!(
        !page.contains("<script>") && !page.contains("style="),
        "nothing inline"
    );
    let script = c.get("/tab.js").await.text;
    assert!(script.contains("sessionStorage") && !script.contains("localStorage"));
}
