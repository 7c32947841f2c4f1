//! Tokens never reach the logs: a full login / counter / sessions / logout
//! cycle (plus stale and malformed tokens) with every `tracing` event down to
//! TRACE captured, and no token in the capture.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{start, Client};
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn no_token_appears_in_trace_level_logs_across_a_full_session_cycle() {
    let capture = Capture::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .init();

    let demo = start().await;
    let c = Client::new(&demo, "log-test");
    let mut tokens = Vec::new();
    c.post_empty("/api/counter").await;
    tokens.extend(c.token());
    c.login("alice").await;
    tokens.extend(c.token());
    c.post_empty("/api/counter").await;
    c.get("/api/sessions").await;
    c.get("/").await;
    let before_logout = c.token();
    c.post_empty("/api/logout").await;
    // A stale token, and a malformed one.
    let stale = Client::new(&demo, "log-test");
    stale.set_token(before_logout);
    stale.get("/api/me").await;
    stale.set_token(Some("not-a-token-but-looks-secret-0123456789abcdef".into()));
    stale.get("/api/me").await;

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("session loaded") && logs.contains("session committed"),
        "the capture holds the layer's TRACE events:\n{logs}"
    );
    assert!(tokens.len() >= 2, "tokens were issued");
    for token in &tokens {
        assert!(
            !logs.contains(token.as_str()),
            "a token reached the logs:\n{logs}"
        );
        assert!(
            !logs.contains(&token[..16]),
            "part of a token reached the logs"
        );
    }
    assert!(
        !logs.contains("not-a-token-but-looks-secret"),
        "a presented cookie value was logged"
    );
}
