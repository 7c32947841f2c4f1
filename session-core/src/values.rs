//! [`Values`]: a session's values as JSON text, keyed by name.
//!
//! A load copies the stored keys and values into one buffer and notes where
//! each sits in it, instead of giving every key and value an allocation of
//! its own: for a typical session of ten values that is two allocations
//! instead of about twenty, on every request. A value the request sets is
//! held on its own (for `insert`, shared with the pending change rather than
//! copied); the rest stay in the buffer, and a save writes them back
//! verbatim.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A key or a value: a span of the buffer, or text of its own (reference
/// counted, so copying the values copies no text, and a pending change can
/// share it).
#[derive(Clone)]
enum Text {
    At(usize, usize),
    Own(Arc<str>),
}

impl Text {
    fn resolve<'a>(&'a self, buffer: &'a str) -> &'a str {
        match self {
            // Spans are made by `from_parsed` and `Builder` within their
            // buffer, on char boundaries; `get` keeps a bad span from ever
            // panicking.
            Self::At(start, end) => buffer.get(*start..*end).unwrap_or_default(),
            Self::Own(text) => text,
        }
    }

    /// [`resolve`](Self::resolve)'s bytes, for comparing: `str` orders by
    /// its bytes, and this skips the char boundary checks on the hot paths
    /// (every load checks its keys' order, every read searches them).
    fn bytes<'a>(&'a self, buffer: &'a str) -> &'a [u8] {
        match self {
            Self::At(start, end) => buffer.as_bytes().get(*start..*end).unwrap_or_default(),
            Self::Own(text) => text.as_bytes(),
        }
    }
}

/// The values of one session: JSON text by key, in key order.
#[derive(Clone, Default)]
pub(crate) struct Values {
    /// The stored keys and values, as read (empty for a new session).
    buffer: String,
    /// Sorted by key, keys unique.
    entries: Vec<(Text, Text)>,
}

impl Values {
    /// Reads the JSON object `json` (a map of key to any JSON value). A key
    /// that occurs twice keeps its last value.
    #[cfg(test)]
    pub(crate) fn from_json(json: &str) -> serde_json::Result<Self> {
        let parsed: Borrowed<'_> = serde_json::from_str(json)?;
        Ok(Self::from_parsed(json, parsed))
    }

    /// The values `parsed` from (part of) `json`, kept as spans of one copy
    /// of `json` wherever their text lies in it.
    pub(crate) fn from_parsed(json: &str, parsed: Borrowed<'_>) -> Self {
        let base = json.as_ptr() as usize;
        let span = |s: &str| {
            let start = (s.as_ptr() as usize).wrapping_sub(base);
            match start
                .checked_add(s.len())
                .and_then(|end| json.get(start..end))
            {
                // Only text that really lies inside `json`, at that place.
                Some(inside) if std::ptr::eq(inside.as_ptr(), s.as_ptr()) => {
                    Text::At(start, start + s.len())
                }
                _ => Text::Own(Arc::from(s)),
            }
        };
        let entries: Vec<(Text, Text)> = parsed
            .0
            .into_iter()
            .map(|(key, value)| {
                let key = match key {
                    Cow::Borrowed(k) => span(k),
                    // The key had escapes: its text is not in the buffer.
                    Cow::Owned(k) => Text::Own(Arc::from(k)),
                };
                (key, span(value.get()))
            })
            .collect();
        Self::ordered(json.to_owned(), entries)
    }

    /// Our own writes are already sorted and unique; anything else is put
    /// in order, the last of equal keys winning.
    fn ordered(buffer: String, mut entries: Vec<(Text, Text)>) -> Self {
        let in_order = entries
            .windows(2)
            .all(|w| w[0].0.bytes(&buffer) < w[1].0.bytes(&buffer));
        if !in_order {
            entries.reverse();
            entries.sort_by(|a, b| a.0.bytes(&buffer).cmp(b.0.bytes(&buffer)));
            entries.dedup_by(|later, earlier| later.0.bytes(&buffer) == earlier.0.bytes(&buffer));
        }
        Self { buffer, entries }
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|(k, _)| k.bytes(&self.buffer).cmp(key.as_bytes()))
    }

    /// The JSON text stored under `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.find(key)
            .ok()
            .map(|i| self.entries[i].1.resolve(&self.buffer))
    }

    /// Whether `key` is set.
    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Sets `key` to `json`, which must be one JSON value. Both are shared,
    /// not copied.
    pub(crate) fn insert(&mut self, key: &Arc<str>, json: Arc<str>) {
        match self.find(key) {
            Ok(i) => self.entries[i].1 = Text::Own(json),
            Err(i) => self
                .entries
                .insert(i, (Text::Own(Arc::clone(key)), Text::Own(json))),
        }
    }

    /// Removes `key`.
    pub(crate) fn remove(&mut self, key: &str) {
        if let Ok(i) = self.find(key) {
            self.entries.remove(i);
        }
    }

    /// Removes every value.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// `(key, JSON text)` pairs in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|(k, v)| (k.resolve(&self.buffer), v.resolve(&self.buffer)))
    }

    /// How many values there are.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Collects `(key, JSON text)` pairs into one buffer.
pub(crate) struct Builder {
    buffer: Vec<u8>,
    entries: Vec<(Text, Text)>,
}

impl Builder {
    /// Room for `entries` pairs of `bytes` bytes in all.
    pub(crate) fn with_capacity(entries: usize, bytes: usize) -> Self {
        Self {
            buffer: Vec::with_capacity(bytes),
            entries: Vec::with_capacity(entries),
        }
    }

    /// Adds a pair (copied, checked by [`finish`](Self::finish)); of two
    /// pairs with the same key the later wins.
    pub(crate) fn push(&mut self, key: &[u8], json: &[u8]) {
        let mut span = |text: &[u8]| {
            let start = self.buffer.len();
            self.buffer.extend_from_slice(text);
            Text::At(start, self.buffer.len())
        };
        let key = span(key);
        let value = span(json);
        self.entries.push((key, value));
    }

    /// The values, in key order, or the error of a key or value that is not
    /// UTF-8.
    ///
    /// The buffer is checked in one pass rather than text by text (a tenth
    /// or more of a load's instructions went to checking twenty short
    /// texts). The texts lie end to end in it, so when the whole is UTF-8
    /// and each text starts on a char boundary, each text is UTF-8 on its
    /// own. (An error's offset counts from the start of the values.)
    pub(crate) fn finish(self) -> Result<Values, std::str::Utf8Error> {
        for (key, value) in &self.entries {
            for text in [key, value] {
                if let Text::At(start, end) = *text {
                    // A continuation byte (0b10xx_xxxx) cannot start a char:
                    // the text alone is not UTF-8, and this returns its error.
                    if self.buffer.get(start).is_some_and(|&b| b & 0xC0 == 0x80) {
                        std::str::from_utf8(&self.buffer[start..end])?;
                    }
                }
            }
        }
        let buffer = String::from_utf8(self.buffer).map_err(|e| e.utf8_error())?;
        Ok(Values::ordered(buffer, self.entries))
    }
}

impl PartialEq for Values {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for Values {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A JSON object as parsed, borrowing from the input where it can.
pub(crate) struct Borrowed<'de>(Vec<(Cow<'de, str>, &'de RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Borrowed<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = Borrowed<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of session values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    out.push((key.0, map.next_value::<&'de RawValue>()?));
                }
                Ok(Borrowed(out))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

/// A map key, borrowed unless it had escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// The JSON object of `v`.
    fn written(v: &Values) -> String {
        let pairs: Vec<String> = v
            .iter()
            .map(|(k, json)| format!("{}:{json}", serde_json::to_string(k).unwrap()))
            .collect();
        format!("{{{}}}", pairs.join(","))
    }

    #[test]
    fn keys_out_of_order_are_sorted_and_the_last_of_a_repeated_key_wins() {
        let v = Values::from_json(r#"{"b":1, "a":[2], "b":{"x":3}}"#).unwrap();
        assert_eq!(v.get("a"), Some("[2]"));
        assert_eq!(v.get("b"), Some(r#"{"x":3}"#));
        assert_eq!(written(&v), r#"{"a":[2],"b":{"x":3}}"#);
    }

    #[test]
    fn escaped_keys_and_values_read_and_write_back_unchanged() {
        let json = r#"{"a\"b\u00e9":"c\\d\n","plain":"\u2603"}"#;
        let v = Values::from_json(json).unwrap();
        assert_eq!(v.get("a\"bé"), Some(r#""c\\d\n""#));
        assert_eq!(v.get("plain"), Some(r#""\u2603""#));
        let again = Values::from_json(&written(&v)).unwrap();
        assert_eq!(again, v);
    }

    #[test]
    fn anything_but_an_object_of_values_is_an_error() {
        for bad in ["[1]", "1", r#"{"a":}"#, r#"{"a":1"#, "", r#"{1:2}"#] {
            assert!(Values::from_json(bad).is_err(), "{bad:?}");
        }
    }

    #[derive(Clone, Debug)]
    enum Change {
        Insert(String, u32),
        Remove(String),
        Clear,
    }

    fn change() -> impl Strategy<Value = Change> {
        let key = "[a-e\"é]{0,3}";
        prop_oneof![
            4 => (key, any::<u32>()).prop_map(|(k, n)| Change::Insert(k, n)),
            2 => key.prop_map(Change::Remove),
            1 => Just(Change::Clear),
        ]
    }

    proptest! {
        /// Read from JSON, then changed: always the same as a plain map.
        #[test]
        fn values_behave_like_a_sorted_map(
            start in proptest::collection::btree_map("[a-e\"é]{0,3}", any::<i64>(), 0..8),
            changes in proptest::collection::vec(change(), 0..16),
        ) {
            let mut model: BTreeMap<String, String> = start
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect();
            let mut values = Values::from_json(&serde_json::to_string(&start).unwrap()).unwrap();
            for c in changes {
                match c {
                    Change::Insert(k, n) => {
                        values.insert(&Arc::from(k.as_str()), n.to_string().into());
                        model.insert(k, n.to_string());
                    }
                    Change::Remove(k) => {
                        values.remove(&k);
                        model.remove(&k);
                    }
                    Change::Clear => {
                        values.clear();
                        model.clear();
                    }
                }
                let seen: Vec<(&str, &str)> = values.iter().collect();
                let expected: Vec<(&str, &str)> =
                    model.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                prop_assert_eq!(seen, expected);
                for k in model.keys() {
                    prop_assert!(values.contains_key(k));
                }
            }
            let reread = Values::from_json(&written(&values)).unwrap();
            prop_assert_eq!(reread, values);
        }
    }
}
