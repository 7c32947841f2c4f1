//! The demo app: a JSON API and an HTML page on the session layer.
//!
//! `cargo run -p session-demo` serves it on <http://127.0.0.1:3000> with a sled
//! store in `./session-demo-data`. See [`args::USAGE`] for the flags.

pub mod accounts;
mod api;
pub mod app;
pub mod args;
mod device;
mod html;
pub mod keys;
pub mod logging;
mod tab;
pub mod tokens;
mod util;
