//! The whole conformance suite against a Redis Cluster, one prefix per test.
//! Keys spread over every slot, so every cross-slot path is exercised.

mod common;

session_test_suite::conformance_tests!(common::cluster_store);
