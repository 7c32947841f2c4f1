//! The suite's pgbouncer of a test's own.

pub use session_test_suite::pgbouncer::PgBouncer;
