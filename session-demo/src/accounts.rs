//! The demo's two accounts.

use sha2::{Digest, Sha256};

/// `(user, SHA-256 of the password)`. Comparing digests keeps the check's
/// timing independent of how much of a guess matches the password.
const ACCOUNTS: [(&str, &str); 2] = [("alice", "alice-password"), ("bob", "bob-password")];

/// Whether `password` is `username`'s.
pub fn verify(username: &str, password: &str) -> bool {
    let given: [u8; 32] = Sha256::digest(password.as_bytes()).into();
    ACCOUNTS.iter().any(|(user, pass)| {
        let expected: [u8; 32] = Sha256::digest(pass.as_bytes()).into();
        *user == username && given == expected
    })
}

#[cfg(test)]
mod tests {
    use super::verify;

    #[test]
    fn only_the_right_password_for_the_right_user_verifies() {
        assert!(verify("alice", "alice-password"));
        assert!(verify("bob", "bob-password"));
        assert!(!verify("alice", "bob-password"));
        assert!(!verify("alice", ""));
        assert!(!verify("carol", "carol-password"));
    }
}
