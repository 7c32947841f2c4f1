//! Client-side sessions: any cookie value (and any split of it into chunks)
//! loads as a fresh session or, if it is a valid seal, as that session;
//! never a panic, never an error (there is no revocation list to fail).
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_core::{ClientSide, KeyRing, SessionConfig, SessionManager};

thread_local! {
    static MANAGER: (tokio::runtime::Runtime, SessionManager) = (
        tokio::runtime::Builder::new_current_thread().build().expect("runtime"),
        SessionManager::client_side(
            SessionConfig::default().sealing_keys(KeyRing::new(1, [7; 32])),
            ClientSide::new().chunks(4),
        )
        .expect("valid config"),
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    MANAGER.with(|(rt, manager)| {
        let client = manager.client().expect("client-side");
        // The text as a whole value, and as a first chunk whose further
        // chunks are the text again.
        let joined = client.join(text, |_| Some(text));
        for value in [Some(text.to_owned()), joined] {
            let session = rt
                .block_on(manager.load_cookie("__Host-session", value.as_deref()))
                .expect("loading a cookie never fails without a revocation list");
            let _ = (session.user(), session.get::<serde_json::Value>("k"));
        }
    });
});
