//! How a store plugin lays a record out in one byte value, for backends that keep bytes
//! only (a redb table, a JetStream KV bucket, a Redis string): its metadata and absolute
//! expiry travel with the value, so both survive restarts and are read back exactly.
//!
//! ```text
//! bytes 0..4    magic and format version: "MKV" 0x01
//! bytes 4..12   expiry: absolute unix time in milliseconds, big endian; 0 = never
//! bytes 12..16  length N of the metadata, big endian u32
//! 16..16+N      metadata as a JSON object of strings
//! the rest      the value, as written
//! ```
//!
//! The magic lets a value written by something else (a `nats kv put`, another library) be
//! told apart from a record, so a plugin skips it rather than misreads it.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAGIC: &[u8; 4] = b"MKV\x01";
const HEADER: usize = 16;

/// A record as stored: everything but the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Unix milliseconds when it expires; `None` = never.
    pub expires_ms: Option<u64>,
    /// The record's metadata.
    pub metadata: BTreeMap<String, String>,
    /// The record's value.
    pub value: Bytes,
}

impl Stored {
    /// Whether it is still alive at `now_ms`.
    pub fn live(&self, now_ms: u64) -> bool {
        self.expires_ms.is_none_or(|at| at > now_ms)
    }

    /// Time left at `now_ms`, for `Record::expiry`.
    pub fn left(&self, now_ms: u64) -> Option<Duration> {
        self.expires_ms
            .map(|at| Duration::from_millis(at.saturating_sub(now_ms)))
    }

    /// The record `key` it holds, with the time left at `now_ms` as its expiry.
    pub fn into_record(self, key: String, now_ms: u64) -> super::Record {
        super::Record {
            expiry: self.left(now_ms),
            key,
            value: self.value,
            metadata: self.metadata,
        }
    }

    /// The stored bytes.
    pub fn encode(&self) -> Result<Bytes, String> {
        // The metadata is written in place, its length patched in after.
        let mut out = Vec::with_capacity(HEADER + 2 + self.value.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.expires_ms.unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        serde_json::to_writer(&mut out, &self.metadata).map_err(|e| e.to_string())?;
        let written = out.len() - HEADER;
        let len = u32::try_from(written)
            .map_err(|_| format!("metadata of {written} bytes is too large"))?;
        out[12..HEADER].copy_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.value);
        Ok(out.into())
    }

    /// Parses stored bytes; the error says what is wrong (for a log line naming the key).
    pub fn decode(bytes: &Bytes) -> Result<Stored, String> {
        if bytes.len() < HEADER || &bytes[..4] != MAGIC {
            return Err(format!(
                "{} bytes not starting with the {HEADER}-byte micro record header \
                 (\"MKV\" 0x01 ...)",
                bytes.len()
            ));
        }
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&bytes[4..12]);
        let expires_ms = match u64::from_be_bytes(expiry) {
            0 => None,
            at => Some(at),
        };
        let mut len = [0u8; 4];
        len.copy_from_slice(&bytes[12..HEADER]);
        let len = u32::from_be_bytes(len) as usize;
        let end = HEADER
            .checked_add(len)
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| format!("metadata length {len} runs past the record"))?;
        let metadata = serde_json::from_slice(&bytes[HEADER..end])
            .map_err(|e| format!("metadata is not a JSON object of strings: {e}"))?;
        Ok(Stored {
            expires_ms,
            metadata,
            value: bytes.slice(end..),
        })
    }
}

/// Milliseconds since the unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The absolute expiry of a record written at `now_ms` with `ttl` (rounded up to whole
/// milliseconds); `None` when it does not fit.
pub fn expiry_ms(now_ms: u64, ttl: Duration) -> Option<u64> {
    let ms = ttl.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).ok()?.checked_add(now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let stored = Stored {
            expires_ms: Some(1234),
            metadata: [("a".to_string(), "b".to_string())].into(),
            value: Bytes::from_static(&[0, 255, 1]),
        };
        assert_eq!(Stored::decode(&stored.encode().unwrap()).unwrap(), stored);
        let bare = Stored {
            expires_ms: None,
            metadata: BTreeMap::new(),
            value: Bytes::new(),
        };
        assert_eq!(Stored::decode(&bare.encode().unwrap()).unwrap(), bare);
    }

    #[test]
    fn rejects_foreign_values_without_panicking() {
        assert!(Stored::decode(&Bytes::new()).is_err());
        assert!(Stored::decode(&Bytes::from_static(b"{\"json\": \"from elsewhere\"}")).is_err());
        let mut bad_len = MAGIC.to_vec();
        bad_len.extend_from_slice(&0u64.to_be_bytes());
        bad_len.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(Stored::decode(&bad_len.into()).is_err());
        let mut bad_json = MAGIC.to_vec();
        bad_json.extend_from_slice(&0u64.to_be_bytes());
        bad_json.extend_from_slice(&2u32.to_be_bytes());
        bad_json.extend_from_slice(b"[]");
        assert!(Stored::decode(&bad_json.into()).is_err());
    }

    #[test]
    fn expiry_rounds_up_and_never_overflows() {
        assert_eq!(expiry_ms(10, Duration::from_micros(1)), Some(11));
        assert_eq!(expiry_ms(10, Duration::MAX), None);
        let stored = Stored {
            expires_ms: Some(100),
            metadata: BTreeMap::new(),
            value: Bytes::new(),
        };
        assert!(stored.live(99) && !stored.live(100));
        assert_eq!(stored.left(40), Some(Duration::from_millis(60)));
    }
}
