//! Finding the token in a request and writing it into a response.

use cookie::Cookie;
use http::header::{AUTHORIZATION, CACHE_CONTROL, COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue};
use session_core::{SessionToken, TokenAction};

use crate::config::{TransportConfig, TOKEN_HEADER};

/// Where a request's token came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    Cookie,
    Bearer,
}

/// The token a request presents, if any, and how it came.
///
/// Only the first well-formed token wins; anything malformed or oversized is
/// as if absent (the token parser accepts exactly 43 characters), and is
/// parsed once, here. The whole header is scanned however many other cookies
/// the site sets; its size is bounded by the HTTP server. Parsing is the
/// `cookie` crate's.
pub(crate) fn presented(
    headers: &HeaderMap,
    config: &TransportConfig,
) -> (Option<SessionToken>, Transport) {
    if config.bearer {
        if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
            if let Some(token) = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
            {
                return (SessionToken::parse(token.trim()), Transport::Bearer);
            }
        }
    }
    for header in headers.get_all(COOKIE) {
        let Ok(text) = header.to_str() else {
            continue;
        };
        for cookie in Cookie::split_parse(text).flatten() {
            if cookie.name() != config.cookie_name {
                continue;
            }
            if let Some(token) = SessionToken::parse(cookie.value()) {
                return (Some(token), Transport::Cookie);
            }
        }
    }
    (None, Transport::Cookie)
}

/// Writes what the client must be told into the response headers.
pub(crate) fn apply(
    action: &TokenAction,
    transport: Transport,
    config: &TransportConfig,
    headers: &mut HeaderMap,
) {
    if !matches!(action, TokenAction::Unchanged) {
        // A response that hands out (or withdraws) a token must never be
        // stored by a shared cache and replayed to someone else.
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    match (action, transport) {
        (TokenAction::Unchanged, _) => {}
        (TokenAction::Issue { token, .. }, Transport::Bearer) => {
            if let Ok(v) = HeaderValue::from_str(&token.expose()) {
                headers.insert(TOKEN_HEADER, v);
            }
        }
        // A bearer client forgets its token when it gets a 401 later; there
        // is no header that makes it forget.
        (TokenAction::Clear, Transport::Bearer) => {}
        (TokenAction::Issue { token, max_age }, Transport::Cookie) => {
            let mut c = base_cookie(config, token.expose());
            if let Some(age) = max_age {
                c.set_max_age(TransportConfig::max_age(*age));
            }
            append(headers, &c);
        }
        (TokenAction::Clear, Transport::Cookie) => {
            let mut c = base_cookie(config, String::new());
            c.make_removal();
            append(headers, &c);
        }
    }
}

fn base_cookie(config: &TransportConfig, value: String) -> Cookie<'static> {
    Cookie::build((config.cookie_name.clone(), value))
        .path("/")
        .secure(config.secure)
        .http_only(true)
        .same_site(config.same_site)
        .build()
}

fn append(headers: &mut HeaderMap, cookie: &Cookie<'_>) {
    if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
        headers.append(SET_COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Arbitrary header bytes never panic; only a well-formed token
        /// under our cookie name is ever returned as a token.
        #[test]
        fn arbitrary_cookie_headers_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(&raw) {
                headers.append(COOKIE, v);
            }
            let (found, transport) = presented(&headers, &TransportConfig::default());
            prop_assert_eq!(transport, Transport::Cookie);
            let _ = found;
        }

        #[test]
        fn our_token_is_found_among_arbitrary_other_cookies(
            others in proptest::collection::vec(("[a-z]{1,8}", "[A-Za-z0-9]{0,16}"), 0..6),
        ) {
            let token = SessionToken::generate().expose();
            let mut parts: Vec<String> = others.iter().map(|(k, v)| format!("{k}={v}")).collect();
            parts.push(format!("__Host-session={token}"));
            let mut headers = HeaderMap::new();
            headers.insert(COOKIE, HeaderValue::from_str(&parts.join("; ")).unwrap());
            let (found, _) = presented(&headers, &TransportConfig::default());
            prop_assert_eq!(found.map(|t| t.expose()), Some(token));
        }
    }
}
