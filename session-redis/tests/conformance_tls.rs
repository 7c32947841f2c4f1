//! The whole conformance suite over TLS (`rediss://`), against a server whose
//! certificate a private CA signed (CI makes both: `.ci/redis-tls.sh`).

mod common;

session_test_suite::conformance_tests!(common::tls_store);
