//! Client-side sessions through the layer, over real HTTP: the same handlers
//! as server-side sessions, the sealed cookie's attributes, chunks set and
//! cleared like a browser keeps them, logout, the size error, tampering.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::routing::{get, post};
use axum::{Json, Router};
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use session_axum::{CurrentSession, SessionLayer, TransportConfig};
use session_core::{ClientSide, KeyRing, MemoryStore, SessionConfig, SessionManager};

async fn read(s: CurrentSession) -> Json<Value> {
    let note: Option<String> = s.get("note").unwrap();
    Json(json!({ "user": s.user(), "note_len": note.map(|n| n.len()) }))
}

async fn note(s: CurrentSession, body: String) -> &'static str {
    s.insert("note", &body).unwrap();
    "ok"
}

async fn login(s: CurrentSession) -> &'static str {
    s.login("alice").unwrap();
    "ok"
}

async fn logout(s: CurrentSession) -> &'static str {
    s.logout();
    "bye"
}

/// The handlers are the same for both kinds of manager.
fn app(manager: SessionManager, transport: TransportConfig) -> Router {
    Router::new()
        .route("/read", get(read))
        .route("/note", post(note))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(SessionLayer::new(manager, transport))
}

fn client_side(chunks: usize) -> SessionManager {
    let config = SessionConfig::default().sealing_keys(KeyRing::new(1, KeyRing::generate_key()));
    SessionManager::client_side(config, ClientSide::new().chunks(chunks)).unwrap()
}

async fn serve(manager: SessionManager, transport: TransportConfig) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = app(manager, transport);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A client that keeps cookies the way a browser does: by name, replaced by
/// each `Set-Cookie`, dropped by one with `Max-Age=0`.
struct Browser {
    addr: SocketAddr,
    jar: BTreeMap<String, String>,
    /// The raw `Set-Cookie` headers of the last response.
    last: Vec<String>,
}

impl Browser {
    fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            jar: BTreeMap::new(),
            last: Vec::new(),
        }
    }

    async fn send(&mut self, method: Method, path: &str, body: String) -> (StatusCode, Value) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        if !self.jar.is_empty() {
            let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req = req.header(header::COOKIE, cookies.join("; "));
        }
        let res = client
            .request(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = res.status();
        self.last = res
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for raw in &self.last {
            let c = cookie::Cookie::parse(raw.clone()).unwrap();
            if c.max_age() == Some(cookie::time::Duration::ZERO) {
                self.jar.remove(c.name());
            } else {
                self.jar.insert(c.name().to_owned(), c.value().to_owned());
            }
        }
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn get(&mut self, path: &str) -> Value {
        let (status, body) = self.send(Method::GET, path, String::new()).await;
        assert_eq!(status, StatusCode::OK);
        body
    }

    async fn post(&mut self, path: &str, body: String) -> StatusCode {
        self.send(Method::POST, path, body).await.0
    }

    fn names(&self) -> Vec<&str> {
        self.jar.keys().map(String::as_str).collect()
    }
}

#[tokio::test]
async fn the_sealed_cookie_has_the_safe_attributes_and_carries_the_session() {
    let addr = serve(client_side(1), TransportConfig::default()).await;
    let mut b = Browser::new(addr);
    assert_eq!(
        b.get("/read").await,
        json!({ "user": null, "note_len": null })
    );
    assert!(b.last.is_empty(), "no write, no cookie");
    assert_eq!(b.post("/login", String::new()).await, StatusCode::OK);
    assert_eq!(b.last.len(), 1);
    let set = &b.last[0];
    assert!(set.starts_with("__Host-session="), "{set}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    assert!(!set.contains("Domain"), "{set}");
    assert!(
        !set.contains("Max-Age"),
        "not remembered: a browser-session cookie"
    );
    assert_eq!(b.get("/read").await["user"], "alice");
}

#[tokio::test]
async fn a_large_session_is_chunked_and_shrinking_it_clears_every_stale_chunk() {
    let addr = serve(client_side(4), TransportConfig::development()).await;
    let mut b = Browser::new(addr);
    assert_eq!(b.post("/note", "x".repeat(10 * 1024)).await, StatusCode::OK);
    assert_eq!(
        b.names(),
        ["session", "session.1", "session.2", "session.3"]
    );
    for raw in &b.last {
        let c = cookie::Cookie::parse(raw.clone()).unwrap();
        assert!(
            c.name().len() + c.value().len() <= 4096,
            "{} is too big",
            c.name()
        );
        assert_eq!(c.http_only(), Some(true));
        assert_eq!(c.path(), Some("/"));
    }
    assert_eq!(b.get("/read").await["note_len"], 10 * 1024);

    assert_eq!(b.post("/note", "y".repeat(5000)).await, StatusCode::OK);
    assert_eq!(
        b.names(),
        ["session", "session.1"],
        "stale chunks 2 and 3 cleared"
    );
    assert_eq!(b.get("/read").await["note_len"], 5000);

    assert_eq!(b.post("/note", "z".into()).await, StatusCode::OK);
    assert_eq!(b.names(), ["session"]);
    assert_eq!(b.get("/read").await["note_len"], 1);
}

#[tokio::test]
async fn logout_clears_the_cookie_and_every_chunk() {
    let addr = serve(client_side(4), TransportConfig::development()).await;
    let mut b = Browser::new(addr);
    b.post("/note", "x".repeat(6000)).await;
    b.post("/login", String::new()).await;
    assert_eq!(
        b.names().len(),
        3,
        "6000 bytes sealed and in base64 take 3 cookies"
    );
    assert_eq!(b.post("/logout", String::new()).await, StatusCode::OK);
    assert!(b.names().is_empty(), "left: {:?}", b.names());
    assert_eq!(b.get("/read").await["user"], Value::Null);
}

#[tokio::test]
async fn a_lost_chunk_or_a_tampered_cookie_is_a_fresh_session_not_an_error_page() {
    let addr = serve(client_side(4), TransportConfig::development()).await;
    let mut b = Browser::new(addr);
    b.post("/login", String::new()).await;
    b.post("/note", "x".repeat(6000)).await;
    assert_eq!(b.get("/read").await["user"], "alice");
    b.jar.remove("session.1");
    assert_eq!(
        b.get("/read").await,
        json!({ "user": null, "note_len": null })
    );

    let mut b = Browser::new(addr);
    b.post("/login", String::new()).await;
    let value = b.jar.get_mut("session").unwrap();
    let last = value.pop().unwrap();
    value.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(b.get("/read").await["user"], Value::Null);
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_session_too_large_answers_500_sets_no_cookie_and_logs_its_size_and_the_limit() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    )
    .unwrap();
    let addr = serve(client_side(1), TransportConfig::development()).await;
    let mut b = Browser::new(addr);
    b.post("/note", "small".into()).await;
    let before = b.jar.clone();
    let (status, body) = b.send(Method::POST, "/note", "x".repeat(5000)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, json!({ "error": "session too large" }));
    assert!(b.last.is_empty(), "nothing is set: {:?}", b.last);
    assert_eq!(b.jar, before);
    assert_eq!(
        b.get("/read").await["note_len"],
        5,
        "the old session is intact"
    );
    let logged = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let line = logged
        .lines()
        .find(|l| l.contains("does not fit"))
        .unwrap_or_else(|| panic!("no size line in {logged}"));
    assert!(
        line.contains("limit 4096") || line.contains("limit=4"),
        "{line}"
    );
    assert!(line.contains("size="), "{line}");
}

#[test]
#[should_panic(expected = "cookies only")]
fn bearer_transport_with_client_side_sessions_is_refused_at_start_up() {
    let _ = SessionLayer::new(client_side(1), TransportConfig::default().with_bearer());
}

#[tokio::test]
async fn the_same_handlers_serve_both_kinds_of_session() {
    let server =
        SessionManager::new(Arc::new(MemoryStore::new()), SessionConfig::default()).unwrap();
    for manager in [server, client_side(1)] {
        let addr = serve(manager, TransportConfig::development()).await;
        let mut b = Browser::new(addr);
        b.post("/login", String::new()).await;
        b.post("/note", "hello".into()).await;
        assert_eq!(
            b.get("/read").await,
            json!({ "user": "alice", "note_len": 5 })
        );
        b.post("/logout", String::new()).await;
        assert!(b.names().is_empty());
    }
}
