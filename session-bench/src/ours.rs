//! The workload through our `SessionManager` (policy, encoding, versioned
//! writes) on any `SessionStore`.

use std::sync::Arc;

use session_core::{SessionManager, SessionStore};

use crate::measure::{run, Phase};
use crate::payload;

/// create, load (5×, after an untimed warm-up load), update (load +
/// versioned save, 2×), delete.
pub async fn workload(
    store: Arc<dyn SessionStore>,
    sessions: usize,
    concurrency: usize,
) -> Vec<Phase> {
    let manager =
        SessionManager::new(store, session_core::SessionConfig::default()).expect("default config");
    let mut out = Vec::new();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let m = manager.clone();
    out.push(
        run("create", (0..sessions).collect(), concurrency, move |i| {
            let (m, tx) = (m.clone(), tx.clone());
            async move {
                let s = m.new_session();
                for (k, v) in payload::fields(i) {
                    s.insert(k, &v).expect("insert");
                }
                let action = s.commit().await.expect("create");
                let token = action.token().expect("a new session has a token").expose();
                tx.send(token).expect("collect tokens");
            }
        })
        .await,
    );
    let mut tokens = Vec::with_capacity(sessions);
    while let Ok(t) = rx.try_recv() {
        tokens.push(t);
    }

    // One untimed load of each session first: a session is loaded on every
    // request, so a load is usually of a session loaded before. Nothing
    // changes for a store without a cache; with one, this is the miss that
    // fills it, and `load` measures what every later request pays.
    let m = manager.clone();
    run("warm-up", tokens.clone(), concurrency, move |token| {
        let m = m.clone();
        async move {
            m.load(Some(&token)).await.expect("load");
        }
    })
    .await;

    let m = manager.clone();
    let reads: Vec<String> = (0..5).flat_map(|_| tokens.iter().cloned()).collect();
    out.push(
        run("load", reads, concurrency, move |token| {
            let m = m.clone();
            async move {
                let s = m.load(Some(&token)).await.expect("load");
                let name: Option<String> = s.get("name").expect("get");
                assert!(name.is_some(), "the session loads");
            }
        })
        .await,
    );

    let m = manager.clone();
    let writes: Vec<String> = (0..2).flat_map(|_| tokens.iter().cloned()).collect();
    out.push(
        run("update", writes, concurrency, move |token| {
            let m = m.clone();
            async move {
                let s = m.load(Some(&token)).await.expect("load");
                s.insert("last_path", &"/checkout").expect("insert");
                s.commit().await.expect("update");
            }
        })
        .await,
    );

    let m = manager.clone();
    out.push(
        run("delete", tokens, concurrency, move |token| {
            let m = m.clone();
            async move {
                assert!(m.destroy(&token).await.expect("delete"), "deleted");
            }
        })
        .await,
    );
    out
}
