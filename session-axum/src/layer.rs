//! [`SessionLayer`] and the service it wraps around a router.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::body::Body;
use axum_core::response::Response;
use http::{header, Request, StatusCode};
use session_core::{Error, SessionManager};
use tower_layer::Layer;
use tower_service::Service;

use crate::config::TransportConfig;
use crate::cookies::Transport;
use crate::cookies::{apply, presented, presented_sealed};

static WARNED_DEV_MODE: AtomicBool = AtomicBool::new(false);

/// Loads the request's session before the handler runs and commits it before
/// the response leaves.
///
/// The handler gets the [`Session`](session_core::Session) through the
/// [`CurrentSession`](crate::CurrentSession) extractor (or the request
/// extensions). A token that does not parse costs
/// no store round trip; an unknown or expired one yields a fresh session; a
/// session is stored only when the handler writes to it. If the commit fails,
/// the client gets `503 Service Unavailable` (transient store error, or a
/// version conflict that did not settle) or `500 Internal Server Error`
/// instead of the handler's response, never a silently lost write; a write to a
/// session revoked while the request ran gives `401 Unauthorized`. The layer
/// sends a clearing cookie only on logout: a request that carries a stale
/// token (say, sent just before another tab logged in and rotated it) must
/// not wipe the fresh one.
///
/// ```no_run
/// # async fn demo() -> session_core::Result<()> {
/// use std::sync::Arc;
/// use axum::{routing::get, Router};
/// use session_axum::{CurrentSession, SessionLayer, TransportConfig};
/// use session_core::{MemoryStore, SessionConfig, SessionManager};
///
/// async fn visits(session: CurrentSession) -> String {
///     let n = session.modify("visits", |n: Option<u64>| n.unwrap_or(0) + 1).await.unwrap();
///     format!("visit {n}")
/// }
///
/// let manager = SessionManager::new(Arc::new(MemoryStore::new()), SessionConfig::default())?;
/// let app: Router = Router::new()
///     .route("/", get(visits))
///     .layer(SessionLayer::new(manager, TransportConfig::default()));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct SessionLayer {
    manager: SessionManager,
    config: Arc<TransportConfig>,
}

impl SessionLayer {
    /// A layer over `manager` with the given transport settings.
    ///
    /// # Panics
    /// If `manager` keeps client-side sessions and `config` turns on bearer
    /// tokens: client-side sessions travel in cookies only (a
    /// misconfiguration to fix at start-up, not at the first request).
    pub fn new(manager: SessionManager, config: TransportConfig) -> Self {
        assert!(
            !(manager.is_client_side() && config.bearer),
            "client-side sessions travel in cookies only: build the TransportConfig without \
             with_bearer, or use server-side sessions (SessionManager::new with a store)"
        );
        if !config.secure && !WARNED_DEV_MODE.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                cookie = %config.cookie_name,
                "session cookies are in development mode (no Secure flag, no __Host- prefix): \
                 for plain http on loopback only"
            );
        }
        Self {
            manager,
            config: Arc::new(config),
        }
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            manager: self.manager.clone(),
            config: self.config.clone(),
        }
    }
}

/// The service made by [`SessionLayer`].
#[derive(Clone, Debug)]
pub struct SessionService<S> {
    inner: S,
    manager: SessionManager,
    config: Arc<TransportConfig>,
}

fn error_response(status: StatusCode, message: &'static str) -> Response {
    let mut res = Response::new(Body::from(format!("{{\"error\":\"{message}\"}}")));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    res
}

fn store_failure(e: &Error) -> Response {
    if let Error::TooLarge { size, limit } = e {
        // Nothing was written and no cookie is sent: the client keeps the
        // session it had.
        tracing::error!(
            size,
            limit,
            "client-side session does not fit in its cookies ({size} bytes, limit {limit}); \
             store less in it, allow chunks (ClientSide::chunks), or use server-side sessions"
        );
        return error_response(StatusCode::INTERNAL_SERVER_ERROR, "session too large");
    }
    // The error's Display never contains a token, and neither do its
    // causes (stores never put a token in an error); all of them are
    // logged, so an operator sees why.
    tracing::error!(error = %session_core::error_chain(e), transient = e.is_transient(), "session store failed");
    if e.is_transient() || matches!(e, Error::Conflict) {
        let mut res = error_response(StatusCode::SERVICE_UNAVAILABLE, "session store unavailable");
        res.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        res
    } else {
        error_response(StatusCode::INTERNAL_SERVER_ERROR, "session store error")
    }
}

impl<S, ReqBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The clone is the one that was not polled ready; swap so the ready one runs.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let manager = self.manager.clone();
        let config = self.config.clone();
        Box::pin(async move {
            let (loaded, transport, presented, chunks) = match manager.client() {
                Some(client) => {
                    let sealed = presented_sealed(req.headers(), &config, client);
                    let presented = sealed.value.is_some();
                    let loaded = manager
                        .load_cookie(&config.cookie_name, sealed.value.as_deref())
                        .await;
                    (loaded, Transport::Cookie, presented, sealed.chunks)
                }
                None => {
                    let (token, transport) = presented(req.headers(), &config);
                    let presented = token.is_some();
                    let loaded = match token {
                        Some(token) => manager.load_token(token).await,
                        None => Ok(manager.new_session()),
                    };
                    (loaded, transport, presented, Vec::new())
                }
            };
            let session = match loaded {
                Ok(session) => session,
                Err(Error::Decode { what, .. }) => {
                    // Unreadable stored data (corrupt, or sealed under a retired
                    // key): start over rather than fail every request.
                    tracing::warn!(
                        what,
                        "stored session could not be decoded; starting a new one"
                    );
                    match manager.client() {
                        // A client-side session bound to this layer's cookie.
                        Some(_) => manager
                            .load_cookie(&config.cookie_name, None)
                            .await
                            .unwrap_or_else(|_| manager.replacement_session()),
                        None => manager.replacement_session(),
                    }
                }
                Err(e) => return Ok(store_failure(&e)),
            };
            // Never the token itself: the session's id and what happened.
            tracing::trace!(
                ?transport,
                presented,
                session = ?session.id(),
                "session loaded"
            );
            req.extensions_mut().insert(session.clone());
            let mut res = inner.call(req).await?;
            match session.commit().await {
                Ok(action) => {
                    // `TokenAction`'s Debug redacts the token.
                    tracing::trace!(session = ?session.id(), ?action, "session committed");
                    if !apply(&action, transport, &config, &chunks, res.headers_mut()) {
                        tracing::error!(?action, "session-axum cannot send this token action");
                        return Ok(error_response(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "session error",
                        ));
                    }
                }
                Err(Error::NotFound) => {
                    return Ok(error_response(StatusCode::UNAUTHORIZED, "session ended"));
                }
                Err(e) => return Ok(store_failure(&e)),
            }
            Ok(res)
        })
    }
}

#[cfg(test)]
mod log_tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

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

    /// Issue 20, item 8: the log line of a store failure carries the whole
    /// cause chain, not only the top error and its first source.
    #[test]
    fn a_store_failure_is_logged_with_its_whole_cause_chain() {
        #[derive(Debug)]
        struct Wrapper(std::io::Error);
        impl std::fmt::Display for Wrapper {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("pool timed out while waiting for an open connection")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let root = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let e = Error::transient("postgres", Wrapper(root));
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let response = tracing::subscriber::with_default(subscriber, || store_failure(&e));
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let logged = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        assert!(
            logged.contains(
                "transient postgres backend error: pool timed out while waiting for an open \
                 connection: connection refused"
            ),
            "{logged}"
        );
    }
}
