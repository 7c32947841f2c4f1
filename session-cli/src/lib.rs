//! The library half of `sessionctl`: [`StoreUrl`], the one syntax that names a
//! session store everywhere (`memory:`, `sled:PATH`, `postgres://…`,
//! `redis://…`, `redis+cluster://host:port,host:port`), and what the
//! `sessionctl` commands do with it.
//!
//! An application opens its store from configuration with
//! [`StoreUrl::parse`] and [`StoreUrl::open`]:
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use session_cli::StoreUrl;
//! use session_core::{SessionConfig, SessionManager};
//!
//! let url = StoreUrl::parse("memory:")?;
//! let store = url.open().await?;
//! let manager = SessionManager::new(store, SessionConfig::default())?;
//! # drop(manager);
//! # Ok::<(), session_core::Error>(())
//! # }).unwrap();
//! ```
//!
//! `sessionctl check URL` runs the conformance suite against a live store
//! through [`check()`], each case in a namespace of its own
//! ([`Connection::isolated`]) that is removed afterwards.

mod check;
mod connection;
mod stats;
mod url;

pub use check::{check, CaseResult};
pub use connection::{Connection, Isolated};
pub use stats::Stats;
pub use url::StoreUrl;

/// An error and all its sources, joined with `": "`; the `Display` of a
/// backend error alone says only which backend failed.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
