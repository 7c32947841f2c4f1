//! Sealed-envelope opening: with sealing keys configured, any bytes in a
//! record's data fail with `Error::Decode` (forging the AEAD tag is out of a
//! fuzzer's reach) or load; never a panic, never another error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_core::{KeyRing, SessionConfig};

#[path = "decode_common.rs"]
mod common;

thread_local! {
    static HARNESS: common::Harness = common::Harness::new(
        SessionConfig::default().sealing_keys(
            KeyRing::new(1, [7; 32]).with_key(2, [9; 32]).expect("distinct ids"),
        ),
    );
}

fuzz_target!(|data: &[u8]| {
    HARNESS.with(|h| {
        // Behind the sealed format byte, so the fuzzer works on the envelope
        // header (key id, nonce, lengths), and raw.
        let mut sealed = Vec::with_capacity(data.len() + 1);
        sealed.push(0x02);
        sealed.extend_from_slice(data);
        h.load(&sealed, Some("alice"));
        h.load(data, None);
    });
});
