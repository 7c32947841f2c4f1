//! The whole conformance suite on a Redis Cluster over TLS (`rediss://` node
//! URLs, TLS on the cluster bus too), whose certificates a private CA signed
//! (CI makes both: `.ci/redis-tls.sh`).

mod common;

session_test_suite::conformance_tests!(common::tls_cluster_store);
