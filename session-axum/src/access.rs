//! Access-token extractors (feature `jwt`): [`Access`] verifies a
//! `session-jwt` access token without touching a store, [`StrictAccess`]
//! also confirms its session is still live. [`AccessTokenLayer`] gives them
//! the verifier.

use std::sync::Arc;

use axum_core::body::Body;
use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderValue, Request, StatusCode};
use session_core::SessionManager;
use session_jwt::{AccessClaims, Error, Verifier};
use tower_layer::Layer;
use tower_service::Service;

/// What the extractors need, shared by every request.
#[derive(Clone, Debug)]
struct AccessConfig {
    verifier: Verifier,
    manager: Option<SessionManager>,
}

/// Makes a [`Verifier`] (and, for [`StrictAccess`], the session manager)
/// available to the access-token extractors.
///
/// ```no_run
/// # fn demo(manager: session_core::SessionManager, verifier: session_jwt::Verifier) {
/// use axum::{routing::get, Router};
/// use session_axum::{Access, AccessTokenLayer};
///
/// async fn whoami(Access(claims): Access) -> String {
///     claims.sub
/// }
///
/// let app: Router = Router::new()
///     .route("/whoami", get(whoami))
///     .layer(AccessTokenLayer::new(verifier).with_manager(manager));
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct AccessTokenLayer {
    config: Arc<AccessConfig>,
}

impl AccessTokenLayer {
    /// Extractors verify with `verifier`.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            config: Arc::new(AccessConfig {
                verifier,
                manager: None,
            }),
        }
    }

    /// [`StrictAccess`] checks sessions in `manager`'s store.
    pub fn with_manager(self, manager: SessionManager) -> Self {
        Self {
            config: Arc::new(AccessConfig {
                verifier: self.config.verifier.clone(),
                manager: Some(manager),
            }),
        }
    }
}

impl<S> Layer<S> for AccessTokenLayer {
    type Service = AccessTokenService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessTokenService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service made by [`AccessTokenLayer`].
#[derive(Clone, Debug)]
pub struct AccessTokenService<S> {
    inner: S,
    config: Arc<AccessConfig>,
}

impl<S, B> Service<Request<B>> for AccessTokenService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.config.clone());
        self.inner.call(req)
    }
}

/// The claims of a valid access token in `Authorization: Bearer`, verified
/// without a store round trip (valid until its `exp`, even if its session
/// was revoked meanwhile; use [`StrictAccess`] where that matters).
///
/// Rejections are `401` with `WWW-Authenticate: Bearer error="invalid_token"`
/// (just `Bearer` when no token was sent, as RFC 6750 asks) and a body of
/// `{"error":"invalid_token"}`: never the reason, which is logged at debug.
#[derive(Clone, Debug)]
pub struct Access(pub AccessClaims);

/// As [`Access`], and the token's session must still be live: one store
/// call. A revoked session's tokens are refused from the next request on.
/// A store failure is `503` with `Retry-After: 1`.
#[derive(Clone, Debug)]
pub struct StrictAccess(pub AccessClaims);

/// Why an access-token extractor refused a request.
#[derive(Debug)]
pub struct AccessRejection {
    status: StatusCode,
    missing: bool,
}

impl IntoResponse for AccessRejection {
    fn into_response(self) -> Response {
        let body = match self.status {
            StatusCode::UNAUTHORIZED => "{\"error\":\"invalid_token\"}",
            StatusCode::SERVICE_UNAVAILABLE => "{\"error\":\"session store unavailable\"}",
            _ => "{\"error\":\"access tokens are not configured\"}",
        };
        let mut res = Response::new(Body::from(body));
        *res.status_mut() = self.status;
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        match self.status {
            StatusCode::UNAUTHORIZED => {
                let challenge = if self.missing {
                    "Bearer"
                } else {
                    "Bearer error=\"invalid_token\""
                };
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        res
    }
}

fn config(parts: &Parts) -> Result<Arc<AccessConfig>, AccessRejection> {
    parts
        .extensions
        .get::<Arc<AccessConfig>>()
        .cloned()
        .ok_or_else(|| {
            tracing::error!("access-token extractor without session_axum::AccessTokenLayer");
            AccessRejection {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                missing: false,
            }
        })
}

/// The bearer token of the request, if any.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
}

fn refuse(e: &Error) -> AccessRejection {
    if let Error::Store(cause @ session_core::Error::Unsupported { .. }) = e {
        // A client-side manager: no store to check. A wiring mistake, not
        // an outage to retry.
        tracing::error!(error = %cause, "StrictAccess needs a server-side session manager");
        return AccessRejection {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            missing: false,
        };
    }
    if let Error::Store(cause) = e {
        tracing::error!(error = %session_core::error_chain(cause), "strict access check could not reach the store");
        return AccessRejection {
            status: StatusCode::SERVICE_UNAVAILABLE,
            missing: false,
        };
    }
    tracing::debug!(reason = %e, "access token refused");
    AccessRejection {
        status: StatusCode::UNAUTHORIZED,
        missing: matches!(e, Error::Missing),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Access {
    type Rejection = AccessRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let config = config(parts)?;
        let token = bearer(parts).unwrap_or("");
        config
            .verifier
            .verify(token)
            .map(Access)
            .map_err(|e| refuse(&e))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for StrictAccess {
    type Rejection = AccessRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let config = config(parts)?;
        let Some(manager) = &config.manager else {
            tracing::error!("StrictAccess needs AccessTokenLayer::with_manager");
            return Err(AccessRejection {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                missing: false,
            });
        };
        let token = bearer(parts).unwrap_or("");
        config
            .verifier
            .verify_live(token, manager)
            .await
            .map(StrictAccess)
            .map_err(|e| refuse(&e))
    }
}
