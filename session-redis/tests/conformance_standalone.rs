//! The whole conformance suite against a standalone Redis, one prefix per test.

mod common;

session_test_suite::conformance_tests!(common::standalone_store);
