//! Errors as a person reads them: the whole cause chain ([`error_chain`]),
//! a hint where one is known ([`error_hint`]), and the store URL's secrets
//! taken out ([`StoreUrl::redact_secrets`], [`StoreUrl::explain_error`]).

use std::error::Error as StdError;

use crate::url::{is_secret_param, StoreUrl};

/// An error and all its sources, joined with `": "` (see
/// [`session_core::error_chain`], which this is).
pub use session_core::error_chain;

/// What to try about `error`, when the cause chain shows a known situation:
/// for a sled folder that another process holds open (sled takes an
/// exclusive lock), a reminder that the application may still be running.
pub fn error_hint(error: &(dyn StdError + 'static)) -> Option<&'static str> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(sled::Error::Io(io)) = e.downcast_ref::<sled::Error>() {
            if io.to_string().contains("could not acquire lock") {
                return Some(
                    "another process has this sled folder open; is the app still running?",
                );
            }
        }
        next = e.source();
    }
    None
}

impl StoreUrl {
    /// `text` with every password of this URL replaced by `***`: the
    /// password of the user info (of every node, for a cluster) and the
    /// value of any password-like query parameter, each as written and
    /// percent-decoded. For error texts and logs that may quote what a
    /// driver was given.
    ///
    /// ```
    /// use session_cli::StoreUrl;
    ///
    /// let url = StoreUrl::parse("postgres://app:s%40cret@db/app")?;
    /// assert_eq!(
    ///     url.redact_secrets("password s%40cret, decoded s@cret"),
    ///     "password ***, decoded ***"
    /// );
    /// # Ok::<(), session_core::Error>(())
    /// ```
    pub fn redact_secrets(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in self.secrets() {
            out = out.replace(&secret, "***");
        }
        out
    }

    /// How a failure on this store reads for a person: the whole
    /// [`error_chain`], then the [`error_hint`] if there is one, with this
    /// URL's passwords [redacted](Self::redact_secrets).
    ///
    /// ```
    /// use session_cli::StoreUrl;
    ///
    /// let url = StoreUrl::parse("redis://:hunter2@cache")?;
    /// let e = session_core::Error::backend("redis", "AUTH hunter2 refused");
    /// assert_eq!(url.explain_error(&e), "redis backend error: AUTH *** refused");
    /// # Ok::<(), session_core::Error>(())
    /// ```
    pub fn explain_error(&self, error: &(dyn StdError + 'static)) -> String {
        let mut text = error_chain(error);
        if let Some(hint) = error_hint(error) {
            text.push_str(" (hint: ");
            text.push_str(hint);
            text.push(')');
        }
        self.redact_secrets(&text)
    }

    /// Every password in the URL, as written and percent-decoded, longest
    /// first (so that one containing another is replaced whole).
    fn secrets(&self) -> Vec<String> {
        let urls: Vec<&str> = match self {
            Self::Memory | Self::Sled(_) => Vec::new(),
            Self::Postgres(url) | Self::Redis(url) => vec![url.as_str()],
            Self::RedisCluster(nodes) => nodes.iter().map(String::as_str).collect(),
        };
        let mut secrets = Vec::new();
        for url in urls {
            for secret in url_secrets(url) {
                let decoded = percent_decode(secret);
                secrets.push(secret.to_owned());
                secrets.push(decoded);
            }
        }
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        secrets
    }
}

/// The password of the user info and the values of password-like query
/// parameters, as written. Matches what `Display` hides: everything between
/// `://` and the last `@` is user info, the password after its first `:`.
fn url_secrets(url: &str) -> Vec<&str> {
    let Some((_, rest)) = url.split_once("://") else {
        return Vec::new();
    };
    let mut secrets = Vec::new();
    let after_userinfo = match rest.rfind('@') {
        Some(at) => {
            if let Some((_, password)) = rest[..at].split_once(':') {
                secrets.push(password);
            }
            &rest[at + 1..]
        }
        None => rest,
    };
    if let Some((_, query)) = after_userinfo.split_once('?') {
        let query = query.split_once('#').map_or(query, |(q, _)| q);
        for pair in query.split('&') {
            if let Some((key, value)) = pair.split_once('=') {
                if is_secret_param(key) {
                    secrets.push(value);
                }
            }
        }
    }
    secrets
}

/// `%XX` escapes decoded (`+` left alone); invalid escapes stay as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_core::Error;

    fn url(text: &str) -> StoreUrl {
        StoreUrl::parse(text).unwrap()
    }

    #[test]
    fn every_password_form_of_every_kind_of_url_is_redacted() {
        for (text, secrets) in [
            ("postgres://app:pw-one@db/app", &["pw-one"][..]),
            (
                "postgresql://app:p%40ss-two@db/app",
                &["p%40ss-two", "p@ss-two"][..],
            ),
            (
                "postgres://db/app?user=app&password=pw-three#x",
                &["pw-three"][..],
            ),
            ("redis://:pw-four@cache:6379/1", &["pw-four"][..]),
            (
                "redis+cluster://u:pw-five@h1:7000,h2:7001",
                &["pw-five"][..],
            ),
        ] {
            let url = url(text);
            for secret in secrets {
                let said = url.redact_secrets(&format!("[{secret}] [{text}]"));
                assert!(!said.contains(secret), "{text}: {said}");
                assert!(said.starts_with("[***]"), "{text}: {said}");
            }
        }
    }

    #[test]
    fn urls_without_a_password_change_nothing() {
        for text in [
            "memory:",
            "sled:./x",
            "postgres://app@db/app",
            "redis://cache",
        ] {
            assert_eq!(url(text).redact_secrets("app@db: a:b"), "app@db: a:b");
        }
    }

    #[test]
    fn invalid_percent_escapes_are_kept_as_written() {
        assert_eq!(percent_decode("a%4"), "a%4");
        assert_eq!(percent_decode("a%zz%41"), "a%zzA");
        assert_eq!(percent_decode("%e2%82%ac"), "€");
    }

    #[test]
    fn a_sled_folder_locked_by_another_handle_gets_the_still_running_hint() {
        let dir = std::env::temp_dir().join(format!(
            "session-cli-lock-{}-{}",
            std::process::id(),
            &session_core::SessionToken::generate().key().to_hex()[..12]
        ));
        let first = sled::open(&dir).unwrap();
        let second = sled::open(&dir).expect_err("the folder is locked");
        let e = Error::backend("sled", second);
        let said = url(&format!("sled:{}", dir.display())).explain_error(&e);
        drop(first);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(said.starts_with("sled backend error: "), "{said}");
        assert!(said.contains("could not acquire lock"), "the cause: {said}");
        assert!(said.ends_with("is the app still running?)"), "{said}");
    }

    #[test]
    fn other_errors_get_no_hint() {
        let e = Error::backend("sled", sled::Error::Unsupported("x".into()));
        assert_eq!(error_hint(&e), None);
        assert_eq!(error_hint(&Error::Conflict), None);
    }
}
