//! How the file store reads a redb value: micro-core's record layout
//! ([`micro_core::store::stored`], what it writes), or format 1, the layout of databases
//! written before it, so they stay readable:
//!
//! ```text
//! byte 0       format version (1)
//! bytes 1..9   expiry: absolute unix time in milliseconds, little endian; 0 = never
//! bytes 9..13  length N of the metadata, little endian u32
//! 13..13+N     metadata as a JSON object of strings
//! the rest     the value
//! ```

use bytes::Bytes;
use micro_core::store::stored::Stored;

/// Format 1's header length.
const V1_HEADER: usize = 13;

/// The record in `bytes`, in either layout; the error says what is wrong.
pub(crate) fn decode(bytes: &[u8]) -> Result<Stored, String> {
    if bytes.first() == Some(&1) {
        return decode_v1(bytes);
    }
    Stored::decode(&Bytes::copy_from_slice(bytes))
}

fn decode_v1(bytes: &[u8]) -> Result<Stored, String> {
    let field = |range: std::ops::Range<usize>| {
        bytes.get(range).ok_or_else(|| {
            format!(
                "{} bytes, shorter than the {V1_HEADER}-byte header",
                bytes.len()
            )
        })
    };
    let expiry = u64::from_le_bytes(field(1..9)?.try_into().map_err(|_| "bad expiry")?);
    let len = u32::from_le_bytes(field(9..V1_HEADER)?.try_into().map_err(|_| "bad length")?);
    let end = V1_HEADER
        .checked_add(len as usize)
        .filter(|end| *end <= bytes.len())
        .ok_or_else(|| format!("metadata length {len} runs past the record"))?;
    let metadata = serde_json::from_slice(&bytes[V1_HEADER..end])
        .map_err(|e| format!("metadata is not a JSON object of strings: {e}"))?;
    Ok(Stored {
        expires_ms: (expiry != 0).then_some(expiry),
        metadata,
        value: Bytes::copy_from_slice(&bytes[end..]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn reads_what_it_writes_and_format_1() {
        let stored = Stored {
            expires_ms: Some(1234),
            metadata: [("a".to_string(), "b".to_string())].into(),
            value: Bytes::from_static(&[0, 255, 1]),
        };
        assert_eq!(decode(&stored.encode().unwrap()).unwrap(), stored);
        let mut v1 = vec![1u8];
        v1.extend_from_slice(&1234u64.to_le_bytes());
        v1.extend_from_slice(&9u32.to_le_bytes());
        v1.extend_from_slice(br#"{"a":"b"}"#);
        v1.extend_from_slice(&[0, 255, 1]);
        assert_eq!(decode(&v1).unwrap(), stored);
        let mut bare = vec![1u8];
        bare.extend_from_slice(&0u64.to_le_bytes());
        bare.extend_from_slice(&2u32.to_le_bytes());
        bare.extend_from_slice(b"{}");
        let expected = Stored {
            expires_ms: None,
            metadata: BTreeMap::new(),
            value: Bytes::new(),
        };
        assert_eq!(decode(&bare).unwrap(), expected);
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(decode(b"").is_err());
        assert!(decode(&[9; 20]).is_err());
        assert!(decode(&[1; 5]).is_err());
        let mut bad_len = vec![1u8];
        bad_len.extend_from_slice(&0u64.to_le_bytes());
        bad_len.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&bad_len).is_err());
    }
}
