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
mod report;
mod stats;
mod url;

/// The README's Rust snippets, compiled (and run unless `no_run`) as doctests
/// of this crate: it is the one that sees every backend.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

pub use check::{check, CaseResult};
pub use connection::{Connection, Isolated};
pub use report::{error_chain, error_hint};
pub use stats::Stats;
pub use url::StoreUrl;
