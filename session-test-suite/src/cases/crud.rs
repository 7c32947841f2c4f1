//! `create` and `load`.

use std::sync::Arc;

use session_core::SessionStore;

use super::fixtures::new_record;

/// `create` then `load` gives back every field exactly.
pub async fn create_then_load_returns_every_field_exactly(store: Arc<dyn SessionStore>) {
    let record = new_record(Some("alice"));
    store.create(&record).await.expect("create a new record");
    let loaded = store.load(&record.key).await.expect("load");
    assert_eq!(
        loaded,
        Some(record),
        "load must return the record exactly as created"
    );
}
