//! [`PurgeTask`]: removes expired sessions in the background.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::SessionStore;

/// A Tokio task that calls [`SessionStore::purge_expired`] every `period`.
///
/// Stores hide expired records on their own; purging only reclaims space.
/// Errors are counted and retried at the next period. Dropping the handle stops
/// the task (at its next await point); [`PurgeTask::shutdown`] stops it and
/// waits until it has.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use std::{sync::Arc, time::Duration};
/// use session_core::{MemoryStore, PurgeTask};
///
/// let task = PurgeTask::spawn(Arc::new(MemoryStore::new()), Duration::from_secs(60));
/// task.shutdown().await;
/// # });
/// ```
#[derive(Debug)]
pub struct PurgeTask {
    stop: watch::Sender<bool>,
    handle: Option<JoinHandle<()>>,
}

impl PurgeTask {
    /// Starts purging `store` every `period` (the first run after one period).
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn spawn(store: Arc<dyn SessionStore>, period: Duration) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let handle = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        // A failed purge is retried at the next period; expired
                        // sessions stay invisible meanwhile.
                        let _ = store.purge_expired().await;
                    }
                    _ = stopped.changed() => break,
                }
            }
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops the task and waits for it to finish its current purge.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(handle) = self.handle.take() {
            let _ = handle.await;
        }
    }
}

impl Drop for PurgeTask {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}
