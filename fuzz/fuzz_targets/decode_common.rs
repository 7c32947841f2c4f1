//! Shared by the decoding targets: a store holding one record whose data is
//! the fuzzer's bytes, loaded through the public `SessionManager`.

use std::sync::Arc;
use std::time::Duration;

use session_core::{
    Error, MemoryStore, Record, SessionConfig, SessionId, SessionManager, SessionToken, Timestamp,
};

pub struct Harness {
    runtime: tokio::runtime::Runtime,
    store: Arc<MemoryStore>,
    manager: SessionManager,
}

impl Harness {
    pub fn new(config: SessionConfig) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let store = Arc::new(MemoryStore::new());
        let manager = SessionManager::new(store.clone(), config).expect("config");
        Self {
            runtime,
            store,
            manager,
        }
    }

    /// Stores `data` as a record's data and loads it: the result must be a
    /// session or a `Decode` error, a session must answer reads, and saving
    /// it must give data that loads.
    pub fn load(&self, data: &[u8], user: Option<&str>) {
        use session_core::SessionStore as _;
        let token = SessionToken::generate();
        let now = Timestamp::now();
        let record = Record {
            key: token.key(),
            id: SessionId::generate(),
            user: user.map(str::to_owned),
            created_at: now,
            expires_at: now.saturating_add(Duration::from_secs(3600)),
            version: 1,
            data: data.to_vec(),
        };
        self.runtime.block_on(async {
            self.store.create(&record).await.expect("create");
            match self.manager.load_token(token).await {
                Ok(session) => {
                    let _ = session.get::<serde_json::Value>("k");
                    let _ = session.user();
                    if !session.is_new() {
                        // What loaded saves, with its values written back as
                        // read, and what was saved loads again.
                        session.insert("z", &1u8).expect("insert");
                        session.commit().await.expect("save what loaded");
                        let token = session.token().expect("a stored session");
                        let again = self.manager.load_token(token).await;
                        let again = again.expect("what was saved loads");
                        assert_eq!(again.get::<u8>("z").expect("read back"), Some(1));
                    }
                }
                Err(Error::Decode { .. }) => {}
                Err(other) => panic!("decoding stored data failed with {other:?}"),
            }
            let _ = self.store.delete_user("alice", None).await;
            let _ = self.store.delete(&record.key).await;
        });
    }
}
