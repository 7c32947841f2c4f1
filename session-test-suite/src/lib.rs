//! The conformance suite for [`SessionStore`](session_core::SessionStore) backends.
//!
//! Every case is a plain `pub async fn(Arc<dyn SessionStore>)` in [`cases`] that
//! panics with a message saying which contract sentence broke. A backend crate
//! runs them all with one line in a test file:
//!
//! ```ignore
//! session_test_suite::conformance_tests!(|| async {
//!     session_test_suite::Provision::ready(session_core::MemoryStore::new())
//! });
//! ```
//!
//! That expands to a module `conformance` with one `#[test]` per case, so
//! `cargo test conformance::create_rejects_a_live_duplicate` runs one case. The
//! factory runs once per test, so every case gets its own store (or its own
//! prefix, schema or folder) and cases run in parallel. A factory returns
//! [`Provision::Skip`] when its server is not available (see
//! [`server_url`]): the test is then reported as skipped on stderr, loudly, or
//! fails when the `CI` variable is set.
//!
//! [`CASES`] lists every case by name for runners that check a live deployment
//! (`sessionctl check`), through [`run_case`].

pub mod cases;
mod env;
mod harness;
mod registry;

pub use env::{ci_mode, server_url};
pub use harness::{run_case, run_test, CaseFn, CaseFuture, CaseOutcome, Provision, TestStore};
pub use registry::{Case, CASES};

/// Expands every conformance case into its own test, inside `mod conformance`.
///
/// The argument is an expression for a factory: something callable with no
/// arguments that returns a future of a [`Provision`] (or of anything that
/// converts into one, such as a store). It is called once per test.
///
/// ```ignore
/// session_test_suite::conformance_tests!(my_backend_tests::fresh_store);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        #[cfg(test)]
        mod conformance {
            #[allow(unused_imports)]
            use super::*;
            $crate::__with_cases!(__conformance_test_fns($factory));
        }
    };
}

/// Calls `$crate::$callback!{ ($args) case_a case_b … }` with every case name.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_cases {
    ($callback:ident ($($args:tt)*)) => {
        $crate::$callback! { ($($args)*)
            // crud
            create_then_load_returns_every_field_exactly
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test_fns {
    (($factory:expr) $($case:ident)*) => {
        $(
            #[test]
            fn $case() {
                $crate::run_test(
                    stringify!($case),
                    $factory,
                    |store| ::std::boxed::Box::pin($crate::cases::$case(store)),
                );
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __registry {
    (() $($case:ident)*) => {
        /// Every case of the suite, by name, in a stable order.
        pub static CASES: &[$crate::Case] = &[
            $(
                $crate::Case {
                    name: stringify!($case),
                    run: |store| ::std::boxed::Box::pin($crate::cases::$case(store)),
                },
            )*
        ];
    };
}
