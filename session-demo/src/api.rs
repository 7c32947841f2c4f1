//! The JSON API under `/api`.

use axum::body::HttpBody;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use session_axum::CurrentSession;
use session_core::SessionId;

use crate::accounts;
use crate::app::AppState;
use crate::util::{error, rfc3339, store_error, user_agent, ApiJson};

/// The `/api` routes. Every request that changes something must say
/// `Content-Type: application/json`: a cross-site HTML form cannot, and a
/// cross-site script cannot without a CORS preflight this API never grants.
/// With `SameSite=Lax` that closes CSRF for bodiless posts too.
///
/// One exception: a `DELETE` with no body and no content type, as
/// `fetch(url, {method: "DELETE"})` and `curl -X DELETE` send it. No form can
/// send a `DELETE`, and a cross-site script needs a preflight for any
/// `DELETE`, so the content type adds nothing there. A `DELETE` that has a
/// body, or says a content type, must still say JSON.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/me", get(me))
        .route("/counter", post(counter))
        .route("/note", post(note))
        .route("/sessions", get(sessions))
        .route("/sessions/revoke-others", post(revoke_others))
        .route("/sessions/{id}", delete(revoke_one))
        .merge(crate::tokens::api_routes())
        .route_layer(middleware::from_fn(json_only_for_changes))
}

async fn json_only_for_changes(req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let content_type = req.headers().get(header::CONTENT_TYPE);
    let json = content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    // No Content-Length (or 0) and no chunked body: the body is known empty.
    let bodyless_delete = req.method() == Method::DELETE
        && content_type.is_none()
        && HttpBody::size_hint(req.body()).exact() == Some(0);
    if safe || json || bodyless_delete {
        next.run(req).await
    } else {
        error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "requests that change something need Content-Type: application/json",
        )
    }
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
    #[serde(default)]
    remember: bool,
}

async fn login(
    session: CurrentSession,
    headers: HeaderMap,
    ApiJson(body): ApiJson<Credentials>,
) -> Response {
    if !accounts::verify(&body.username, &body.password) {
        return error(StatusCode::UNAUTHORIZED, "invalid username or password");
    }
    if let Err(e) = session.login(body.username.clone()) {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    session.set_remember(body.remember);
    if let Some(ua) = user_agent(&headers) {
        session.set_meta("user_agent", ua);
    }
    Json(json!({ "user": body.username })).into_response()
}

async fn logout(session: CurrentSession) -> StatusCode {
    session.logout();
    StatusCode::NO_CONTENT
}

async fn me(session: CurrentSession) -> Response {
    let count = match session.get::<u64>("count") {
        Ok(c) => c.unwrap_or(0),
        Err(e) => return store_error(&e),
    };
    let note_length = match session.get::<String>("note") {
        Ok(note) => note.map(|n| n.len()),
        Err(e) => return store_error(&e),
    };
    Json(json!({
        "user": session.user(),
        "session": session.id().map(|id| id.to_string()),
        "count": count,
        "note_length": note_length,
    }))
    .into_response()
}

async fn counter(session: CurrentSession, headers: HeaderMap) -> Response {
    if session.is_new() {
        if let Some(ua) = user_agent(&headers) {
            session.set_meta("user_agent", ua);
        }
    }
    match session
        .modify("count", |c: Option<u64>| c.unwrap_or(0) + 1)
        .await
    {
        Ok(count) => Json(json!({ "count": count })).into_response(),
        Err(e) => store_error(&e),
    }
}

#[derive(Deserialize)]
struct Note {
    text: String,
}

/// The longest note: big enough to need chunked cookies with client-side
/// sessions.
const MAX_NOTE: usize = 16 * 1024;

/// Keeps a free-text note in the session (an empty one removes it).
async fn note(session: CurrentSession, ApiJson(body): ApiJson<Note>) -> Response {
    if body.text.len() > MAX_NOTE {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a note holds at most {MAX_NOTE} bytes"),
        );
    }
    let length = body.text.len();
    if body.text.is_empty() {
        session.remove("note");
    } else if let Err(e) = session.insert("note", &body.text) {
        return store_error(&e);
    }
    Json(json!({ "length": length })).into_response()
}

fn not_logged_in() -> Response {
    error(StatusCode::UNAUTHORIZED, "not logged in")
}

async fn sessions(State(state): State<AppState>, session: CurrentSession) -> Response {
    let Some(user) = session.user() else {
        return not_logged_in();
    };
    let current = session.id();
    match crate::util::user_sessions(&state.manager, &session, &user).await {
        Ok(list) => Json(
            list.iter()
                .map(|i| {
                    json!({
                        "id": i.id.to_string(),
                        "current": Some(i.id) == current,
                        "created_at": rfc3339(i.created_at),
                        "last_seen": rfc3339(i.last_active),
                        "user_agent": i.meta.get("user_agent"),
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => store_error(&e),
    }
}

async fn revoke_one(
    State(state): State<AppState>,
    session: CurrentSession,
    Path(id): Path<String>,
) -> Response {
    let Some(user) = session.user() else {
        return not_logged_in();
    };
    let Ok(id) = id.parse::<SessionId>() else {
        return error(StatusCode::NOT_FOUND, "no such session");
    };
    match state.manager.revoke(&user, id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, "no such session"),
        Err(e) => store_error(&e),
    }
}

async fn revoke_others(State(state): State<AppState>, session: CurrentSession) -> Response {
    let Some(user) = session.user() else {
        return not_logged_in();
    };
    match state.manager.revoke_user(&user, Some(&session)).await {
        Ok(n) => Json(json!({ "revoked": n })).into_response(),
        Err(e) => store_error(&e),
    }
}
