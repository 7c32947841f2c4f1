//! A stolen sled folder holds no session token: not in any tree, not in any
//! file on disk.

mod common;

use std::sync::Arc;

use common::TempDir;
use session_core::{SessionConfig, SessionManager};
use session_sled::{Durability, SledOptions, SledStore};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn no_session_token_appears_in_any_tree_or_file() {
    let dir = TempDir::new("no-token");
    let db = sled::Config::new().path(&dir.0).open().unwrap();
    let options = SledOptions::default().durability(Durability::EveryWrite);
    let store = SledStore::from_db(db.clone(), options).unwrap();
    let manager = SessionManager::new(Arc::new(store), SessionConfig::default()).unwrap();

    // Tokens from every path that issues one: create, login rotation,
    // explicit rotation; plus plain updates.
    let mut tokens = Vec::new();
    for n in 0..20 {
        let s = manager.load(None).await.unwrap();
        s.insert("n", &n).unwrap();
        let t = s.commit().await.unwrap().token().unwrap().clone();
        tokens.push(t.clone());
        let s = manager.load_token(t).await.unwrap();
        s.login(format!("user-{}", n % 3)).unwrap();
        let t = s.commit().await.unwrap().token().unwrap().clone();
        tokens.push(t.clone());
        let s = manager.load_token(t).await.unwrap();
        s.rotate();
        s.insert("n", &(n + 1)).unwrap();
        let t = s.commit().await.unwrap().token().unwrap().clone();
        tokens.push(t);
    }
    db.flush_async().await.unwrap();

    let needles: Vec<(String, Vec<u8>)> = tokens
        .iter()
        .map(|t| (t.expose(), t.expose_bytes().to_vec()))
        .collect();
    let mut entries = 0;
    for name in db.tree_names() {
        let tree = db.open_tree(&name).unwrap();
        for item in tree.iter() {
            let (k, v) = item.unwrap();
            entries += 1;
            for (text, bytes) in &needles {
                for part in [&name[..], &k[..], &v[..]] {
                    assert!(!contains(part, text.as_bytes()), "token text in a tree");
                    assert!(!contains(part, bytes), "token bytes in a tree");
                }
            }
        }
    }
    assert!(
        entries >= 20,
        "the scan saw the stored sessions ({entries})"
    );
    drop(manager);
    drop(db);

    let mut files = 0;
    let mut stack = vec![dir.0.clone()];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            files += 1;
            let raw = std::fs::read(&path).unwrap();
            for (text, bytes) in &needles {
                assert!(!contains(&raw, text.as_bytes()), "token text in {path:?}");
                assert!(!contains(&raw, bytes), "token bytes in {path:?}");
            }
        }
    }
    assert!(files > 0);
}
