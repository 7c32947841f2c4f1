//! Every conformance case, as a plain async function over a store.
//!
//! Each case panics with a message that names the contract sentence it checks.
//! Cases only use the [`SessionStore`](session_core::SessionStore) trait, start
//! from an empty store or namespace, and use the wall clock with wide margins
//! (hours), except where a short real deadline is the point.

mod crud;
mod fixtures;

pub use crud::*;
pub use fixtures::*;
