//! The HTTP workloads: an axum app whose `/hit` handler reads one value and
//! increments a counter, and whose `/read` handler only reads both, driven
//! by an in-process client over loopback. `http` sends only `/hit`;
//! `http-read` (read-mostly, the common shape of real traffic) sends 19
//! `/read` for every `/hit`.
//! Each connection logs out when its time is up (after the clock stops), so
//! a run leaves no sessions behind in a shared Redis.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{header, Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use session_axum::{CurrentSession, SessionLayer, TransportConfig};
use session_core::SessionManager;

use crate::measure::{summarize, Phase};

/// The no-session ceiling.
pub fn bare() -> Router {
    Router::new()
        .route("/init", post(|| async { "ok" }))
        .route("/hit", get(|| async { "1" }))
        .route("/read", get(|| async { "1" }))
        .route("/logout", post(|| async { "ok" }))
}

/// Our layer: read `name`, increment `counter` (a versioned write).
pub fn ours(manager: SessionManager) -> Router {
    Router::new()
        .route(
            "/init",
            post(|s: CurrentSession| async move {
                s.insert("name", &"Ada Lovelace").expect("insert");
                s.insert("counter", &0u64).expect("insert");
                "ok"
            }),
        )
        .route(
            "/hit",
            get(|s: CurrentSession| async move {
                let name: Option<String> = s.get("name").expect("get");
                assert!(name.is_some());
                let n = s
                    .modify("counter", |c: Option<u64>| c.unwrap_or(0) + 1)
                    .await
                    .expect("increment");
                n.to_string()
            }),
        )
        .route(
            "/read",
            get(|s: CurrentSession| async move {
                let name: Option<String> = s.get("name").expect("get");
                assert!(name.is_some());
                let n: Option<u64> = s.get("counter").expect("get");
                n.unwrap_or(0).to_string()
            }),
        )
        .route(
            "/logout",
            post(|s: CurrentSession| async move {
                s.logout();
                "ok"
            }),
        )
        .layer(SessionLayer::new(manager, TransportConfig::development()))
}

/// tower-sessions on the same kind of store.
#[cfg(feature = "compare")]
pub fn tower<S>(store: S) -> Router
where
    S: tower_sessions::SessionStore + Clone,
{
    use tower_sessions::{Session, SessionManagerLayer};
    Router::new()
        .route(
            "/init",
            post(|s: Session| async move {
                s.insert("name", "Ada Lovelace").await.expect("insert");
                s.insert("counter", 0u64).await.expect("insert");
                "ok"
            }),
        )
        .route(
            "/hit",
            get(|s: Session| async move {
                let name: Option<String> = s.get("name").await.expect("get");
                assert!(name.is_some());
                let n: u64 = s.get("counter").await.expect("get").unwrap_or(0) + 1;
                s.insert("counter", n).await.expect("insert");
                n.to_string()
            }),
        )
        .route(
            "/read",
            get(|s: Session| async move {
                let name: Option<String> = s.get("name").await.expect("get");
                assert!(name.is_some());
                let n: Option<u64> = s.get("counter").await.expect("get");
                n.unwrap_or(0).to_string()
            }),
        )
        .route(
            "/logout",
            post(|s: Session| async move {
                s.flush().await.expect("flush");
                "ok"
            }),
        )
        .layer(SessionManagerLayer::new(store).with_secure(false))
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    addr
}

/// What the clients send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// Every request writes (`/hit`): phase `http`.
    Writes,
    /// 19 reads (`/read`) for each write (`/hit`): phase `http-read`.
    ReadMostly,
}

impl Mix {
    pub fn phase(self) -> &'static str {
        match self {
            Self::Writes => "http",
            Self::ReadMostly => "http-read",
        }
    }

    /// The path of a connection's `n`th request (from 0).
    fn path(self, n: usize) -> &'static str {
        match self {
            Self::ReadMostly if n % 20 != 19 => "read",
            _ => "hit",
        }
    }
}

/// How long each connection keeps sending.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    /// For this long.
    Time(Duration),
    /// This many requests (for counting instructions, not timing).
    Requests(usize),
}

/// Serves `app` and drives it with `connections` keep-alive connections, each
/// with its own session (made by `POST /init`), within `budget`.
pub async fn drive(app: Router, connections: usize, budget: Budget, mix: Mix) -> Phase {
    let addr = serve(app).await;
    let start = Arc::new(tokio::sync::Barrier::new(connections + 1));
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let start = start.clone();
            tokio::spawn(async move {
                let client = Client::builder(TokioExecutor::new())
                    .pool_max_idle_per_host(1)
                    .build_http::<Full<Bytes>>();
                let init = client
                    .request(
                        Request::post(format!("http://{addr}/init"))
                            .body(Full::new(Bytes::new()))
                            .expect("request"),
                    )
                    .await
                    .expect("POST /init");
                let mut cookie = init
                    .headers()
                    .get(header::SET_COOKIE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(';').next())
                    .map(str::to_owned);
                let _ = init.into_body().collect().await;
                start.wait().await;
                let began = Instant::now();
                let more = |sent: usize| match budget {
                    Budget::Time(d) => began.elapsed() < d,
                    Budget::Requests(n) => sent < n,
                };
                let mut lat = Vec::new();
                let mut sent = 0;
                while more(sent) {
                    let path = mix.path(sent);
                    sent += 1;
                    let mut req = Request::get(format!("http://{addr}/{path}"));
                    if let Some(c) = &cookie {
                        req = req.header(header::COOKIE, c);
                    }
                    let t = Instant::now();
                    let res = client
                        .request(req.body(Full::new(Bytes::new())).expect("request"))
                        .await
                        .expect("GET /hit or /read");
                    assert_eq!(res.status(), StatusCode::OK);
                    // A client-side session comes back whole with each
                    // write: keep the newest, as a browser does.
                    if let Some(next) = res
                        .headers()
                        .get(header::SET_COOKIE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.split(';').next())
                    {
                        cookie = Some(next.to_owned());
                    }
                    let _ = res.into_body().collect().await.expect("body");
                    lat.push(t.elapsed());
                }
                // The wall time ends here: the logout is not measured.
                let ended = Instant::now();
                let mut logout = Request::post(format!("http://{addr}/logout"));
                if let Some(c) = &cookie {
                    logout = logout.header(header::COOKIE, c);
                }
                let res = client
                    .request(logout.body(Full::new(Bytes::new())).expect("request"))
                    .await
                    .expect("POST /logout");
                assert_eq!(res.status(), StatusCode::OK);
                let _ = res.into_body().collect().await;
                (lat, ended)
            })
        })
        .collect();
    start.wait().await;
    let began = Instant::now();
    let mut all = Vec::new();
    let mut last = began;
    for t in tasks {
        let (lat, ended) = t.await.expect("a client task panicked");
        all.extend(lat);
        last = last.max(ended);
    }
    summarize(mix.phase(), all, last - began)
}
