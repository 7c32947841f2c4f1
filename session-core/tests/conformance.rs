//! The whole conformance suite against `MemoryStore`.

use session_core::MemoryStore;

session_test_suite::conformance_tests!(|| async { MemoryStore::new() });
