//! Cookie and Authorization header handling in `SessionLayer`: any header
//! bytes give an ordinary answer from the app (never a panic, never a 5xx),
//! and any cookie in the answer carries a fresh, well-formed token.
#![no_main]

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::body::Body;
use axum_core::response::Response;
use cookie::Cookie;
use http::{header, HeaderValue, Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use session_axum::{SessionLayer, SessionService, TransportConfig};
use session_core::{MemoryStore, Session, SessionConfig, SessionManager, SessionToken};
use tower_layer::Layer;
use tower_service::Service;

/// The app: counts visits in the session.
#[derive(Clone)]
struct App;

impl Service<Request<Body>> for App {
    type Response = Response;
    type Error = Infallible;
    type Future = Ready<Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let session = req
            .extensions()
            .get::<Session>()
            .expect("the layer always provides a session")
            .clone();
        let n: u64 = session.get("n").ok().flatten().unwrap_or(0);
        session.insert("n", &(n + 1)).expect("insert");
        ready(Ok(Response::new(Body::empty())))
    }
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    service: SessionService<App>,
}

thread_local! {
    static HARNESS: std::cell::RefCell<Harness> = std::cell::RefCell::new(harness());
}

fn harness() -> Harness {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let manager = SessionManager::new(Arc::new(MemoryStore::new()), SessionConfig::default())
        .expect("config");
    let transport = TransportConfig::default().with_bearer();
    let service = SessionLayer::new(manager, transport).layer(App);
    Harness { runtime, service }
}

fuzz_target!(|data: &[u8]| {
    // First byte picks the header, the rest is its value.
    let Some((&which, value)) = data.split_first() else {
        return;
    };
    let Ok(value) = HeaderValue::from_bytes(value) else {
        return;
    };
    let name = if which % 2 == 0 {
        header::COOKIE
    } else {
        header::AUTHORIZATION
    };
    let req = Request::builder()
        .header(name, value.clone())
        .body(Body::empty())
        .expect("request");
    HARNESS.with(|h| {
        let h = &mut *h.borrow_mut();
        let res = h.runtime.block_on(h.service.call(req)).expect("infallible");
        assert_eq!(res.status(), StatusCode::OK, "header {value:?}");
        // Whatever was presented, what comes back is a fresh, well-formed
        // token in a cookie with the safe attributes, never the input.
        for set in res.headers().get_all(header::SET_COOKIE) {
            let set = set.to_str().expect("ascii Set-Cookie");
            let cookie = Cookie::parse(set).expect("a Set-Cookie we wrote parses");
            assert!(SessionToken::parse(cookie.value()).is_some(), "{set}");
            assert_eq!(cookie.http_only(), Some(true));
            assert_eq!(cookie.secure(), Some(true));
        }
    });
});
