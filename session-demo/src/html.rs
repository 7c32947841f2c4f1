//! The page at `/` for people, and the form posts behind it. Every form
//! carries a CSRF token kept in the session.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use session_axum::CurrentSession;
use session_core::{SessionId, Timestamp};

use crate::accounts;
use crate::app::AppState;
use crate::device;
use crate::util::{escape, random_token, store_error, time_html, user_agent};

/// `/` and the `/form/...` posts.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route("/form/login", post(login))
        .route("/form/logout", post(logout))
        .route("/form/counter", post(counter))
        .route("/form/revoke-others", post(revoke_others))
        .route("/form/sessions/{id}/revoke", post(revoke_one))
}

type Fields = HashMap<String, String>;

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}\
h1{font-size:1.4rem}section{border:1px solid #ddd;border-radius:6px;padding:1rem;margin:1rem 0}\
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.3rem;border-bottom:1px solid #eee;font-size:.9rem}\
input[type=text],input[type=password]{padding:.3rem;margin:.2rem 0;width:14rem}button{padding:.3rem .8rem;cursor:pointer}\
.flash{background:#fee;border:1px solid #e99;padding:.5rem;border-radius:4px}.muted{color:#777;font-size:.85rem}form.inline{display:inline}";

/// The session's CSRF token, made on first use.
fn csrf_token(session: &CurrentSession) -> Result<String, session_core::Error> {
    if let Some(t) = session.get::<String>("csrf")? {
        return Ok(t);
    }
    let t = random_token();
    session.insert("csrf", &t)?;
    Ok(t)
}

/// Whether the form's `csrf` field matches the session's token.
fn csrf_ok(session: &CurrentSession, fields: &Fields) -> bool {
    match (session.get::<String>("csrf"), fields.get("csrf")) {
        (Ok(Some(expected)), Some(given)) => {
            // Lengths are public; compare every byte regardless of where they differ.
            expected.len() == given.len()
                && expected
                    .bytes()
                    .zip(given.bytes())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
        }
        _ => false,
    }
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        Html("<p>Form expired or forged (CSRF check failed). <a href=\"/\">Back</a></p>"),
    )
        .into_response()
}

fn hidden(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(csrf)
    )
}

async fn page(State(state): State<AppState>, session: CurrentSession) -> Response {
    let csrf = match csrf_token(&session) {
        Ok(t) => t,
        Err(e) => return store_error(&e),
    };
    let flash = session.get::<String>("flash").ok().flatten();
    if flash.is_some() {
        session.remove("flash");
    }
    let count = session.get::<u64>("count").ok().flatten().unwrap_or(0);
    let mut body = String::new();
    let _ = write!(
        body,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Session demo</title><style>{STYLE}</style></head><body><h1>Session demo</h1>"
    );
    if let Some(msg) = flash {
        let _ = write!(body, "<p class=\"flash\" id=\"flash\">{}</p>", escape(&msg));
    }
    let hidden = hidden(&csrf);
    match session.user() {
        None => {
            let _ = write!(
                body,
                "<section><h2>Sign in</h2><form method=\"post\" action=\"/form/login\" id=\"login\">{hidden}\
                 <label>User <input type=\"text\" name=\"username\" autocomplete=\"username\"></label><br>\
                 <label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\"></label><br>\
                 <label><input type=\"checkbox\" name=\"remember\" value=\"1\"> Remember me</label><br>\
                 <button type=\"submit\">Sign in</button></form>\
                 <p class=\"muted\">Demo accounts: alice / alice-password, bob / bob-password.</p></section>"
            );
        }
        Some(user) => {
            let _ = write!(
                body,
                "<section><p>Signed in as <strong id=\"user\">{}</strong>.</p>\
                 <form method=\"post\" action=\"/form/logout\" class=\"inline\">{hidden}<button id=\"logout\">Log out</button></form> \
                 <form method=\"post\" action=\"/form/revoke-others\" class=\"inline\">{hidden}<button id=\"revoke-others\">Log out other devices</button></form></section>",
                escape(&user)
            );
            let current = session.id();
            let now = Timestamp::now();
            match crate::util::user_sessions(&state.manager, &session, &user).await {
                Ok(list) => {
                    let _ = write!(
                        body,
                        "<section><h2>Active sessions</h2><table id=\"sessions\"><tr><th>Started</th><th>Last seen</th><th>Device</th><th></th></tr>"
                    );
                    for info in list {
                        let this = Some(info.id) == current;
                        let device = info
                            .meta
                            .get("user_agent")
                            .map_or_else(|| "unknown".to_owned(), |ua| device::describe(ua));
                        let action = if this {
                            "<em>this device</em>".to_owned()
                        } else {
                            format!(
                                "<form method=\"post\" action=\"/form/sessions/{}/revoke\" class=\"inline\">{hidden}<button>Revoke</button></form>",
                                info.id
                            )
                        };
                        let _ = write!(
                            body,
                            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
                            time_html(info.created_at, now),
                            time_html(info.last_active, now),
                            escape(&device)
                        );
                    }
                    body.push_str("</table></section>");
                }
                Err(e) => return store_error(&e),
            }
        }
    }
    let whose = match session.user() {
        Some(user) => format!("{}'s counter", escape(&user)),
        None => "Your counter (signed out)".to_owned(),
    };
    let _ = write!(
        body,
        "<section><h2 id=\"counter\">{whose}</h2><p>Count: <strong id=\"count\">{count}</strong></p>\
         <form method=\"post\" action=\"/form/counter\">{hidden}<button id=\"increment\">Increment</button></form></section>\
         <p class=\"muted\">JSON API under <code>/api</code>: login, logout, me, counter, sessions.</p></body></html>"
    );
    Html(body).into_response()
}

async fn login(
    session: CurrentSession,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Response {
    if !csrf_ok(&session, &fields) {
        return forbidden();
    }
    let user = fields.get("username").map(String::as_str).unwrap_or("");
    let pass = fields.get("password").map(String::as_str).unwrap_or("");
    if !accounts::verify(user, pass) {
        let _ = session.insert("flash", "Wrong user name or password.");
        return Redirect::to("/").into_response();
    }
    if session.login(user).is_err() {
        // The accounts' names all follow the user-name rule; a name that
        // does not is no account.
        let _ = session.insert("flash", "Wrong user name or password.");
        return Redirect::to("/").into_response();
    }
    session.set_remember(fields.contains_key("remember"));
    if let Some(ua) = user_agent(&headers) {
        session.set_meta("user_agent", ua);
    }
    // A new privilege level gets a new CSRF token too.
    let _ = session.insert("csrf", &random_token());
    Redirect::to("/").into_response()
}

async fn logout(session: CurrentSession, Form(fields): Form<Fields>) -> Response {
    if !csrf_ok(&session, &fields) {
        return forbidden();
    }
    session.logout();
    Redirect::to("/").into_response()
}

async fn counter(session: CurrentSession, Form(fields): Form<Fields>) -> Response {
    if !csrf_ok(&session, &fields) {
        return forbidden();
    }
    match session
        .modify("count", |c: Option<u64>| c.unwrap_or(0) + 1)
        .await
    {
        Ok(_) => Redirect::to("/").into_response(),
        Err(e) => store_error(&e),
    }
}

async fn revoke_others(
    State(state): State<AppState>,
    session: CurrentSession,
    Form(fields): Form<Fields>,
) -> Response {
    if !csrf_ok(&session, &fields) {
        return forbidden();
    }
    if let Some(user) = session.user() {
        if let Err(e) = state.manager.revoke_user(&user, Some(&session)).await {
            return store_error(&e);
        }
    }
    Redirect::to("/").into_response()
}

async fn revoke_one(
    State(state): State<AppState>,
    session: CurrentSession,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    if !csrf_ok(&session, &fields) {
        return forbidden();
    }
    if let (Some(user), Ok(id)) = (session.user(), id.parse::<SessionId>()) {
        if let Err(e) = state.manager.revoke(&user, id).await {
            return store_error(&e);
        }
    }
    Redirect::to("/").into_response()
}
