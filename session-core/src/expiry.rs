//! The timeout arithmetic, in one place.
//!
//! `expires_at = min(last_activity + idle, created_at + absolute)`.

use std::time::Duration;

use crate::config::SessionConfig;
use crate::record::{Record, Timestamp};

/// The deadline of a session created at `created_at` and last active at `active`.
pub(crate) fn deadline(
    config: &SessionConfig,
    created_at: Timestamp,
    active: Timestamp,
) -> Timestamp {
    active
        .saturating_add(config.idle())
        .min(absolute_deadline(config, created_at))
}

/// When a session created at `created_at` must end, however active.
pub(crate) fn absolute_deadline(config: &SessionConfig, created_at: Timestamp) -> Timestamp {
    created_at.saturating_add(config.absolute())
}

/// The deadline this process enforces for a stored record: its own, or the
/// absolute timeout if that is now shorter (the configuration may have changed).
pub(crate) fn effective_deadline(config: &SessionConfig, record: &Record) -> Timestamp {
    record
        .expires_at
        .min(absolute_deadline(config, record.created_at))
}

/// Best estimate of the last request that kept the session alive: the last
/// write, or the last idle extension (`expires_at - idle`), whichever is later.
pub(crate) fn last_activity(
    config: &SessionConfig,
    record: &Record,
    last_seen: Timestamp,
) -> Timestamp {
    last_seen.max(record.expires_at.saturating_sub(config.idle()))
}

/// The new deadline, if a request at `now` should extend it: only once the
/// configured fraction of the idle window has passed since the last activity,
/// and only if the deadline actually moves later.
pub(crate) fn touch_due(
    config: &SessionConfig,
    record: &Record,
    last_seen: Timestamp,
    now: Timestamp,
) -> Option<Timestamp> {
    let used = now.since(last_activity(config, record, last_seen));
    let threshold = Duration::from_secs_f64(config.idle().as_secs_f64() * config.touch_fraction());
    let next = deadline(config, record.created_at, now);
    (used >= threshold && next > record.expires_at).then_some(next)
}
