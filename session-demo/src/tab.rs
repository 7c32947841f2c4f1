//! `/tab`: a small browser client that keeps its session token in the tab's
//! `sessionStorage` (each tab is its own session) and calls the API with
//! short-lived access tokens it refreshes before they expire. The page runs
//! under a strict Content-Security-Policy: no inline script or style, no
//! third-party origin, no framing.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::app::AppState;

/// `/tab` and its script and style.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tab", get(page))
        .route("/tab.js", get(script))
        .route("/tab.css", get(style))
}

/// Only this origin's script, style and API; nothing inline, no plugins, no
/// framing, no form posts anywhere, no `<base>` rewriting.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

fn secured(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
}

async fn page() -> impl IntoResponse {
    secured("text/html; charset=utf-8", PAGE)
}

async fn script() -> impl IntoResponse {
    secured("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> impl IntoResponse {
    secured("text/css; charset=utf-8", STYLE)
}

const PAGE: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>Session demo: this tab</title><link rel="stylesheet" href="/tab.css">
<script src="/tab.js" defer></script></head><body>
<h1>This tab's session</h1>
<p class="muted">Each tab keeps its own session token in <code>sessionStorage</code>:
sign in as alice here and as bob in another tab. API calls carry a short-lived
access token, refreshed before it expires.</p>
<section id="signed-out" hidden><h2>Sign in</h2><form id="tab-login">
<label>User <input type="text" name="username" autocomplete="username"></label><br>
<label>Password <input type="password" name="password" autocomplete="current-password"></label><br>
<button type="submit">Sign in</button></form></section>
<section id="signed-in" hidden><p>Signed in as <strong id="tab-user"></strong>
(session <code id="tab-session"></code>).</p>
<p>Count: <strong id="tab-count">0</strong> <button id="tab-increment">Increment</button></p>
<p><button id="tab-strict">Strict check</button> <span id="tab-strict-result"></span></p>
<p>Access token expires <span id="tab-expiry"></span></p>
<button id="tab-logout">Log out</button></section>
<p id="tab-status" class="muted"></p></body></html>"#;

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}\
section{border:1px solid #ddd;border-radius:6px;padding:1rem;margin:1rem 0}.muted{color:#777;font-size:.85rem}\
input{padding:.3rem;margin:.2rem 0;width:14rem}button{padding:.3rem .8rem;cursor:pointer}";

const SCRIPT: &str = r#""use strict";
// The session token lives in this tab's sessionStorage only: another tab,
// or this one after it is closed, does not have it. The access token lives
// in this script's memory only.
const KEY = "session-token";
let access = null;      // { token, expiresAt }
let refreshTimer = null;

const $ = (id) => document.getElementById(id);
const status = (text) => { $("tab-status").textContent = text; };

function sessionToken() { return sessionStorage.getItem(KEY); }

// A call with the session token (the refresh credential). Only a login
// hands this tab a new session token; a new token on any other call means
// the server no longer knew ours (revoked, logged out, expired) and started
// an anonymous session instead: the tab's session has ended, and the new
// token is not taken. Returns null then.
async function withSession(method, path, body, login) {
  const headers = { "content-type": "application/json", "authorization": "Bearer " + (sessionToken() || "none") };
  const res = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined, credentials: "omit" });
  const next = res.headers.get("session-token");
  if (next && login) sessionStorage.setItem(KEY, next);
  else if (next) { signedOut("Your session has ended: sign in again."); return null; }
  return res;
}

// A call with the access token, refreshed first if half its life is gone.
async function withAccess(path) {
  if (!access || Date.now() > access.refreshAt) await refresh();
  if (!access) return null;
  return fetch(path, { headers: { "authorization": "Bearer " + access.token }, credentials: "omit" });
}

async function refresh() {
  clearTimeout(refreshTimer);
  const res = await withSession("POST", "/api/token");
  if (!res) return;
  if (res.status === 401) { access = null; signedOut("Your session has ended: sign in again."); return; }
  if (!res.ok) {
    // The server is having trouble (503 while its store is down): keep the
    // session, keep any access token still valid, and try again shortly.
    status("The server is unavailable; retrying.");
    refreshTimer = setTimeout(refresh, 5000);
    return;
  }
  const body = await res.json();
  const lifetime = body.expires_in * 1000;
  access = { token: body.access_token, expiresAt: Date.now() + lifetime, refreshAt: Date.now() + lifetime / 2 };
  $("tab-expiry").textContent = new Date(access.expiresAt).toLocaleTimeString();
  // Refresh at half the lifetime: a token near the session's absolute
  // deadline is short, and refreshing it sooner would not make it longer.
  refreshTimer = setTimeout(refresh, Math.max(1000, lifetime / 2));
}

function signedOut(message) {
  sessionStorage.removeItem(KEY);
  access = null;
  clearTimeout(refreshTimer);
  $("signed-in").hidden = true;
  $("signed-out").hidden = false;
  status(message || "Signed out.");
}

async function show() {
  const res = await withAccess("/api/whoami");
  if (!res) return;
  if (res.status === 401) { signedOut("Your session has ended: sign in again."); return; }
  if (!res.ok) { status("The server is unavailable; reload to try again."); return; }
  const who = await res.json();
  $("tab-user").textContent = who.user;
  $("tab-session").textContent = who.session;
  const me = await withSession("GET", "/api/me");
  if (me && me.ok) $("tab-count").textContent = String((await me.json()).count);
  $("signed-out").hidden = true;
  $("signed-in").hidden = false;
  status("Ready.");
}

$("tab-login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  sessionStorage.removeItem(KEY);
  const res = await withSession("POST", "/api/login", { username: form.username.value, password: form.password.value }, true);
  if (!res.ok) { signedOut("Wrong user name or password."); return; }
  form.reset();
  await refresh();
  if (access) await show();
});

$("tab-increment").addEventListener("click", async () => {
  const res = await withSession("POST", "/api/counter");
  if (!res) return;
  if (res.ok) $("tab-count").textContent = String((await res.json()).count);
  else if (res.status === 401) signedOut("Your session has ended: sign in again.");
  else status("The server is unavailable; try again.");
});

$("tab-strict").addEventListener("click", async () => {
  const res = await withAccess("/api/whoami/strict");
  if (!res) return;
  $("tab-strict-result").textContent = res.ok ? "live: " + (await res.json()).user
    : res.status === 401 ? "refused: session ended" : "unavailable: try again";
});

$("tab-logout").addEventListener("click", async () => {
  await withSession("POST", "/api/logout");
  signedOut("Signed out.");
});

if (sessionToken()) show(); else signedOut("Sign in to start this tab's session.");
"#;
