//! `Debug` of a [`RedisStore`] shows its mode and key prefix and never the
//! password it connected with.

mod common;

use common::URL_VAR;
use session_redis::{RedisOptions, RedisStore};
use session_test_suite::url_or_skip;

#[tokio::test]
async fn debug_of_a_store_connected_with_a_password_url_never_shows_the_password() {
    let Some(url) = url_or_skip(URL_VAR, "debug_of_a_store_connected_with_a_password_url") else {
        return;
    };
    let mut parsed = redis::parse_redis_url(&url).expect("a Redis URL");
    // The server's own password if the URL has one; otherwise a unique one,
    // which the default user of a server without `requirepass` accepts.
    let secret = match parsed.password() {
        Some(password) => password.to_owned(),
        None => {
            let secret = format!(
                "pw{}",
                &session_core::SessionToken::generate().key().to_hex()[..20]
            );
            parsed.set_username("default").unwrap();
            parsed.set_password(Some(&secret)).unwrap();
            secret
        }
    };
    let store = RedisStore::connect(parsed.as_str(), RedisOptions::default())
        .await
        .expect("connect with a password in the URL");
    let debug = format!("{store:?} {store:#?}");
    assert!(!debug.contains(&secret), "{debug}");
    assert!(debug.contains("session:"), "the prefix: {debug}");
}
