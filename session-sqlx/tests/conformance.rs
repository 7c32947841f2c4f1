//! The whole conformance suite against PostgreSQL, one schema per test.

mod common;

session_test_suite::conformance_tests!(common::fresh_store);
