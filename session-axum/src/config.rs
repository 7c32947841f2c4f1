//! How the session token travels: cookie settings and the bearer option.

use std::time::Duration;

use cookie::SameSite;

/// Default cookie name: the `__Host-` prefix makes browsers insist on
/// `Secure`, `Path=/` and no `Domain`, so no subdomain or plain-http page can
/// plant or overwrite it.
pub const DEFAULT_COOKIE_NAME: &str = "__Host-session";
/// Cookie name in development mode, where the prefix is not allowed.
pub const DEV_COOKIE_NAME: &str = "session";
/// Response header that carries a new token to bearer clients.
pub const TOKEN_HEADER: &str = "session-token";

/// Transport settings for [`SessionLayer`](crate::SessionLayer).
///
/// The defaults are the safe ones: cookie `__Host-session`, `Secure`,
/// `HttpOnly`, `SameSite=Lax`, `Path=/`, no `Domain`, and `Max-Age` only for
/// sessions that asked to be remembered (capped by the manager at the
/// absolute timeout). Bearer tokens are off.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    pub(crate) cookie_name: String,
    pub(crate) secure: bool,
    pub(crate) same_site: SameSite,
    pub(crate) bearer: bool,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            cookie_name: DEFAULT_COOKIE_NAME.to_owned(),
            secure: true,
            same_site: SameSite::Lax,
            bearer: false,
        }
    }
}

impl TransportConfig {
    /// Development mode for plain http on loopback: cookie `session` without
    /// `Secure` and without the `__Host-` prefix (browsers reject a prefixed
    /// cookie that is not `Secure`). Logs a warning once, when the layer is
    /// built. Never use it in production.
    pub fn development() -> Self {
        Self {
            cookie_name: DEV_COOKIE_NAME.to_owned(),
            secure: false,
            ..Self::default()
        }
    }

    /// Accepts `Authorization: Bearer <token>` as well as the cookie, and
    /// returns new tokens to bearer clients in the `session-token` header.
    pub fn with_bearer(mut self) -> Self {
        self.bearer = true;
        self
    }

    /// `SameSite=Strict` instead of `Lax` (a link from another site then
    /// arrives without the session).
    pub fn strict_same_site(mut self) -> Self {
        self.same_site = SameSite::Strict;
        self
    }

    /// A different cookie name. With `Secure` on, it must keep the `__Host-`
    /// prefix; in development mode it must not have it.
    ///
    /// # Panics
    /// If the name breaks that rule or is not a valid cookie name: a
    /// misconfiguration to fix at start-up, not at the first request.
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        assert!(valid, "{name:?} is not a valid cookie name");
        assert!(
            name.starts_with("__Host-") == self.secure,
            "cookie {name:?}: use the __Host- prefix with Secure cookies, and only with them"
        );
        self.cookie_name = name;
        self
    }

    /// The cookie name in use.
    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    pub(crate) fn max_age(max_age: Duration) -> cookie::time::Duration {
        cookie::time::Duration::seconds(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::TransportConfig;

    #[test]
    fn the_default_cookie_is_host_prefixed_and_secure() {
        let c = TransportConfig::default();
        assert_eq!(c.cookie_name(), "__Host-session");
    }

    #[test]
    #[should_panic(expected = "__Host- prefix")]
    fn a_secure_cookie_without_the_host_prefix_is_refused_at_start_up() {
        let _ = TransportConfig::default().with_cookie_name("session");
    }

    #[test]
    #[should_panic(expected = "__Host- prefix")]
    fn a_development_cookie_with_the_host_prefix_is_refused_at_start_up() {
        let _ = TransportConfig::development().with_cookie_name("__Host-dev");
    }

    #[test]
    #[should_panic(expected = "not a valid cookie name")]
    fn an_invalid_cookie_name_is_refused_at_start_up() {
        let _ = TransportConfig::default().with_cookie_name("__Host-a b");
    }
}
