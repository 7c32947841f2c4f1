//! Stored-record decoding (no sealing): any bytes in a record's data load as
//! a session or fail with `Error::Decode`; never a panic, never another error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_core::SessionConfig;

#[path = "decode_common.rs"]
mod common;

thread_local! {
    static HARNESS: common::Harness = common::Harness::new(SessionConfig::default());
}

fuzz_target!(|data: &[u8]| {
    HARNESS.with(|h| {
        // As written by this version (format byte 0x03, then framed), as
        // written by earlier ones (0x01, then JSON), and raw.
        for format in [0x03, 0x01] {
            let mut plain = Vec::with_capacity(data.len() + 1);
            plain.push(format);
            plain.extend_from_slice(data);
            h.load(&plain, Some("alice"));
        }
        h.load(data, None);
    });
});
