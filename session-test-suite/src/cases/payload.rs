//! `data` is opaque bytes: kept byte for byte, whatever they are.

use std::sync::Arc;

use session_core::SessionStore;

use super::fixtures::{
    assert_listed, assert_loads, new_record, next_version, random_bytes, rotated,
};

/// One mebibyte.
const MIB: usize = 1 << 20;

/// An empty payload round-trips through `create`, `update`, `rotate` and `list_user`.
pub async fn empty_payload_round_trips(store: Arc<dyn SessionStore>) {
    let mut r = new_record(Some("alice"));
    r.data = Vec::new();
    store.create(&r).await.expect("create with empty data");
    assert_loads(&*store, &r, "create/load: empty data round-trips").await;
    let full = next_version(&r, b"not empty");
    store.update(&full, 1).await.expect("update to non-empty");
    let empty = next_version(&full, b"");
    store.update(&empty, 2).await.expect("update back to empty");
    assert_loads(&*store, &empty, "update: empty data is written as given").await;
    let moved = rotated(&empty, b"");
    store
        .rotate(&empty.key, &moved, 3)
        .await
        .expect("rotate with empty data");
    assert_loads(&*store, &moved, "rotate: empty data is written as given").await;
    assert_listed(
        &*store,
        "alice",
        std::slice::from_ref(&moved),
        "list_user returns empty data",
    )
    .await;
}

/// 1 MiB of pseudo-random bytes (NULs, invalid UTF-8) round-trips through every write.
pub async fn one_mebibyte_of_random_bytes_round_trips(store: Arc<dyn SessionStore>) {
    let first = random_bytes(0x5EED_0001, MIB);
    assert!(first.contains(&0), "the test payload must contain 0x00");
    assert!(
        std::str::from_utf8(&first).is_err(),
        "the test payload must not be valid UTF-8"
    );
    let mut r = new_record(Some("alice"));
    r.data = first;
    store.create(&r).await.expect("create with 1 MiB of data");
    assert_loads(&*store, &r, "create/load: 1 MiB of data, byte for byte").await;

    let v2 = next_version(&r, &random_bytes(0x5EED_0002, MIB));
    store
        .update(&v2, 1)
        .await
        .expect("update with 1 MiB of data");
    assert_loads(&*store, &v2, "update: 1 MiB of data, byte for byte").await;

    let v3 = rotated(&v2, &random_bytes(0x5EED_0003, MIB + 1));
    store
        .rotate(&v2.key, &v3, 2)
        .await
        .expect("rotate with 1 MiB of data");
    assert_loads(&*store, &v3, "rotate: 1 MiB + 1 of data, byte for byte").await;
    assert_listed(
        &*store,
        "alice",
        std::slice::from_ref(&v3),
        "list_user returns 1 MiB of data byte for byte",
    )
    .await;
}

/// Every byte value 0..=255, and classic invalid UTF-8 sequences, round-trip.
pub async fn every_byte_value_round_trips(store: Arc<dyn SessionStore>) {
    let ascending: Vec<u8> = (0..=255u8).collect();
    let descending: Vec<u8> = (0..=255u8).rev().collect();
    let tricky: Vec<Vec<u8>> = vec![
        vec![0],
        vec![0, 0, 0],
        vec![0xff],
        vec![0xc0, 0x80],
        vec![0xed, 0xa0, 0x80],
        vec![0xef, 0xbb, 0xbf, b'x'],
        vec![0xfe, 0xff, 0, b'a'],
        b"\\x00 \\\\ ' \" % _ * ? [ ] { } : \r\n".to_vec(),
        b"\x1f\x8b\x08\x00".to_vec(),
        vec![b'a'; 3].into_iter().chain([0x80]).collect(),
    ];
    let mut records = Vec::new();
    for data in std::iter::once(ascending.clone())
        .chain(std::iter::once(descending))
        .chain(tricky)
    {
        let mut r = new_record(Some("bytes"));
        r.data = data;
        store.create(&r).await.expect("create");
        records.push(r);
    }
    for r in &records {
        assert_loads(&*store, r, "create/load: data round-trips byte for byte").await;
    }
    assert_listed(
        &*store,
        "bytes",
        &records,
        "list_user returns data byte for byte",
    )
    .await;
    let twice: Vec<u8> = ascending.iter().chain(&ascending).copied().collect();
    let v2 = next_version(&records[0], &twice);
    store.update(&v2, 1).await.expect("update");
    assert_loads(&*store, &v2, "update: every byte value written as given").await;
}

/// A shorter payload written by `update` leaves no stale trailing bytes.
pub async fn shrinking_update_leaves_no_stale_bytes(store: Arc<dyn SessionStore>) {
    let mut r = new_record(None);
    r.data = random_bytes(7, 64 * 1024);
    store.create(&r).await.expect("create");
    let v2 = next_version(&r, &r.data[..3]);
    store.update(&v2, 1).await.expect("update to 3 bytes");
    assert_loads(&*store, &v2, "update: data is exactly the 3 bytes written").await;
    let v3 = next_version(&v2, &random_bytes(8, 100));
    store.update(&v3, 2).await.expect("update to 100 bytes");
    assert_loads(
        &*store,
        &v3,
        "update: data is exactly the 100 bytes written",
    )
    .await;
}
