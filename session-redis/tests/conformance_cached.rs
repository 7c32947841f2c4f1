//! The whole conformance suite against stores with the local cache on: a
//! standalone Redis and a Redis Cluster, one prefix per test.

mod common;

mod standalone {
    session_test_suite::conformance_tests!(crate::common::cached_store);
}

mod cluster {
    session_test_suite::conformance_tests!(crate::common::cached_cluster_store);
}
