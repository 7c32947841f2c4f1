//! An embedded [`SessionStore`](session_core::SessionStore) on sled: no server,
//! one folder on disk. The default store of the demo and a good choice for a
//! single-process service.
//!
//! See [`SledStore`] for the layout, [`Durability`] for when writes reach the
//! disk, and [`session_core::PurgeTask`] for purging expired sessions in the
//! background.
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use session_core::{PurgeTask, SessionConfig, SessionManager};
//! use session_sled::SledStore;
//!
//! let dir = std::env::temp_dir().join(format!("sled-front-{}", std::process::id()));
//! let store = Arc::new(SledStore::open(&dir)?);
//! let purge = PurgeTask::spawn(store.clone(), Duration::from_secs(60));
//! let manager = SessionManager::new(store, SessionConfig::default())?;
//!
//! let session = manager.load(None).await?;
//! session.insert("theme", &"dark")?;
//! let token = session.commit().await?.token().expect("a new session").expose();
//! let again = manager.load(Some(&token)).await?;
//! assert_eq!(again.get::<String>("theme")?.as_deref(), Some("dark"));
//! purge.shutdown().await;
//! # drop((manager, again)); let _ = std::fs::remove_dir_all(&dir);
//! # Ok::<(), session_core::Error>(())
//! # }).unwrap();
//! ```

mod codec;
mod store;

pub use store::{Durability, IndexReport, SledOptions, SledStore};
