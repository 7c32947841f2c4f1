//! Token parsing never panics, and accepts only the canonical text of a
//! 32-byte token: what it accepts prints back exactly as given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_core::{SessionToken, TOKEN_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(token) = SessionToken::parse(text) {
        assert_eq!(text.len(), TOKEN_LEN);
        assert_eq!(token.expose(), text, "accepted a non-canonical token");
        assert_eq!(token.key(), SessionToken::parse(text).unwrap().key());
    }
});
