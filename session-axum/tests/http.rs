//! The layer driven over real HTTP: a real axum server on loopback, a real
//! HTTP client, exact `Set-Cookie` attributes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use session_axum::{CurrentSession, SessionLayer, TransportConfig, TOKEN_HEADER};
use session_core::{
    Error, MemoryStore, Record, Result, SessionConfig, SessionId, SessionKey, SessionManager,
    SessionStore, Timestamp,
};

/// A real MemoryStore behind a switch that makes writes fail (a store
/// outage), and a counter of loads (to prove when no round trip happens).
#[derive(Debug, Default)]
struct Faulty {
    inner: MemoryStore,
    fail_writes: AtomicBool,
    loads: AtomicU64,
}

impl Faulty {
    fn check(&self) -> Result<()> {
        if self.fail_writes.load(Ordering::SeqCst) {
            return Err(Error::transient("memory", "injected outage"));
        }
        Ok(())
    }
}

#[async_trait]
impl SessionStore for Faulty {
    async fn create(&self, r: &Record) -> Result<()> {
        self.check()?;
        self.inner.create(r).await
    }
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load(key).await
    }
    async fn update(&self, r: &Record, v: u64) -> Result<()> {
        self.check()?;
        self.inner.update(r, v).await
    }
    async fn touch(&self, key: &SessionKey, at: Timestamp) -> Result<()> {
        self.check()?;
        self.inner.touch(key, at).await
    }
    async fn rotate(&self, old: &SessionKey, r: &Record, v: u64) -> Result<()> {
        self.check()?;
        self.inner.rotate(old, r, v).await
    }
    async fn delete(&self, key: &SessionKey) -> Result<bool> {
        self.check()?;
        self.inner.delete(key).await
    }
    async fn delete_id(&self, user: &str, id: SessionId) -> Result<bool> {
        self.check()?;
        self.inner.delete_id(user, id).await
    }
    async fn list_user(&self, user: &str) -> Result<Vec<Record>> {
        self.inner.list_user(user).await
    }
    async fn delete_user(&self, user: &str, keep: Option<&SessionKey>) -> Result<u64> {
        self.inner.delete_user(user, keep).await
    }
    async fn purge_expired(&self) -> Result<u64> {
        self.inner.purge_expired().await
    }
}

const ABSOLUTE: Duration = Duration::from_secs(3600);

async fn read(s: CurrentSession) -> Json<Value> {
    Json(json!({ "n": s.get::<i64>("n").unwrap(), "user": s.user() }))
}

async fn write(s: CurrentSession) -> &'static str {
    s.insert("n", &1).unwrap();
    "ok"
}

async fn login(s: CurrentSession) -> &'static str {
    s.login("alice").unwrap();
    "ok"
}

async fn remember(s: CurrentSession) -> &'static str {
    s.set_remember(true);
    s.login("alice").unwrap();
    "ok"
}

async fn logout(s: CurrentSession) -> &'static str {
    s.logout();
    "bye"
}

async fn count(s: CurrentSession) -> Json<Value> {
    let n = s
        .modify("count", |c: Option<u64>| c.unwrap_or(0) + 1)
        .await
        .unwrap();
    Json(json!({ "count": n }))
}

struct App {
    addr: SocketAddr,
    store: Arc<Faulty>,
    manager: SessionManager,
}

async fn serve(transport: TransportConfig) -> App {
    let store = Arc::new(Faulty::default());
    let config = SessionConfig::default().absolute_timeout(ABSOLUTE);
    let manager = SessionManager::new(store.clone(), config).unwrap();
    let app = Router::new()
        .route("/read", get(read))
        .route("/write", post(write))
        .route("/login", post(login))
        .route("/remember", post(remember))
        .route("/logout", post(logout))
        .route("/count", post(count))
        .layer(SessionLayer::new(manager.clone(), transport));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    App {
        addr,
        store,
        manager,
    }
}

struct Reply {
    status: StatusCode,
    set_cookies: Vec<String>,
    token_header: Option<String>,
    body: Value,
}

impl Reply {
    fn only_cookie(&self) -> &str {
        assert_eq!(
            self.set_cookies.len(),
            1,
            "one Set-Cookie: {:?}",
            self.set_cookies
        );
        &self.set_cookies[0]
    }

    /// The cookie value from the one Set-Cookie header.
    fn token(&self) -> String {
        let c = cookie::Cookie::parse(self.only_cookie().to_owned()).unwrap();
        c.value().to_owned()
    }
}

async fn send(app: &App, method: Method, path: &str, headers: &[(&str, String)]) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", app.addr));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let res = client
        .request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let set_cookies = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let token_header = res
        .headers()
        .get(TOKEN_HEADER)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        set_cookies,
        token_header,
        body,
    }
}

fn cookie(token: &str) -> (&'static str, String) {
    ("cookie", format!("__Host-session={token}"))
}

#[tokio::test]
async fn a_new_session_sets_a_cookie_with_exactly_the_safe_defaults() {
    let app = serve(TransportConfig::default()).await;
    let r = send(&app, Method::POST, "/write", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let token = r.token();
    assert_eq!(token.len(), 43);
    assert_eq!(
        r.only_cookie(),
        format!("__Host-session={token}; HttpOnly; SameSite=Lax; Secure; Path=/"),
        "no Domain, no Max-Age for a browser-session cookie"
    );
}

#[tokio::test]
async fn our_cookie_is_found_among_many_large_other_cookies() {
    let app = serve(TransportConfig::default()).await;
    let token = send(&app, Method::POST, "/write", &[]).await.token();
    let header = format!(
        "analytics={}; prefs={}; __Host-session={token}; z=1",
        "x".repeat(6000),
        "y".repeat(3000)
    );
    let r = send(&app, Method::GET, "/read", &[("cookie", header)]).await;
    assert_eq!(r.body["n"], 1);
}

#[tokio::test]
async fn responses_that_issue_a_token_are_not_cacheable() {
    let app = serve(TransportConfig::default()).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let post = Request::post(format!("http://{}/write", app.addr))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = client.request(post).await.unwrap();
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    let get = Request::get(format!("http://{}/read", app.addr))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = client.request(get).await.unwrap();
    assert!(
        res.headers().get(header::CACHE_CONTROL).is_none(),
        "plain reads stay cacheable"
    );
}

#[tokio::test]
async fn the_cookie_loads_the_session_on_the_next_request() {
    let app = serve(TransportConfig::default()).await;
    let token = send(&app, Method::POST, "/write", &[]).await.token();
    let r = send(&app, Method::GET, "/read", &[cookie(&token)]).await;
    assert_eq!(r.body, json!({ "n": 1, "user": null }));
    assert!(r.set_cookies.is_empty(), "a read sends no cookie");
}

#[tokio::test]
async fn a_read_without_a_cookie_stores_nothing_and_sets_nothing() {
    let app = serve(TransportConfig::default()).await;
    let r = send(&app, Method::GET, "/read", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.set_cookies.is_empty());
    assert!(app.store.inner.is_empty());
}

#[tokio::test]
async fn malformed_oversized_and_unknown_cookies_mean_no_session_and_no_error() {
    let app = serve(TransportConfig::default()).await;
    let malformed = [
        "__Host-session=not-a-token".to_owned(),
        "__Host-session=\"quoted\"; other=1".to_owned(),
        format!("__Host-session={}", "A".repeat(44)),
        "=; ;;; __Host-session".to_owned(),
        "__Host-session=%00%01".to_owned(),
    ];
    for header in &malformed {
        let r = send(&app, Method::GET, "/read", &[("cookie", header.clone())]).await;
        assert_eq!(r.status, StatusCode::OK, "{header}");
        assert_eq!(r.body, json!({ "n": null, "user": null }));
    }
    assert_eq!(
        app.store.loads.load(Ordering::SeqCst),
        0,
        "no store round trip for tokens that cannot parse"
    );

    let oversized = format!("__Host-session={}", "A".repeat(5000));
    let r = send(&app, Method::GET, "/read", &[("cookie", oversized)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        app.store.loads.load(Ordering::SeqCst),
        0,
        "an oversized value is not looked up"
    );

    let unknown = session_core::SessionToken::generate().expose();
    let r = send(&app, Method::GET, "/read", &[cookie(&unknown)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.set_cookies.is_empty(),
        "an unknown token is not cleared: the client may hold a newer one by now"
    );
    assert!(
        app.store.inner.is_empty(),
        "no session is created unless the handler writes"
    );
}

#[tokio::test]
async fn login_rotates_the_cookie_and_the_old_one_stops_working() {
    let app = serve(TransportConfig::default()).await;
    let before = send(&app, Method::POST, "/write", &[]).await.token();
    let r = send(&app, Method::POST, "/login", &[cookie(&before)]).await;
    let after = r.token();
    assert_ne!(after, before);
    let old = send(&app, Method::GET, "/read", &[cookie(&before)]).await;
    assert_eq!(old.body, json!({ "n": null, "user": null }));
    let new = send(&app, Method::GET, "/read", &[cookie(&after)]).await;
    assert_eq!(
        new.body,
        json!({ "n": 1, "user": "alice" }),
        "data kept across login"
    );
}

#[tokio::test]
async fn remembered_sessions_get_max_age_no_longer_than_the_absolute_timeout() {
    let app = serve(TransportConfig::default()).await;
    let r = send(&app, Method::POST, "/remember", &[]).await;
    let c = cookie::Cookie::parse(r.only_cookie().to_owned()).unwrap();
    let max_age = c.max_age().expect("Max-Age for a remembered session");
    assert!(max_age.whole_seconds() > 0);
    assert!(max_age.whole_seconds() <= ABSOLUTE.as_secs() as i64);
    assert_eq!(c.secure(), Some(true));
    assert_eq!(c.http_only(), Some(true));
    assert_eq!(c.domain(), None);
}

#[tokio::test]
async fn logout_sends_a_clearing_cookie_and_ends_the_session_server_side() {
    let app = serve(TransportConfig::default()).await;
    let token = send(&app, Method::POST, "/login", &[]).await.token();
    let r = send(&app, Method::POST, "/logout", &[cookie(&token)]).await;
    assert_eq!(r.status, StatusCode::OK);
    let clear = r.only_cookie();
    assert!(clear.starts_with("__Host-session=; "), "{clear}");
    assert!(clear.contains("Max-Age=0") && clear.contains("Secure") && clear.contains("Path=/"));
    assert!(app.store.inner.is_empty());
    let again = send(&app, Method::GET, "/read", &[cookie(&token)]).await;
    assert_eq!(again.body["user"], Value::Null);
}

#[tokio::test]
async fn development_mode_drops_secure_and_the_host_prefix() {
    let app = serve(TransportConfig::development()).await;
    let r = send(&app, Method::POST, "/write", &[]).await;
    let token = r.token();
    assert_eq!(
        r.only_cookie(),
        format!("session={token}; HttpOnly; SameSite=Lax; Path=/")
    );
    let back = send(
        &app,
        Method::GET,
        "/read",
        &[("cookie", format!("session={token}"))],
    )
    .await;
    assert_eq!(back.body["n"], 1);
}

#[tokio::test]
async fn bearer_clients_get_tokens_in_a_header_and_never_a_cookie() {
    let app = serve(TransportConfig::default().with_bearer()).await;
    let first = send(
        &app,
        Method::POST,
        "/login",
        &[("authorization", "Bearer junk".into())],
    )
    .await;
    let token = first
        .token_header
        .clone()
        .expect("a bearer client gets its new token in a header");
    assert!(
        first.set_cookies.is_empty(),
        "no cookie for a bearer client"
    );
    let r = send(
        &app,
        Method::GET,
        "/read",
        &[("authorization", format!("Bearer {token}"))],
    )
    .await;
    assert_eq!(r.body["user"], "alice");
    // Cookies keep working beside bearer tokens.
    let c = send(&app, Method::POST, "/write", &[]).await;
    assert!(c.token_header.is_none());
    assert_eq!(c.token().len(), 43);
}

#[tokio::test]
async fn a_failed_commit_is_a_503_not_a_lost_write() {
    let app = serve(TransportConfig::default()).await;
    app.store.fail_writes.store(true, Ordering::SeqCst);
    let r = send(&app, Method::POST, "/write", &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        r.set_cookies.is_empty(),
        "no cookie for a session that was not stored"
    );
    assert_eq!(r.body["error"], "session store unavailable");
}

#[tokio::test]
async fn a_write_to_a_session_revoked_during_the_request_is_a_401() {
    let app = serve(TransportConfig::default()).await;
    let token = send(&app, Method::POST, "/login", &[]).await.token();
    // A handler that writes, while (from its point of view) another device
    // logs the user out everywhere before the response is committed.
    let manager = app.manager.clone();
    let revoking = Router::new()
        .route(
            "/write",
            post(move |s: CurrentSession| async move {
                s.insert("late", &true).unwrap();
                manager.revoke_user("alice", None).await.unwrap();
                "handler thinks it wrote"
            }),
        )
        .layer(SessionLayer::new(
            app.manager.clone(),
            TransportConfig::default(),
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, revoking).await.unwrap() });
    let other = App {
        addr,
        store: app.store.clone(),
        manager: app.manager.clone(),
    };
    let r = send(&other, Method::POST, "/write", &[cookie(&token)]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.set_cookies.is_empty());
    assert!(
        app.store.inner.is_empty(),
        "the revoked session did not come back"
    );
}

#[tokio::test]
async fn concurrent_increments_over_http_are_never_lost() {
    let app = Arc::new(serve(TransportConfig::default()).await);
    let token = send(&app, Method::POST, "/write", &[]).await.token();
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (app, token) = (app.clone(), token.clone());
            tokio::spawn(async move { send(&app, Method::POST, "/count", &[cookie(&token)]).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().status, StatusCode::OK);
    }
    let r = send(&app, Method::GET, "/read", &[cookie(&token)]).await;
    assert_eq!(r.status, StatusCode::OK);
    let s = app.manager.load(Some(&token)).await.unwrap();
    assert_eq!(s.get::<u64>("count").unwrap(), Some(32));
}

#[tokio::test]
async fn undecodable_stored_data_starts_a_fresh_session_instead_of_failing() {
    let app = serve(TransportConfig::default()).await;
    let token = send(&app, Method::POST, "/write", &[]).await.token();
    // The stored data is damaged (or sealed under a key the ring dropped).
    let key = session_core::SessionToken::parse(&token).unwrap().key();
    let mut raw = app.store.inner.load(&key).await.unwrap().unwrap();
    raw.data = b"\x01{not json".to_vec();
    raw.version += 1;
    app.store.inner.update(&raw, raw.version - 1).await.unwrap();

    // A read answers normally, as a new empty session, and tells the
    // client to drop the unusable cookie.
    let r = send(&app, Method::GET, "/read", &[cookie(&token)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({ "n": null, "user": null }));
    let clearing = cookie::Cookie::parse(r.only_cookie().to_owned()).unwrap();
    assert_eq!(clearing.value(), "");
    assert_eq!(clearing.max_age(), Some(cookie::time::Duration::ZERO));

    // A write on it gets a fresh token; the damaged record is not reused.
    let r = send(&app, Method::POST, "/write", &[cookie(&token)]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_ne!(r.token(), token);
}
