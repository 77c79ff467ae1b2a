//! How store names become NATS names, reversibly.
//!
//! - A **database** is a KV bucket. Bucket names allow only `[A-Za-z0-9_-]`, so ASCII letters,
//!   digits and `-` are kept and every other byte of the UTF-8 name (`_` included) is written
//!   `_XX` (two upper-case hex digits): `orders` → `orders`, `my_db` → `my_5Fdb`,
//!   `shop.eu` → `shop_2Eeu`.
//! - A **table** and a **key** are one subject token each; the KV key is `{table}.{key}`.
//!   KV keys allow only `[-/_=.A-Za-z0-9]`, and a dot separates tokens, so ASCII letters,
//!   digits, `-`, `_` and `/` are kept and every other byte (`=` and `.` included) is written
//!   `=XX`; the empty string is `=` alone. `user 1` → `user=201`, `.env` → `=2Eenv`.
//!
//! Both encodings are one-to-one: decoding accepts only what encoding produces, so a name
//! written by something else (lower-case hex, a lone `=`) is recognised as foreign.

use crate::escape;

/// The longest bucket name accepted: the stream is `KV_{bucket}` and names a directory on
/// the server's disk.
pub const MAX_BUCKET: usize = 240;

/// The longest KV key (`{table}.{key}`, encoded) accepted: the subject travels in a protocol
/// line, which nats-server limits to 4096 bytes by default (`max_control_line`).
pub const MAX_KV_KEY: usize = 2048;

fn bucket_keeps(_: usize, byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-'
}

fn token_keeps(_: usize, byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'/')
}

/// The bucket of database `database`; an error saying why when there is none.
pub fn bucket_of(database: &str) -> Result<String, String> {
    if database.is_empty() {
        return Err(
            "the database name is empty; give one in the scope or set store.database".to_string(),
        );
    }
    let bucket = escape::escape(database, b'_', bucket_keeps);
    if bucket.len() > MAX_BUCKET {
        return Err(format!(
            "database name {database:?} maps to a bucket name of {} characters, more than the \
             {MAX_BUCKET} allowed; use a shorter database name",
            bucket.len()
        ));
    }
    Ok(bucket)
}

/// The database a bucket holds, if `bucket` is a name [`bucket_of`] makes.
pub fn database_of(bucket: &str) -> Option<String> {
    let database = escape::unescape(bucket, b'_')?;
    (!database.is_empty() && escape::escape(&database, b'_', bucket_keeps) == bucket)
        .then_some(database)
}

/// A table or key as one KV key token (never empty, no dot).
pub fn token_of(name: &str) -> String {
    escape::escape_nonempty(name, b'=', token_keeps)
}

/// The table or key a token holds, if `token` is one [`token_of`] makes.
pub fn name_of(token: &str) -> Option<String> {
    escape::unescape_nonempty(token, b'=').filter(|name| token_of(name) == token)
}

/// The KV key of `key` in `table`; an error saying why when it is too long.
pub fn kv_key(table: &str, key: &str) -> Result<String, String> {
    let kv_key = format!("{}.{}", token_of(table), token_of(key));
    if kv_key.len() > MAX_KV_KEY {
        return Err(format!(
            "key of {} bytes in table {table:?} encodes to a NATS key of {} bytes, more than \
             the {MAX_KV_KEY} allowed; use shorter keys (characters outside [A-Za-z0-9_/-] take \
             3 bytes each)",
            key.len(),
            kv_key.len()
        ));
    }
    Ok(kv_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_trip_and_stay_in_the_charset() {
        for db in ["micro", "my_db", "shop.eu", "ünï cödé", "a-b", "_", "%41"] {
            let bucket = bucket_of(db).unwrap();
            assert!(
                bucket
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{bucket}"
            );
            assert_eq!(database_of(&bucket).as_deref(), Some(db));
        }
        assert_eq!(bucket_of("micro").unwrap(), "micro");
        assert_eq!(bucket_of("my_db").unwrap(), "my_5Fdb");
        assert!(bucket_of("").is_err());
        assert!(bucket_of(&"é".repeat(100)).is_err());
        assert_eq!(database_of("a_2e"), None, "lower-case hex is foreign");
        assert_eq!(database_of("a_"), None);
    }

    #[test]
    fn tokens_round_trip_and_stay_in_the_charset() {
        for name in [
            "", "a", "=", ".", ".env.", "user 1", "*", ">", "a.b", "日本", "=41",
        ] {
            let token = token_of(name);
            assert!(!token.is_empty() && !token.contains('.'), "{token}");
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'/' | b'=')),
                "{token}"
            );
            assert_eq!(name_of(&token).as_deref(), Some(name), "{token}");
        }
        assert_eq!(token_of("user/1-a_b"), "user/1-a_b");
        assert_eq!(
            name_of("=41"),
            None,
            "an escaped byte that needs no escape is foreign"
        );
        assert_eq!(name_of("a=4"), None);
        assert_eq!(name_of("=FF"), None, "not UTF-8");
    }

    #[test]
    fn kv_keys_have_two_tokens_and_a_length_limit() {
        assert_eq!(kv_key("t", "a.b").unwrap(), "t.a=2Eb");
        assert_eq!(kv_key("", "").unwrap(), "=.=");
        assert!(kv_key("t", &" ".repeat(1000)).is_err());
    }
}
