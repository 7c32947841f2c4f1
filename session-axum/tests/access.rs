//! The access-token extractors over real HTTP: the verifier built from a
//! JWKS document fetched from a local server, RFC 6750 challenges, no
//! details in the body, and the strict check after a revocation.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::routing::get;
use axum::Router;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use session_axum::{Access, AccessTokenLayer, StrictAccess};
use session_core::{MemoryStore, SessionConfig, SessionManager};
use session_jwt::{Algorithm, Issuer, KeySet, SigningKey, Verifier, VerifierConfig};

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn get_(
    addr: SocketAddr,
    path: &str,
    bearer: Option<&str>,
) -> (StatusCode, Option<String>, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder().uri(format!("http://{addr}{path}"));
    if let Some(token) = bearer {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let res = client
        .request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let challenge = res
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    (status, challenge, body)
}

#[tokio::test]
async fn extractors_verify_with_keys_fetched_as_jwks_and_refuse_per_rfc_6750() {
    // The issuing side publishes its keys…
    let keys = KeySet::new(SigningKey::generate("k1", Algorithm::EdDSA));
    let jwks = keys.jwks_json();
    let keys_addr =
        serve(Router::new().route("/.well-known/jwks.json", get(move || async move { jwks })))
            .await;
    // …and the API fetches them.
    let (status, _, document) = get_(keys_addr, "/.well-known/jwks.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let verifier = Verifier::from_jwks(&document, VerifierConfig::new("app", "api")).unwrap();

    let manager =
        SessionManager::new(Arc::new(MemoryStore::new()), SessionConfig::default()).unwrap();
    let api = serve(
        Router::new()
            .route("/plain", get(|Access(c): Access| async move { c.sub }))
            .route(
                "/strict",
                get(|StrictAccess(c): StrictAccess| async move { c.sub }),
            )
            .layer(AccessTokenLayer::new(verifier).with_manager(manager.clone())),
    )
    .await;

    let s = manager.load(None).await.unwrap();
    s.login("alice").unwrap();
    s.commit().await.unwrap();
    let token = Issuer::new(keys, "app", "api").issue(&s).unwrap();
    for path in ["/plain", "/strict"] {
        let (status, _, body) = get_(api, path, Some(token.as_str())).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "alice"), "{path}");
    }

    let (status, challenge, body) = get_(api, "/plain", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge.as_deref(),
        Some("Bearer"),
        "no error code without a token"
    );
    assert_eq!(body, r#"{"error":"invalid_token"}"#);
    for bad in ["x", "a.b.c", &format!("{}x", token.as_str())] {
        let (status, challenge, body) = get_(api, "/plain", Some(bad)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge.as_deref(),
            Some(r#"Bearer error="invalid_token""#)
        );
        assert_eq!(body, r#"{"error":"invalid_token"}"#, "no details");
    }

    // Revoked: the strict route refuses at once, the plain one until exp.
    assert!(manager.revoke("alice", s.id().unwrap()).await.unwrap());
    let (status, challenge, _) = get_(api, "/strict", Some(token.as_str())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge.as_deref(),
        Some(r#"Bearer error="invalid_token""#)
    );
    assert_eq!(
        get_(api, "/plain", Some(token.as_str())).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_extractor_without_its_layer_is_a_500_not_an_open_door() {
    let api =
        serve(Router::new().route("/plain", get(|Access(c): Access| async move { c.sub }))).await;
    assert_eq!(
        get_(api, "/plain", Some("x")).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
}
