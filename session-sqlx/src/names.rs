//! Schema and table names: validated, then quoted.

use session_core::{Error, Result};

/// A PostgreSQL identifier we accept for a schema or table: 1 to 63 ASCII
/// letters, digits or underscores, not starting with a digit. Anything else is
/// refused rather than escaped, so no name ever reaches SQL unvalidated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ident(String);

impl Ident {
    pub(crate) fn new(what: &str, name: &str) -> Result<Self> {
        let ok = (1..=63).contains(&name.len())
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(Error::InvalidInput(format!(
                "{what} name {name:?} is not a plain identifier (1-63 of A-Z a-z 0-9 _, not starting with a digit)"
            )))
        }
    }

    /// The name as given (for messages and lock keys).
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Double-quoted, so case is kept and keywords are safe.
    pub(crate) fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_identifiers_pass_and_everything_else_is_invalid_input() {
        for good in ["sessions", "Sessions_2", "_x", &"a".repeat(63)] {
            assert!(Ident::new("table", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "a-b",
            "a b",
            "a\"b",
            "s;drop table x",
            "é",
            "a.b",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(Ident::new("table", bad), Err(Error::InvalidInput(_))),
                "{bad:?}"
            );
        }
    }
}
