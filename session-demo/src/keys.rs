//! Sealing keys for client-side sessions, from the environment.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use session_core::KeyRing;

/// The variable that holds the keys: `ID:BASE64[,ID:BASE64…]`, each key 32
/// bytes from a CSPRNG (`head -c 32 /dev/urandom | base64`). The highest id
/// seals new cookies; every listed key opens. Rotate by adding a key with a
/// higher id; retire the old one once its cookies have expired (the
/// absolute timeout after the switch).
pub const KEYS_VAR: &str = "SESSION_DEMO_KEYS";

/// The key ring in [`KEYS_VAR`]. The message says what is wrong without
/// repeating any key.
pub fn from_env() -> Result<KeyRing, String> {
    match std::env::var(KEYS_VAR) {
        Ok(text) => parse(&text).map_err(|e| format!("{KEYS_VAR}: {e}")),
        Err(_) => Err(format!(
            "--client-side needs sealing keys in {KEYS_VAR}, for example \
             {KEYS_VAR}=1:$(head -c 32 /dev/urandom | base64)"
        )),
    }
}

/// Parses `ID:BASE64[,ID:BASE64…]`.
pub fn parse(text: &str) -> Result<KeyRing, String> {
    let mut ring: Option<KeyRing> = None;
    for (n, entry) in text.split(',').map(str::trim).enumerate() {
        let n = n + 1;
        let (id, key) = entry
            .split_once(':')
            .ok_or_else(|| format!("entry {n} is not ID:BASE64"))?;
        let id: u32 = id
            .trim()
            .parse()
            .map_err(|_| format!("entry {n}: the id is not a whole number"))?;
        let key = decode_key(key).map_err(|e| format!("key {id} {e}"))?;
        ring = Some(match ring {
            None => KeyRing::new(id, key),
            Some(ring) => ring
                .with_key(id, key)
                .map_err(|_| format!("key id {id} appears twice"))?,
        });
    }
    ring.ok_or_else(|| "no keys".to_owned())
}

/// 32 bytes in standard or URL-safe base64, padded or not; the error says
/// what is wrong without repeating the key.
pub fn decode_key(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    let bytes = [&STANDARD, &URL_SAFE, &URL_SAFE_NO_PAD, &STANDARD_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or_else(|| "is not base64".to_owned())?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("is {} bytes, not 32", b.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_with_ids_and_the_highest_seals() {
        let k1 = STANDARD.encode([1u8; 32]);
        let k2 = URL_SAFE_NO_PAD.encode([2u8; 32]);
        let ring = parse(&format!("1:{k1}, 7:{k2}")).unwrap();
        assert_eq!(ring.newest_id(), 7);
    }

    #[test]
    fn mistakes_say_what_is_wrong_and_never_show_the_key() {
        let short = STANDARD.encode([9u8; 16]);
        for (text, want) in [
            ("", "not ID:BASE64"),
            ("abc", "not ID:BASE64"),
            ("x:AAAA", "not a whole number"),
            ("1:!!!", "not base64"),
            (&format!("1:{short}") as &str, "16 bytes, not 32"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(!e.contains(&short), "{e}");
        }
        let k = STANDARD.encode([1u8; 32]);
        assert!(parse(&format!("1:{k},1:{k}"))
            .unwrap_err()
            .contains("twice"));
    }
}
