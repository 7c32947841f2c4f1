//! [`SessionConfig`]: timeouts, caps and sealing keys.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::seal::KeyRing;

/// Session policy settings. Start from [`SessionConfig::default`] and change
/// what you need with the builder methods.
///
/// Defaults: idle timeout 30 minutes, absolute timeout 24 hours, extend the idle
/// deadline once 10% of the idle window has passed, no cap on sessions per
/// user, no sealing, 16 commit attempts on version conflicts.
///
/// ```
/// use std::time::Duration;
/// use session_core::SessionConfig;
///
/// let config = SessionConfig::default()
///     .idle_timeout(Duration::from_secs(15 * 60))
///     .absolute_timeout(Duration::from_secs(8 * 3600))
///     .max_sessions_per_user(5);
/// assert_eq!(config.idle(), Duration::from_secs(900));
/// ```
#[derive(Clone, Debug)]
pub struct SessionConfig {
    idle: Duration,
    absolute: Duration,
    touch_fraction: f64,
    max_per_user: Option<usize>,
    keys: Option<KeyRing>,
    max_attempts: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(24 * 3600),
            touch_fraction: 0.1,
            max_per_user: None,
            keys: None,
            max_attempts: 16,
        }
    }
}

impl SessionConfig {
    /// A session ends after this long without a request (sliding).
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// A session ends this long after it was created, however active.
    pub fn absolute_timeout(mut self, absolute: Duration) -> Self {
        self.absolute = absolute;
        self
    }

    /// Extend the idle deadline (a store `touch`) only once this fraction of
    /// the idle window has passed since the last extension: `0.0` touches on
    /// every request, `0.5` on at most every other half-window. At least 0,
    /// below 1.
    pub fn touch_after_fraction(mut self, fraction: f64) -> Self {
        self.touch_fraction = fraction;
        self
    }

    /// At most this many live sessions per user; logging in beyond it ends the
    /// user's least recently active other sessions.
    pub fn max_sessions_per_user(mut self, max: usize) -> Self {
        self.max_per_user = Some(max);
        self
    }

    /// Seal (encrypt and authenticate) session data with these keys.
    pub fn sealing_keys(mut self, keys: KeyRing) -> Self {
        self.keys = Some(keys);
        self
    }

    /// How many times a commit tries again after a version conflict.
    pub fn max_commit_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The idle timeout.
    pub fn idle(&self) -> Duration {
        self.idle
    }

    /// The absolute timeout.
    pub fn absolute(&self) -> Duration {
        self.absolute
    }

    /// The per-user cap, if any.
    pub fn max_per_user(&self) -> Option<usize> {
        self.max_per_user
    }

    pub(crate) fn touch_fraction(&self) -> f64 {
        self.touch_fraction
    }

    pub(crate) fn keys(&self) -> Option<&KeyRing> {
        self.keys.as_ref()
    }

    pub(crate) fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Checks the settings; [`Error::InvalidInput`] says what is wrong.
    pub fn validate(&self) -> Result<()> {
        let invalid = |why: &str| Err(Error::InvalidInput(why.to_owned()));
        if self.idle < Duration::from_millis(1) {
            return invalid("idle timeout must be at least 1 ms");
        }
        if self.absolute < Duration::from_millis(1) {
            return invalid("absolute timeout must be at least 1 ms");
        }
        if !(0.0..1.0).contains(&self.touch_fraction) {
            // At 1 a touch would be due only once the session had expired.
            return invalid("touch_after_fraction must be at least 0 and below 1");
        }
        if self.max_per_user == Some(0) {
            return invalid("max_sessions_per_user must be at least 1");
        }
        if self.max_attempts == 0 {
            return invalid("max_commit_attempts must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::SessionConfig;

    #[test]
    fn defaults_are_the_documented_30_minutes_idle_and_24_hours_absolute() {
        let c = SessionConfig::default();
        assert_eq!(c.idle(), Duration::from_secs(30 * 60));
        assert_eq!(c.absolute(), Duration::from_secs(24 * 3600));
        assert_eq!(c.max_per_user(), None, "no per-user cap unless set");
        assert!(c.validate().is_ok());
    }
}
