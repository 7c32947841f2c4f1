//! What a backend author sees when a case fails: the case's name and file,
//! the contract sentence, payloads as a length and a short hex prefix, and
//! (for runners such as `sessionctl check`) a message rather than a panic
//! printed on stderr.

use std::sync::Arc;

use async_trait::async_trait;
use session_core::{MemoryStore, Record, Result, SessionId, SessionKey, SessionStore, Timestamp};
use session_test_suite::{cases, run_case, run_test, Provision};

/// A store that damages the last byte of every payload it returns.
#[derive(Debug, Default)]
struct Corrupting(MemoryStore);

#[async_trait]
impl SessionStore for Corrupting {
    async fn create(&self, r: &Record) -> Result<()> {
        self.0.create(r).await
    }
    async fn load(&self, key: &SessionKey) -> Result<Option<Record>> {
        let mut found = self.0.load(key).await?;
        if let Some(last) = found.as_mut().and_then(|r| r.data.last_mut()) {
            *last ^= 1;
        }
        Ok(found)
    }
    async fn update(&self, r: &Record, v: u64) -> Result<()> {
        self.0.update(r, v).await
    }
    async fn touch(&self, key: &SessionKey, at: Timestamp) -> Result<()> {
        self.0.touch(key, at).await
    }
    async fn rotate(&self, old: &SessionKey, r: &Record, v: u64) -> Result<()> {
        self.0.rotate(old, r, v).await
    }
    async fn delete(&self, key: &SessionKey) -> Result<bool> {
        self.0.delete(key).await
    }
    async fn delete_id(&self, user: &str, id: SessionId) -> Result<bool> {
        self.0.delete_id(user, id).await
    }
    async fn list_user(&self, user: &str) -> Result<Vec<Record>> {
        self.0.list_user(user).await
    }
    async fn delete_user(&self, user: &str, keep: Option<&SessionKey>) -> Result<u64> {
        self.0.delete_user(user, keep).await
    }
    async fn purge_expired(&self) -> Result<u64> {
        self.0.purge_expired().await
    }
}

fn message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

#[test]
fn a_failing_case_names_itself_its_file_and_the_contract_sentence_with_short_payloads() {
    let failed = std::panic::catch_unwind(|| {
        run_test(
            "one_mebibyte_of_random_bytes_round_trips",
            std::any::type_name_of_val(&cases::one_mebibyte_of_random_bytes_round_trips),
            || async { Provision::ready(Corrupting::default()) },
            |s| Box::pin(cases::one_mebibyte_of_random_bytes_round_trips(s)),
        )
    })
    .expect_err("the corrupting store fails the case");
    let text = message(failed);
    assert!(
        text.starts_with(
            "conformance case one_mebibyte_of_random_bytes_round_trips \
             (session-test-suite/src/cases/payload.rs) failed:"
        ),
        "{text}"
    );
    assert!(
        text.contains("data differs"),
        "the field that differs: {text}"
    );
    assert!(
        text.len() < 1000,
        "no payload dump ({} bytes): {text}",
        text.len()
    );
}

#[tokio::test]
async fn run_case_reports_a_failure_as_a_message() {
    let store: Arc<dyn SessionStore> = Arc::new(Corrupting::default());
    let outcome = run_case(
        |s| Box::pin(cases::create_then_load_returns_every_field_exactly(s)),
        store,
    )
    .await;
    let failure = outcome.failure.expect("the case fails");
    assert!(
        failure.contains("load must return the record exactly as created"),
        "the contract sentence: {failure}"
    );
    assert!(
        failure.contains("data: 7 bytes: 7b226b223a317c"),
        "the payload as its length and hex: {failure}"
    );
    assert!(failure.len() < 1000, "{failure}");
}
