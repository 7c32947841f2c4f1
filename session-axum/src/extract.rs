//! [`CurrentSession`]: the request's session as an axum extractor.

use std::ops::Deref;

use axum_core::extract::FromRequestParts;
use http::request::Parts;
use http::StatusCode;
use session_core::Session;

/// The request's [`Session`], as a handler argument. Derefs to `Session`.
///
/// Without a [`SessionLayer`](crate::SessionLayer) in front the request fails
/// with 500: a wiring mistake, not a client error.
#[derive(Clone, Debug)]
pub struct CurrentSession(pub Session);

impl Deref for CurrentSession {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentSession {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .map(CurrentSession)
            .ok_or((
                StatusCode::INTERNAL_SERVER_ERROR,
                "no session: add session_axum::SessionLayer to the router",
            ))
    }
}
