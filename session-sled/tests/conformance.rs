//! The whole conformance suite against a temporary sled database per test.

use session_sled::{SledOptions, SledStore};

session_test_suite::conformance_tests!(|| async {
    SledStore::temporary(SledOptions::default()).expect("open a temporary sled database")
});
