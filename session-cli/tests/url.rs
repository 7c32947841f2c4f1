//! `StoreUrl::parse` and `Display`: every accepted form, every kind of bad
//! input, and passwords never shown.

use std::path::PathBuf;

use session_cli::StoreUrl;
use session_core::Error;

fn parse(text: &str) -> StoreUrl {
    StoreUrl::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
}

/// Parsing fails with `InvalidInput` whose message contains `needle`.
fn rejected(text: &str, needle: &str) -> String {
    match StoreUrl::parse(text) {
        Err(Error::InvalidInput(why)) => {
            assert!(
                why.contains(needle),
                "{text:?}: message {why:?} should mention {needle:?}"
            );
            why
        }
        Err(other) => panic!("{text:?}: expected InvalidInput, got {other:?}"),
        Ok(url) => panic!("{text:?} should be rejected, parsed as {url:?}"),
    }
}

#[test]
fn memory_parses_with_or_without_slashes() {
    assert_eq!(parse("memory:"), StoreUrl::Memory);
    assert_eq!(parse("memory://"), StoreUrl::Memory);
    assert_eq!("memory:".parse::<StoreUrl>().unwrap(), StoreUrl::Memory);
}

#[test]
fn memory_with_anything_after_the_colon_is_invalid_input() {
    rejected("memory:foo", "memory:");
    rejected("memory://x", "memory:");
}

#[test]
fn sled_takes_the_rest_as_a_path() {
    assert_eq!(
        parse("sled:./data"),
        StoreUrl::Sled(PathBuf::from("./data"))
    );
    assert_eq!(
        parse("sled:/var/lib/app/sessions"),
        StoreUrl::Sled(PathBuf::from("/var/lib/app/sessions"))
    );
    assert_eq!(
        parse("sled:dir with space"),
        StoreUrl::Sled(PathBuf::from("dir with space"))
    );
}

#[test]
fn sled_without_a_path_is_invalid_input() {
    rejected("sled:", "path");
    rejected("sled:   ", "path");
}

#[test]
fn postgres_and_postgresql_urls_are_kept_as_given() {
    for url in [
        "postgres://postgres@127.0.0.1:5432/test",
        "postgresql://app:pw@db.example.com/app?sslmode=disable",
        "postgres://localhost/app",
    ] {
        assert_eq!(parse(url), StoreUrl::Postgres(url.to_owned()));
    }
}

#[test]
fn bad_postgres_urls_are_invalid_input() {
    rejected("postgres:app", "postgres://");
    rejected("postgres://h:notaport/db", "PostgreSQL");
}

#[test]
fn postgres_pooler_and_migrate_parameters_parse_and_are_kept_in_the_url() {
    for url in [
        "postgres://app@pgbouncer:6432/app?pooler=transaction",
        "postgres://app@db/app?sslmode=disable&pooler=session&migrate=false",
        "postgres://app@db/app?migrate=true",
        "postgres://app@db/app?call_timeout=500ms&pooler=transaction",
        "postgres://app@db/app?call_timeout=2s",
    ] {
        assert_eq!(parse(url), StoreUrl::Postgres(url.to_owned()));
    }
}

#[test]
fn bad_pooler_and_migrate_values_are_invalid_input_naming_the_choices() {
    rejected(
        "postgres://app@db/app?pooler=statement",
        "session or transaction",
    );
    rejected("postgres://app@db/app?migrate=no", "true or false");
    for bad in ["5", "0s", "1.5s", "-1s", "5 s", ""] {
        rejected(
            &format!("postgres://app@db/app?call_timeout={bad}"),
            "5s or 500ms",
        );
    }
}

#[test]
fn redis_urls_are_kept_as_given() {
    for url in [
        "redis://127.0.0.1:6379",
        "redis://:pw@127.0.0.1:6379/2",
        "redis://user:pw@cache.internal",
        "rediss://cache.example.com:6380",
        "redis+unix:///run/redis.sock",
    ] {
        assert_eq!(parse(url), StoreUrl::Redis(url.to_owned()));
    }
}

#[test]
fn bad_redis_urls_are_invalid_input() {
    rejected("redis:127.0.0.1", "redis://");
    rejected("rediss:host", "rediss://");
}

#[test]
fn cluster_url_becomes_one_redis_url_per_node() {
    assert_eq!(
        parse("redis+cluster://10.0.0.1:7000,10.0.0.2:7001,node-c.internal:7002"),
        StoreUrl::RedisCluster(vec![
            "redis://10.0.0.1:7000".into(),
            "redis://10.0.0.2:7001".into(),
            "redis://node-c.internal:7002".into(),
        ])
    );
    assert_eq!(
        parse("redis+cluster://127.0.0.1:7000"),
        StoreUrl::RedisCluster(vec!["redis://127.0.0.1:7000".into()])
    );
    // A trailing slash is harmless.
    assert_eq!(
        parse("redis+cluster://127.0.0.1:7000/"),
        StoreUrl::RedisCluster(vec!["redis://127.0.0.1:7000".into()])
    );
}

#[test]
fn cluster_credentials_apply_to_every_node() {
    assert_eq!(
        parse("redis+cluster://app:s3cret@h1:7000,h2:7000"),
        StoreUrl::RedisCluster(vec![
            "redis://app:s3cret@h1:7000".into(),
            "redis://app:s3cret@h2:7000".into(),
        ])
    );
    assert_eq!(
        parse("redis+cluster://:s3cret@h1:7000"),
        StoreUrl::RedisCluster(vec!["redis://:s3cret@h1:7000".into()])
    );
}

#[test]
fn cluster_nodes_may_be_ipv6_and_tls() {
    assert_eq!(
        parse("redis+cluster://[::1]:7000,[fe80::2]:7001"),
        StoreUrl::RedisCluster(vec![
            "redis://[::1]:7000".into(),
            "redis://[fe80::2]:7001".into()
        ])
    );
    assert_eq!(
        parse("rediss+cluster://h1:7000,h2:7000"),
        StoreUrl::RedisCluster(vec!["rediss://h1:7000".into(), "rediss://h2:7000".into()])
    );
}

#[test]
fn cluster_url_without_nodes_is_invalid_input() {
    rejected("redis+cluster://", "no nodes");
    rejected("redis+cluster:///", "no nodes");
    rejected("redis+cluster://user:pw@", "no nodes");
}

#[test]
fn cluster_url_with_a_bad_node_is_invalid_input() {
    rejected("redis+cluster://h1", "host:port");
    rejected("redis+cluster://h1:7000,h2", "\"h2\" is not host:port");
    rejected("redis+cluster://h1:0", "port");
    rejected("redis+cluster://h1:99999", "port");
    rejected("redis+cluster://h1:70a0", "port");
    rejected("redis+cluster://h1:+700", "port");
    rejected("redis+cluster://:7000", "host");
    rejected("redis+cluster://h1:7000,,h2:7001", "empty node");
    rejected("redis+cluster://h1:7000,", "empty node");
    rejected("redis+cluster://[::1:7000", "ipv6");
    rejected("redis+cluster://h 1:7000", "host");
}

#[test]
fn cluster_url_with_a_path_options_or_bad_shape_is_invalid_input() {
    rejected("redis+cluster://h1:7000/0", "not supported");
    rejected("redis+cluster://h1:7000?timeout=1", "not supported");
    rejected("redis+cluster:h1:7000", "redis+cluster://");
    rejected("redis+cluster://@h1:7000", "nothing before the @");
}

#[test]
fn unknown_schemes_and_scheme_less_text_are_invalid_input() {
    let why = rejected("mysql://db/app", "unknown store URL scheme \"mysql\"");
    assert!(why.contains("redis+cluster://"), "lists the forms: {why}");
    rejected("sqlite:sessions.db", "unknown store URL scheme");
    rejected("", "scheme");
    rejected("./sessions", "scheme");
    rejected("Postgres://h/db", "unknown store URL scheme");
}

#[test]
fn parse_errors_never_repeat_a_password() {
    for bad in [
        "redis+cluster://u:topsecret@h1:0",
        "redis+cluster://u:topsecret@h1:7000,,h2:1",
        "postgres://u:topsecret@h:notaport/db",
        "mysql://u:topsecret@h/db",
        "redis:u:topsecret@h",
    ] {
        match StoreUrl::parse(bad) {
            Err(e) => assert!(
                !e.to_string().contains("topsecret"),
                "{bad:?} leaked the password: {e}"
            ),
            Ok(url) => panic!("{bad:?} parsed as {url:?}"),
        }
    }
}

#[test]
fn display_hides_passwords_in_user_info() {
    for (url, shown) in [
        (
            "postgres://app:topsecret@db:5432/app",
            "postgres://app:***@db:5432/app",
        ),
        (
            "postgresql://app:top%40secret@db/app",
            "postgresql://app:***@db/app",
        ),
        (
            "redis://:topsecret@cache:6379/1",
            "redis://:***@cache:6379/1",
        ),
        ("redis://user:topsecret@cache", "redis://user:***@cache"),
        (
            "rediss://user:topsecret@cache:6380",
            "rediss://user:***@cache:6380",
        ),
        (
            "redis+cluster://app:topsecret@h1:7000,h2:7001",
            "redis+cluster://app:***@h1:7000,h2:7001",
        ),
        (
            "rediss+cluster://:topsecret@h1:7000",
            "rediss+cluster://:***@h1:7000",
        ),
    ] {
        let parsed = parse(url);
        assert_eq!(parsed.to_string(), shown);
        let debug = format!("{parsed:?}");
        assert!(!debug.contains("topsecret"), "Debug leaked: {debug}");
    }
}

#[test]
fn display_hides_password_query_parameters() {
    let url = parse("postgres://db/app?user=app&password=topsecret&sslmode=require");
    assert_eq!(
        url.to_string(),
        "postgres://db/app?user=app&password=***&sslmode=require"
    );
}

#[test]
fn display_hides_passwords_even_in_hand_built_urls() {
    // The variants are public, so Display must not rely on parse's checks.
    let url = StoreUrl::Postgres("postgres://u:pa/ss?w@rd@h/db".into());
    assert!(!url.to_string().contains("ss?w"), "{url}");
    let url = StoreUrl::RedisCluster(vec!["redis://u:topsecret@h1:1".into()]);
    assert!(!url.to_string().contains("topsecret"), "{url}");
}

#[test]
fn display_without_secrets_round_trips() {
    for url in [
        "memory:",
        "sled:./data",
        "postgres://postgres@127.0.0.1:5432/test",
        "redis://127.0.0.1:6379",
        "redis+cluster://127.0.0.1:7000,127.0.0.1:7001",
    ] {
        let parsed = parse(url);
        assert_eq!(parsed.to_string(), url);
        assert_eq!(parse(&parsed.to_string()), parsed);
    }
}

#[test]
fn backend_names_each_kind() {
    assert_eq!(parse("memory:").backend(), "memory");
    assert_eq!(parse("sled:x").backend(), "sled");
    assert_eq!(parse("postgres://h/db").backend(), "postgres");
    assert_eq!(parse("redis://h").backend(), "redis");
    assert_eq!(parse("redis+cluster://h:1").backend(), "redis-cluster");
}
