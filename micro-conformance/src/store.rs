//! Store conformance suite: every store plugin must pass it.
//!
//! Each `check_*` function is one case and takes a fresh `Arc<dyn Store>`.
//! [`store_suite!`](crate::store_suite) turns every case into a `#[tokio::test]` of the calling
//! crate, each against a fresh store from the factory:
//!
//! ```ignore
//! use micro_core::store::Store;
//! use std::sync::Arc;
//!
//! micro_conformance::store_suite!(async || Arc::new(MyStore::new()) as Arc<dyn Store>);
//! ```
//!
//! Keys, databases and tables are unique per check, so a store shared between runs (a real
//! server) is fine; checks work in the store's default scope except where they test scopes,
//! and never assume what the default names are. Nothing asserts on speed: expiry is awaited
//! by polling until a generous deadline.

use crate::support::{DEADLINE, POLL, unique};

use bytes::Bytes;
use micro_core::store::{
    DeleteOptions, ListOptions, ReadOptions, Record, Scope, Store, WriteOptions,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A short time to live for expiry checks.
const SHORT_TTL: Duration = Duration::from_millis(500);

fn record(key: &str, value: &str) -> Record {
    Record::new(key, Bytes::copy_from_slice(value.as_bytes()))
}

async fn put(store: &Arc<dyn Store>, check: &str, record: Record) {
    let key = record.key.clone();
    if let Err(err) = store.write(record, WriteOptions::default()).await {
        panic!("{check}: write {key:?} failed: {err}");
    }
}

async fn get(store: &Arc<dyn Store>, check: &str, key: &str) -> Record {
    match store.read(key, ReadOptions::default()).await {
        Ok(mut records) if records.len() == 1 => records.remove(0),
        Ok(records) => panic!(
            "{check}: exact read of {key:?} gave {} records",
            records.len()
        ),
        Err(err) => panic!("{check}: read {key:?} failed: {err}"),
    }
}

async fn expect_missing(store: &Arc<dyn Store>, check: &str, key: &str, options: ReadOptions) {
    match store.read(key, options).await {
        Err(err) => assert_eq!(
            err.code, 404,
            "{check}: missing {key:?} must be a 404: {err}"
        ),
        Ok(records) => panic!("{check}: {key:?} should be missing, read {records:?}"),
    }
}

async fn keys_of(
    store: &Arc<dyn Store>,
    check: &str,
    pattern: &str,
    options: ReadOptions,
) -> Vec<String> {
    match store.read(pattern, options).await {
        Ok(records) => records.into_iter().map(|r| r.key).collect(),
        Err(err) => panic!("{check}: read {pattern:?} failed: {err}"),
    }
}

async fn list(store: &Arc<dyn Store>, check: &str, options: ListOptions) -> Vec<String> {
    match store.list(options.clone()).await {
        Ok(keys) => keys,
        Err(err) => panic!("{check}: list {options:?} failed: {err}"),
    }
}

fn prefix(limit: usize, offset: usize) -> ReadOptions {
    ReadOptions::default()
        .prefix(true)
        .limit(limit)
        .offset(offset)
}

fn names(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

/// Polls until `key` reads as missing and is left out of list and prefix reads.
async fn await_expiry(store: &Arc<dyn Store>, check: &str, key: &str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let gone =
            matches!(store.read(key, ReadOptions::default()).await, Err(ref e) if e.code == 404);
        if gone {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("{check}: {key:?} still readable {DEADLINE:?} after its ttl");
        }
        tokio::time::sleep(POLL).await;
    }
    let listed = list(store, check, ListOptions::default().prefix(key)).await;
    assert!(
        !listed.iter().any(|k| k == key),
        "{check}: expired {key:?} still listed: {listed:?}"
    );
    let read = keys_of(store, check, key, prefix(0, 0)).await;
    assert!(
        !read.iter().any(|k| k == key),
        "{check}: expired {key:?} still returned by a prefix read: {read:?}"
    );
}

/// A written record reads back with its value (binary-safe) and metadata.
pub async fn check_write_read(store: Arc<dyn Store>) {
    let check = "check_write_read";
    let key = unique("write_read");
    let value = Bytes::from_static(&[0, 159, 146, 150, 255, b'\n', b'x']);
    let metadata: BTreeMap<String, String> = [
        ("owner".to_string(), "alice".to_string()),
        ("kind".to_string(), "blob".to_string()),
    ]
    .into();
    let mut rec = Record::new(key.clone(), value.clone());
    rec.metadata = metadata.clone();
    put(&store, check, rec).await;
    let got = get(&store, check, &key).await;
    assert_eq!(got.key, key, "{check}: key");
    assert_eq!(got.value, value, "{check}: value");
    assert_eq!(got.metadata, metadata, "{check}: metadata");
    assert_eq!(
        got.expiry, None,
        "{check}: a record written without ttl has no expiry"
    );
}

/// An exact read of a key never written is a 404; a prefix read of it is empty.
pub async fn check_read_missing(store: Arc<dyn Store>) {
    let check = "check_read_missing";
    let key = unique("missing");
    expect_missing(&store, check, &key, ReadOptions::default()).await;
    let found = keys_of(&store, check, &key, prefix(0, 0)).await;
    assert!(
        found.is_empty(),
        "{check}: prefix read of a missing key: {found:?}"
    );
}

/// Writing a key again replaces the whole record: value, metadata and expiry.
pub async fn check_overwrite(store: Arc<dyn Store>) {
    let check = "check_overwrite";
    let key = unique("overwrite");
    let mut first = record(&key, "one");
    first.metadata.insert("old".into(), "yes".into());
    first.expiry = Some(Duration::from_secs(3600));
    put(&store, check, first).await;
    let mut second = record(&key, "two");
    second.metadata.insert("new".into(), "yes".into());
    put(&store, check, second.clone()).await;
    let got = get(&store, check, &key).await;
    assert_eq!(got.value, second.value, "{check}: value replaced");
    assert_eq!(got.metadata, second.metadata, "{check}: metadata replaced");
    assert_eq!(
        got.expiry, None,
        "{check}: expiry replaced (the new record has none)"
    );
    let keys = keys_of(&store, check, &key, prefix(0, 0)).await;
    assert_eq!(
        keys,
        vec![key.clone()],
        "{check}: one record after overwrite"
    );
}

/// Delete removes a key; deleting it again, or a key never written, is not an error.
pub async fn check_delete(store: Arc<dyn Store>) {
    let check = "check_delete";
    let key = unique("delete");
    let other = format!("{key}_kept");
    put(&store, check, record(&key, "v")).await;
    put(&store, check, record(&other, "w")).await;
    store
        .delete(&key, DeleteOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{check}: delete failed: {e}"));
    expect_missing(&store, check, &key, ReadOptions::default()).await;
    assert_eq!(
        get(&store, check, &other).await.value,
        Bytes::from("w"),
        "{check}: other key kept"
    );
    store
        .delete(&key, DeleteOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{check}: second delete must be Ok: {e}"));
    store
        .delete(&unique("never"), DeleteOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{check}: deleting a missing key must be Ok: {e}"));
}

/// A prefix read returns every key starting with the prefix, in key order.
pub async fn check_prefix(store: Arc<dyn Store>) {
    let check = "check_prefix";
    let id = unique("prefix");
    for key in [
        format!("{id}/b"),
        format!("{id}/a"),
        format!("{id}/c/d"),
        format!("{id}x"),
        format!("x{id}/a"),
    ] {
        put(&store, check, record(&key, &key)).await;
    }
    let found = keys_of(&store, check, &format!("{id}/"), prefix(0, 0)).await;
    assert_eq!(
        found,
        vec![format!("{id}/a"), format!("{id}/b"), format!("{id}/c/d")],
        "{check}: keys in order"
    );
    let records = store
        .read(&format!("{id}/"), prefix(0, 0))
        .await
        .unwrap_or_else(|e| panic!("{check}: {e}"));
    for r in records {
        assert_eq!(
            r.value,
            Bytes::from(r.key.clone()),
            "{check}: value of {}",
            r.key
        );
    }
}

/// A suffix read returns every key ending with the suffix, in key order.
pub async fn check_suffix(store: Arc<dyn Store>) {
    let check = "check_suffix";
    let id = unique("suffix");
    for key in [
        format!("c.{id}.txt"),
        format!("a.{id}.txt"),
        format!("b.{id}.bin"),
        format!("d.{id}.txt.bak"),
    ] {
        put(&store, check, record(&key, "v")).await;
    }
    let found = keys_of(
        &store,
        check,
        &format!("{id}.txt"),
        ReadOptions::default().suffix(true),
    )
    .await;
    assert_eq!(
        found,
        vec![format!("a.{id}.txt"), format!("c.{id}.txt")],
        "{check}: keys in order"
    );
}

/// With both flags, a key must start and end with the pattern.
pub async fn check_prefix_suffix(store: Arc<dyn Store>) {
    let check = "check_prefix_suffix";
    let id = unique("both");
    // Keys that start and end with the same pattern: `{id}` ... `{id}`.
    let hits = [format!("{id}-1-{id}"), format!("{id}-0-{id}")];
    let misses = [format!("{id}-2-x"), format!("x-3-{id}")];
    for key in hits.iter().chain(misses.iter()) {
        put(&store, check, record(key, "v")).await;
    }
    let options = ReadOptions::default().prefix(true).suffix(true);
    let found = keys_of(&store, check, &id, options).await;
    assert_eq!(
        found,
        vec![hits[1].clone(), hits[0].clone()],
        "{check}: keys with both prefix and suffix, in order"
    );
}

/// Limit and offset page through matches in key order.
pub async fn check_limit_offset(store: Arc<dyn Store>) {
    let check = "check_limit_offset";
    let id = unique("page");
    let all: Vec<String> = (0..10).map(|i| format!("{id}-{i}")).collect();
    for key in all.iter().rev() {
        put(&store, check, record(key, "v")).await;
    }
    let p = format!("{id}-");
    assert_eq!(
        keys_of(&store, check, &p, prefix(3, 0)).await,
        all[..3].to_vec(),
        "{check}: limit 3"
    );
    assert_eq!(
        keys_of(&store, check, &p, prefix(0, 7)).await,
        all[7..].to_vec(),
        "{check}: offset 7"
    );
    assert_eq!(
        keys_of(&store, check, &p, prefix(3, 4)).await,
        all[4..7].to_vec(),
        "{check}: limit 3 offset 4"
    );
    assert_eq!(
        keys_of(&store, check, &p, prefix(5, 8)).await,
        all[8..].to_vec(),
        "{check}: limit past the end"
    );
    assert!(
        keys_of(&store, check, &p, prefix(0, 10)).await.is_empty(),
        "{check}: offset past the end"
    );
    let suffix = ReadOptions::default().suffix(true).limit(1).offset(1);
    let mut odd: Vec<String> = Vec::new();
    for key in [
        format!("a-{id}.odd"),
        format!("b-{id}.odd"),
        format!("c-{id}.odd"),
    ] {
        put(&store, check, record(&key, "v")).await;
        odd.push(key);
    }
    assert_eq!(
        keys_of(&store, check, &format!("{id}.odd"), suffix).await,
        vec![odd[1].clone()],
        "{check}: suffix with limit and offset"
    );
}

/// List returns keys in order, filtered by prefix and suffix, paged by limit and offset.
pub async fn check_list(store: Arc<dyn Store>) {
    let check = "check_list";
    let id = unique("list");
    let keys: Vec<String> = ["b.txt", "a.txt", "c.bin", "d.txt", "e.txt"]
        .iter()
        .map(|k| format!("{id}/{k}"))
        .collect();
    for key in &keys {
        put(&store, check, record(key, "v")).await;
    }
    let opts = |suffix: Option<&str>, limit, offset| {
        let mut options = ListOptions::default()
            .prefix(format!("{id}/"))
            .limit(limit)
            .offset(offset);
        options.suffix = suffix.map(str::to_string);
        options
    };
    let sorted = names(&[&keys[1], &keys[0], &keys[2], &keys[3], &keys[4]]);
    assert_eq!(
        list(&store, check, opts(None, 0, 0)).await,
        sorted,
        "{check}: prefix, in order"
    );
    let txt = names(&[&keys[1], &keys[0], &keys[3], &keys[4]]);
    assert_eq!(
        list(&store, check, opts(Some(".txt"), 0, 0)).await,
        txt,
        "{check}: prefix and suffix"
    );
    assert_eq!(
        list(&store, check, opts(Some(".txt"), 2, 1)).await,
        txt[1..3].to_vec(),
        "{check}: limit and offset"
    );
    assert_eq!(
        list(&store, check, opts(None, 2, 0)).await,
        sorted[..2].to_vec(),
        "{check}: limit"
    );
    assert_eq!(
        list(&store, check, opts(None, 0, 3)).await,
        sorted[3..].to_vec(),
        "{check}: offset"
    );
    let by_suffix = ListOptions::default().suffix(format!("{id}/c.bin"));
    assert_eq!(
        list(&store, check, by_suffix).await,
        vec![keys[2].clone()],
        "{check}: suffix alone"
    );
}

/// A record with a ttl reads back with the time it has left; one without has none.
pub async fn check_expiry_field(store: Arc<dyn Store>) {
    let check = "check_expiry_field";
    let ttl = Duration::from_secs(3600);
    let with = unique("expiry_with");
    let options = WriteOptions::default().ttl(ttl);
    store
        .write(record(&with, "v"), options)
        .await
        .unwrap_or_else(|e| panic!("{check}: write failed: {e}"));
    let left = get(&store, check, &with).await.expiry;
    assert!(
        left.is_some_and(|d| d > Duration::ZERO && d <= ttl),
        "{check}: expiry must be the time left, in (0, {ttl:?}]: {left:?}"
    );
    let mut own = record(&unique("expiry_own"), "v");
    own.expiry = Some(ttl);
    put(&store, check, own.clone()).await;
    let left = get(&store, check, &own.key).await.expiry;
    assert!(
        left.is_some_and(|d| d > Duration::ZERO && d <= ttl),
        "{check}: record expiry kept: {left:?}"
    );
    let without = unique("expiry_none");
    put(&store, check, record(&without, "v")).await;
    assert_eq!(
        get(&store, check, &without).await.expiry,
        None,
        "{check}: no ttl, no expiry"
    );
}

/// A record written with `WriteOptions::ttl` disappears from read and list after it.
pub async fn check_ttl_expiry(store: Arc<dyn Store>) {
    let check = "check_ttl_expiry";
    let key = unique("ttl");
    let kept = format!("{key}_kept");
    let options = WriteOptions::default().ttl(SHORT_TTL);
    store
        .write(record(&key, "v"), options)
        .await
        .unwrap_or_else(|e| panic!("{check}: write failed: {e}"));
    put(&store, check, record(&kept, "v")).await;
    await_expiry(&store, check, &key).await;
    assert_eq!(
        get(&store, check, &kept).await.value,
        Bytes::from("v"),
        "{check}: key without ttl kept"
    );
}

/// A record's own `expiry` works as its ttl when the write options give none.
pub async fn check_record_expiry(store: Arc<dyn Store>) {
    let check = "check_record_expiry";
    let key = unique("record_expiry");
    let mut rec = record(&key, "v");
    rec.expiry = Some(SHORT_TTL);
    put(&store, check, rec).await;
    await_expiry(&store, check, &key).await;
}

/// `WriteOptions::ttl` wins over the record's own `expiry`.
pub async fn check_ttl_overrides_record_expiry(store: Arc<dyn Store>) {
    let check = "check_ttl_overrides_record_expiry";
    let key = unique("override");
    let mut rec = record(&key, "v");
    rec.expiry = Some(Duration::from_secs(3600));
    let options = WriteOptions::default().ttl(SHORT_TTL);
    store
        .write(rec, options)
        .await
        .unwrap_or_else(|e| panic!("{check}: write failed: {e}"));
    await_expiry(&store, check, &key).await;
}

/// The same key in different databases and tables is different records; reads, lists
/// and deletes see only their own scope.
pub async fn check_scopes(store: Arc<dyn Store>) {
    let check = "check_scopes";
    let key = unique("scoped");
    let (db1, db2) = (unique("db"), unique("db"));
    let (t1, t2) = (unique("tbl"), unique("tbl"));
    let scopes = [
        Scope::new(&db1, &t1),
        Scope::new(&db1, &t2),
        Scope::new(&db2, &t1),
    ];
    for (i, scope) in scopes.iter().enumerate() {
        let options = WriteOptions::default().scope(scope.clone());
        store
            .write(record(&key, &format!("v{i}")), options)
            .await
            .unwrap_or_else(|e| panic!("{check}: write in {scope:?}: {e}"));
    }
    expect_missing(&store, check, &key, ReadOptions::default()).await;
    for (i, scope) in scopes.iter().enumerate() {
        let options = ReadOptions::default().scope(scope.clone());
        let got = store
            .read(&key, options)
            .await
            .unwrap_or_else(|e| panic!("{check}: read in {scope:?}: {e}"));
        assert_eq!(got.len(), 1, "{check}: one record in {scope:?}");
        assert_eq!(
            got[0].value,
            Bytes::from(format!("v{i}")),
            "{check}: value in {scope:?}"
        );
        let listed = list(&store, check, ListOptions::default().scope(scope.clone())).await;
        assert_eq!(listed, vec![key.clone()], "{check}: list in {scope:?}");
    }
    let delete = DeleteOptions::default().scope(scopes[0].clone());
    store
        .delete(&key, delete)
        .await
        .unwrap_or_else(|e| panic!("{check}: delete: {e}"));
    let first = ReadOptions::default().scope(scopes[0].clone());
    expect_missing(&store, check, &key, first).await;
    for scope in &scopes[1..] {
        let options = ReadOptions::default().scope(scope.clone());
        let got = store
            .read(&key, options)
            .await
            .unwrap_or_else(|e| panic!("{check}: delete leaked into {scope:?}: {e}"));
        assert_eq!(got.len(), 1, "{check}: record kept in {scope:?}");
    }
}

/// One `#[tokio::test]` per case of the store suite, each against a fresh store from the
/// factory (see the [crate] documentation for the three forms).
///
/// ```ignore
/// micro_conformance::store_suite!(async || Arc::new(MyStore::new()) as Arc<dyn Store>);
/// micro_conformance::store_suite!(
///     mod on_current_thread(flavor = "current_thread"),
///     async || Arc::new(MyStore::new()) as Arc<dyn Store>,
/// );
/// ```
#[macro_export]
macro_rules! store_suite {
    ($($input:tt)*) => {
        $crate::__suite!(component store [
            check_write_read,
            check_read_missing,
            check_overwrite,
            check_delete,
            check_prefix,
            check_suffix,
            check_prefix_suffix,
            check_limit_offset,
            check_list,
            check_expiry_field,
            check_ttl_expiry,
            check_record_expiry,
            check_ttl_overrides_record_expiry,
            check_scopes,
        ] $($input)*);
    };
}
