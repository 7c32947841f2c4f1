//! Finding the token in a request and writing it into a response.

use cookie::Cookie;
use http::header::{AUTHORIZATION, CACHE_CONTROL, COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue};
use session_core::{ClientSide, SessionToken, TokenAction};

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

/// What a request presents to a client-side session manager: the sealed
/// value (chunks joined), and which chunk numbers it sent, so that chunks a
/// smaller session no longer needs can be cleared.
#[derive(Debug, Default)]
pub(crate) struct SealedPresented {
    pub value: Option<String>,
    pub chunks: Vec<usize>,
}

/// The sealed cookie a request presents (client-side sessions). The first
/// cookie of each name wins, as for tokens; a chunk the first cookie
/// announces but the request lacks gives no value (a fresh session).
pub(crate) fn presented_sealed(
    headers: &HeaderMap,
    config: &TransportConfig,
    client: &ClientSide,
) -> SealedPresented {
    let name = config.cookie_name.as_str();
    let mut first: Option<String> = None;
    let mut chunks: Vec<(usize, String)> = Vec::new();
    for header in headers.get_all(COOKIE) {
        let Ok(text) = header.to_str() else {
            continue;
        };
        for cookie in Cookie::split_parse(text).flatten() {
            if cookie.name() == name {
                first.get_or_insert_with(|| cookie.value().to_owned());
            } else if let Some(i) = ClientSide::chunk_index(name, cookie.name()) {
                if !chunks.iter().any(|(j, _)| *j == i) {
                    chunks.push((i, cookie.value().to_owned()));
                }
            }
        }
    }
    let value = first.as_deref().and_then(|first| {
        client.join(first, |i| {
            chunks
                .iter()
                .find(|(j, _)| *j == i)
                .map(|(_, v)| v.as_str())
        })
    });
    SealedPresented {
        value,
        chunks: chunks.into_iter().map(|(i, _)| i).collect(),
    }
}

/// Writes what the client must be told into the response headers.
/// `chunks`: the chunk numbers of a client-side session's cookie that the
/// request presented (empty for server-side sessions). `false` for an action
/// this version does not know how to send.
#[must_use]
pub(crate) fn apply(
    action: &TokenAction,
    transport: Transport,
    config: &TransportConfig,
    chunks: &[usize],
    headers: &mut HeaderMap,
) -> bool {
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
            clear(config, &config.cookie_name, headers);
            for &i in chunks {
                clear(
                    config,
                    &ClientSide::chunk_name(&config.cookie_name, i),
                    headers,
                );
            }
        }
        (TokenAction::IssueCookies { cookies, max_age }, _) => {
            for sealed in cookies {
                let mut c = base_cookie(config, sealed.value().to_owned());
                c.set_name(sealed.name().to_owned());
                if let Some(age) = max_age {
                    c.set_max_age(TransportConfig::max_age(*age));
                }
                append(headers, &c);
            }
            // Chunks a larger earlier session used and this one does not.
            for &i in chunks.iter().filter(|&&i| i >= cookies.len()) {
                clear(
                    config,
                    &ClientSide::chunk_name(&config.cookie_name, i),
                    headers,
                );
            }
        }
        // A newer session-core than this layer knows: never silent.
        (_, _) => return false,
    }
    true
}

fn clear(config: &TransportConfig, name: &str, headers: &mut HeaderMap) {
    let mut c = base_cookie(config, String::new());
    c.set_name(name.to_owned());
    c.make_removal();
    append(headers, &c);
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
