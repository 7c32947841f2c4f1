//! Every conformance case, as a plain async function over a store.
//!
//! Each case panics with a message that names the contract sentence it checks.
//! Cases only use the [`SessionStore`](session_core::SessionStore) trait, start
//! from an empty store or namespace, and use the wall clock with wide margins
//! (hours), except where a short real deadline is the point.

mod client_side;
mod concurrency;
mod crud;
mod delete;
mod expiry;
mod fixtures;
mod payload;
mod purge;
mod rotate;
mod touch;
mod update;
mod users;

pub use client_side::*;
pub use concurrency::*;
pub use crud::*;
pub use delete::*;
pub use expiry::*;
pub use fixtures::*;
pub use payload::*;
pub use purge::*;
pub use rotate::*;
pub use touch::*;
pub use update::*;
pub use users::*;
