//! The session payload: ten fields a web app typically keeps, about 400
//! bytes as JSON.

use serde_json::{json, Value};

/// The ten `(key, value)` pairs of session `i`.
pub fn fields(i: usize) -> Vec<(&'static str, Value)> {
    vec![
        ("user_id", json!(100_000 + i)),
        ("name", json!(format!("User Number {i}"))),
        ("email", json!(format!("user{i}@example.com"))),
        ("locale", json!("en-GB")),
        ("theme", json!("dark")),
        ("csrf", json!("q3Jx0mH6rK1fZ8VtB2nLw9YcP4sDaE7gUoTiRhMkNbQ")),
        ("cart", json!([1042, 77, 3118])),
        ("last_path", json!("/account/orders?page=2&sort=recent")),
        (
            "flags",
            json!({ "beta": true, "newsletter": false, "tour_done": true }),
        ),
        (
            "referrer",
            json!("https://www.example.org/blog/2026/11/some-article-title"),
        ),
    ]
}

/// The same fields as one JSON object, for the raw baselines.
pub fn bytes(i: usize) -> Vec<u8> {
    let map: serde_json::Map<String, Value> = fields(i)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    serde_json::to_vec(&map).expect("payload serializes")
}

/// `stored` with one byte changed, as an update writes it back: a store
/// may skip work for a value that did not change (sled does), and a session
/// update always changes something.
pub fn changed(stored: &[u8]) -> Vec<u8> {
    let mut out = stored.to_vec();
    if let Some(b) = out.get_mut(stored.len() / 2) {
        *b ^= 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_payload_is_about_400_bytes() {
        let n = super::bytes(1234).len();
        assert!((350..=450).contains(&n), "{n} bytes");
    }
}
