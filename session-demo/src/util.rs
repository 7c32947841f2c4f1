//! Small helpers shared by the JSON API and the HTML page.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde_json::json;
use session_cli::error_chain;
use session_core::{Error, Timestamp};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A JSON error body: `{"error": message}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// A session store failure as a response: 503 when retrying may help. The
/// log line holds the whole cause chain.
pub fn store_error(e: &Error) -> Response {
    if let Error::Unsupported { .. } = e {
        return error(StatusCode::NOT_IMPLEMENTED, e.to_string());
    }
    tracing::error!(error = %error_chain(e), "session store failed");
    if e.is_transient() || matches!(e, Error::Conflict) {
        error(StatusCode::SERVICE_UNAVAILABLE, "session store unavailable")
    } else if matches!(e, Error::NotFound) {
        error(StatusCode::UNAUTHORIZED, "session ended")
    } else {
        error(StatusCode::INTERNAL_SERVER_ERROR, "session store error")
    }
}

/// `Json<T>` whose rejections (wrong content type, bad JSON, too large) are
/// JSON errors with the same status.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> Response {
    error(rejection.status(), rejection.body_text())
}

/// RFC 3339, UTC, to the millisecond.
pub fn rfc3339(t: Timestamp) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.as_millis()) * 1_000_000)
        .ok()
        .and_then(|d| d.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// How long before `now` the moment `t` was, for people: "just now",
/// "1 minute ago", "3 hours ago", "2 days ago".
pub fn ago(t: Timestamp, now: Timestamp) -> String {
    let secs = (now.as_millis() - t.as_millis()).max(0) / 1000;
    let (n, unit) = match secs {
        0..=59 => return "just now".to_owned(),
        60..=3599 => (secs / 60, "minute"),
        3600..=86_399 => (secs / 3600, "hour"),
        _ => (secs / 86_400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// A `<time>` element that reads "3 minutes ago" and shows the exact UTC
/// time on hover.
pub fn time_html(t: Timestamp, now: Timestamp) -> String {
    let exact = rfc3339(t);
    format!(
        "<time datetime=\"{exact}\" title=\"{}\">{}</time>",
        escape(&exact.replace('T', " ")),
        ago(t, now)
    )
}

/// The request's user agent, trimmed to something sensible to store.
pub fn user_agent(headers: &HeaderMap) -> Option<String> {
    let ua = headers.get(axum::http::header::USER_AGENT)?.to_str().ok()?;
    Some(ua.chars().take(200).collect())
}

/// 32 random bytes, base64url: for CSRF tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random number generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The live sessions of `user` for an "active sessions" list: all of them
/// with server-side sessions; with client-side sessions, which keep no list,
/// only the current one.
pub async fn user_sessions(
    manager: &session_core::SessionManager,
    session: &session_core::Session,
    user: &str,
) -> session_core::Result<Vec<session_core::SessionInfo>> {
    if manager.is_client_side() {
        return Ok(session.info().into_iter().collect());
    }
    manager.list_user(user).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_rfc3339_utc() {
        assert_eq!(rfc3339(Timestamp::from_millis(0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(Timestamp::from_millis(1_700_000_000_123)),
            "2023-11-14T22:13:20.123Z"
        );
    }

    #[test]
    fn times_read_as_how_long_ago_with_singular_and_plural() {
        let now = Timestamp::from_millis(10_000_000_000);
        let before = |secs: i64| Timestamp::from_millis(now.as_millis() - secs * 1000);
        assert_eq!(ago(before(5), now), "just now");
        assert_eq!(
            ago(before(-5), now),
            "just now",
            "a clock skew is not the future"
        );
        assert_eq!(ago(before(60), now), "1 minute ago");
        assert_eq!(ago(before(3 * 60 + 59), now), "3 minutes ago");
        assert_eq!(ago(before(3600), now), "1 hour ago");
        assert_eq!(ago(before(5 * 3600), now), "5 hours ago");
        assert_eq!(ago(before(2 * 86_400), now), "2 days ago");
    }

    #[test]
    fn the_exact_time_is_in_the_title_for_hovering() {
        let t = Timestamp::from_millis(1_700_000_000_123);
        let now = Timestamp::from_millis(1_700_000_000_123 + 180_000);
        assert_eq!(
            time_html(t, now),
            "<time datetime=\"2023-11-14T22:13:20.123Z\" title=\"2023-11-14 22:13:20.123Z\">3 minutes ago</time>"
        );
    }

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
