//! How a record is laid out in a redb value.
//!
//! ```text
//! byte 0       format version (1)
//! bytes 1..9   expiry: absolute unix time in milliseconds, little endian; 0 = never
//! bytes 9..13  length N of the metadata, little endian u32
//! 13..13+N     metadata as a JSON object of strings
//! the rest     the value
//! ```

use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const VERSION: u8 = 1;
const HEADER: usize = 13;

/// A record as stored: everything but the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    /// Unix milliseconds when it expires; `None` = never.
    pub expires_ms: Option<u64>,
    pub metadata: BTreeMap<String, String>,
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

    /// The stored bytes.
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        let metadata = serde_json::to_vec(&self.metadata).map_err(|e| e.to_string())?;
        let len = u32::try_from(metadata.len())
            .map_err(|_| format!("metadata of {} bytes is too large", metadata.len()))?;
        let mut out = Vec::with_capacity(HEADER + metadata.len() + self.value.len());
        out.push(VERSION);
        out.extend_from_slice(&self.expires_ms.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&metadata);
        out.extend_from_slice(&self.value);
        Ok(out)
    }

    /// Parses stored bytes; the error says what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Stored, String> {
        if bytes.len() < HEADER {
            return Err(format!(
                "{} bytes, shorter than the {HEADER}-byte header",
                bytes.len()
            ));
        }
        if bytes[0] != VERSION {
            return Err(format!("unknown record format {}", bytes[0]));
        }
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&bytes[1..9]);
        let expires_ms = match u64::from_le_bytes(expiry) {
            0 => None,
            at => Some(at),
        };
        let mut len = [0u8; 4];
        len.copy_from_slice(&bytes[9..HEADER]);
        let len = u32::from_le_bytes(len) as usize;
        let end = HEADER
            .checked_add(len)
            .filter(|end| *end <= bytes.len())
            .ok_or_else(|| format!("metadata length {len} runs past the record"))?;
        let metadata = serde_json::from_slice(&bytes[HEADER..end])
            .map_err(|e| format!("metadata is not a JSON object of strings: {e}"))?;
        Ok(Stored {
            expires_ms,
            metadata,
            value: Bytes::copy_from_slice(&bytes[end..]),
        })
    }
}

/// Milliseconds since the unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The absolute expiry of a record written at `now_ms` with `ttl` (rounded up to whole
/// milliseconds); `None` when it does not fit.
pub(crate) fn expiry_ms(now_ms: u64, ttl: Duration) -> Option<u64> {
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
    fn rejects_garbage_without_panicking() {
        assert!(Stored::decode(b"").is_err());
        assert!(Stored::decode(&[9; 20]).is_err());
        let mut bad_len = vec![1u8];
        bad_len.extend_from_slice(&0u64.to_le_bytes());
        bad_len.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Stored::decode(&bad_len).is_err());
    }

    #[test]
    fn expiry_rounds_up_and_never_overflows() {
        assert_eq!(expiry_ms(10, Duration::from_micros(1)), Some(11));
        assert_eq!(expiry_ms(10, Duration::from_millis(500)), Some(510));
        assert_eq!(expiry_ms(10, Duration::MAX), None);
    }
}
