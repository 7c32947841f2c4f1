//! Setting values: what is stored is exactly what was serialized, whatever
//! the value before it was and whatever its `Serialize` does.

mod common;

use common::{default_config, fixture};
use serde::ser::{Error as _, Serialize, Serializer};
use session_core::{Error, Session};

/// Serializes as `"inner"`, after setting `nested` to `1` on the session
/// while it does.
struct SetsAnotherValue<'a>(&'a Session);

impl Serialize for SetsAnotherValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.insert("nested", &1).map_err(S::Error::custom)?;
        s.serialize_str("inner")
    }
}

/// Starts a JSON array, then fails half-way through.
struct FailsHalfWay;

impl Serialize for FailsHalfWay {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(2))?;
        seq.serialize_element("written before the failure")?;
        Err(S::Error::custom("no second element"))
    }
}

#[tokio::test]
async fn a_value_that_sets_another_while_it_serializes_stores_both() {
    let f = fixture(default_config());
    let s = f.manager.new_session();
    s.insert("outer", &SetsAnotherValue(&s)).unwrap();
    let token = s.commit().await.unwrap().token().unwrap().expose();
    let s = f.manager.load(Some(&token)).await.unwrap();
    assert_eq!(s.get::<String>("outer").unwrap().as_deref(), Some("inner"));
    assert_eq!(s.get::<i64>("nested").unwrap(), Some(1));
}

#[tokio::test]
async fn a_value_that_fails_to_serialize_is_refused_and_leaves_nothing_behind() {
    let f = fixture(default_config());
    let s = f.manager.new_session();
    s.insert("kept", &"before").unwrap();
    let err = s.insert("broken", &FailsHalfWay).unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert_eq!(s.get::<serde_json::Value>("broken").unwrap(), None);
    // The next value is not written after the failed one's first half.
    s.insert("next", &[7]).unwrap();
    let token = s.commit().await.unwrap().token().unwrap().expose();
    let s = f.manager.load(Some(&token)).await.unwrap();
    assert_eq!(s.get::<Vec<i32>>("next").unwrap(), Some(vec![7]));
    assert_eq!(s.get::<String>("kept").unwrap().as_deref(), Some("before"));
    assert_eq!(s.get::<serde_json::Value>("broken").unwrap(), None);
}

#[tokio::test]
async fn a_large_value_then_a_small_one_are_each_stored_exactly() {
    let f = fixture(default_config());
    let s = f.manager.new_session();
    let large = "x".repeat(100_000);
    s.insert("large", &large).unwrap();
    s.insert("small", &"y").unwrap();
    s.insert(String::from("owned key"), &2).unwrap();
    let token = s.commit().await.unwrap().token().unwrap().expose();
    let s = f.manager.load(Some(&token)).await.unwrap();
    assert_eq!(s.get::<String>("large").unwrap(), Some(large));
    assert_eq!(s.get::<String>("small").unwrap().as_deref(), Some("y"));
    assert_eq!(s.get::<i32>("owned key").unwrap(), Some(2));
}
