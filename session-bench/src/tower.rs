//! The same workload through tower-sessions 0.14 and its stores.

use std::sync::Arc;

use tower_sessions::session::Id;
use tower_sessions::{Expiry, Session, SessionStore};

use crate::measure::{run, Phase};
use crate::payload;

fn expiry() -> Option<Expiry> {
    Some(Expiry::OnInactivity(time::Duration::minutes(30)))
}

/// create, load (5×), update (load + save, 2×), delete.
pub async fn workload<S>(store: Arc<S>, sessions: usize, concurrency: usize) -> Vec<Phase>
where
    S: SessionStore + Clone,
{
    let mut out = Vec::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Id>();
    let st = store.clone();
    out.push(
        run("create", (0..sessions).collect(), concurrency, move |i| {
            let (st, tx) = (st.clone(), tx.clone());
            async move {
                let s = Session::new(None, st, expiry());
                for (k, v) in payload::fields(i) {
                    s.insert(k, v).await.expect("insert");
                }
                s.save().await.expect("save");
                tx.send(s.id().expect("saved sessions have an id"))
                    .expect("collect ids");
            }
        })
        .await,
    );
    let mut ids = Vec::with_capacity(sessions);
    while let Ok(id) = rx.try_recv() {
        ids.push(id);
    }
    let st = store.clone();
    let reads: Vec<Id> = (0..5).flat_map(|_| ids.iter().copied()).collect();
    out.push(
        run("load", reads, concurrency, move |id| {
            let st = st.clone();
            async move {
                let s = Session::new(Some(id), st, None);
                let name: Option<String> = s.get("name").await.expect("get");
                assert!(name.is_some(), "the session loads");
            }
        })
        .await,
    );
    let st = store.clone();
    let writes: Vec<Id> = (0..2).flat_map(|_| ids.iter().copied()).collect();
    out.push(
        run("update", writes, concurrency, move |id| {
            let st = st.clone();
            async move {
                let s = Session::new(Some(id), st, expiry());
                s.insert("last_path", "/checkout").await.expect("insert");
                s.save().await.expect("save");
            }
        })
        .await,
    );
    let st = store.clone();
    out.push(
        run("delete", ids, concurrency, move |id| {
            let st = st.clone();
            async move {
                Session::new(Some(id), st, None)
                    .delete()
                    .await
                    .expect("delete");
            }
        })
        .await,
    );
    out
}
