//! An embedded [`SessionStore`](session_core::SessionStore) on sled: no server,
//! one folder on disk. The default store of the demo and a good choice for a
//! single-process service.
//!
//! See [`SledStore`] for the layout, [`Durability`] for when writes reach the
//! disk, and [`session_core::PurgeTask`] for purging expired sessions in the
//! background.

mod codec;
mod store;

pub use store::{Durability, IndexReport, SledOptions, SledStore};
