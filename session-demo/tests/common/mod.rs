//! The demo served in-process on a loopback port, and a small HTTP client
//! with a one-cookie jar.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as Hyper;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use session_core::{MemoryStore, SessionConfig, SessionManager};

pub const COOKIE: &str = "__Host-session";

pub struct Demo {
    pub addr: SocketAddr,
    pub manager: SessionManager,
    pub store: Arc<MemoryStore>,
}

pub async fn start() -> Demo {
    let store = Arc::new(MemoryStore::new());
    let manager = SessionManager::new(store.clone(), SessionConfig::default()).unwrap();
    let app = session_demo::app::router(manager.clone(), session_demo::app::transport(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Demo {
        addr,
        manager,
        store,
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub set_cookies: Vec<String>,
    pub text: String,
    pub json: Value,
}

/// A client that keeps the session cookie like a browser would.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    http: Hyper<HttpConnector, Full<Bytes>>,
    pub token: Arc<Mutex<Option<String>>>,
    pub user_agent: String,
}

impl Client {
    pub fn new(demo: &Demo, user_agent: &str) -> Self {
        Self::at(demo.addr, user_agent)
    }

    /// A client of a demo served elsewhere (the binary, say).
    pub fn at(addr: SocketAddr, user_agent: &str) -> Self {
        Self {
            addr,
            http: Hyper::builder(TokioExecutor::new()).build_http(),
            token: Arc::new(Mutex::new(None)),
            user_agent: user_agent.to_owned(),
        }
    }

    pub fn token(&self) -> Option<String> {
        self.token.lock().unwrap().clone()
    }

    pub fn set_token(&self, token: Option<String>) {
        *self.token.lock().unwrap() = token;
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        self.send_with(method, path, content_type, body, &[]).await
    }

    /// [`Client::send`] with extra request headers.
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header(header::USER_AGENT, &self.user_agent);
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        if let Some(t) = self.token() {
            req = req.header(header::COOKIE, format!("{COOKIE}={t}"));
        }
        for (name, value) in extra {
            req = req.header(*name, *value);
        }
        let res = self
            .http
            .request(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let set_cookies: Vec<String> = res
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for c in &set_cookies {
            let (pair, _) = c.split_once(';').unwrap_or((c, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if name == COOKIE {
                self.set_token((!value.is_empty()).then(|| value.to_owned()));
            }
        }
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            set_cookies,
            text,
            json,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None, Vec::new()).await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> Reply {
        self.send(
            Method::POST,
            path,
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await
    }

    pub async fn post_empty(&self, path: &str) -> Reply {
        self.send(Method::POST, path, Some("application/json"), Vec::new())
            .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, Some("application/json"), Vec::new())
            .await
    }

    pub async fn post_form(&self, path: &str, form: &str) -> Reply {
        self.send(
            Method::POST,
            path,
            Some("application/x-www-form-urlencoded"),
            form.as_bytes().to_vec(),
        )
        .await
    }

    pub async fn login(&self, user: &str) -> Reply {
        self.post_json(
            "/api/login",
            serde_json::json!({ "username": user, "password": format!("{user}-password") }),
        )
        .await
    }
}
