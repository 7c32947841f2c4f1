//! The list of cases, for runners that are not `cargo test`.

use crate::harness::CaseFn;

/// One named case of the suite.
#[derive(Clone, Copy)]
pub struct Case {
    /// The case's function name, as in `conformance::<name>`.
    pub name: &'static str,
    /// Runs the case against a store.
    pub run: CaseFn,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case").field("name", &self.name).finish()
    }
}

crate::__with_cases!(__registry());
