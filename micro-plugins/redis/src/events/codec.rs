//! How an event is kept in a Redis stream entry, and how stream ids map to
//! [`Event::sequence`].
//!
//! - Topic `orders` is the stream key `micro:events:orders` ([`KEY_PREFIX`] + the topic, as
//!   is: Redis keys hold any bytes).
//! - An entry has the fields `micro-id` (the event id), `micro-timestamp` (nanoseconds since
//!   the Unix epoch, decimal), `micro-metadata` (a JSON object of strings) and `payload`
//!   (the bytes as they are). An entry without `micro-id`, `micro-timestamp` or `payload`,
//!   or with one of them unreadable, is not a micro event: it is skipped with a warning.
//! - A stream id `ms-seq` is the sequence `ms << 20 | seq`: reversible, growing with the id,
//!   and starting at 1 (`0-1` is the smallest id XADD gives). It holds ids with `seq` below
//!   2^20 (a million entries in one millisecond) and `ms` below 2^44 (the year 2527); an
//!   entry whose id does not fit is skipped with a warning.

use micro_core::events::Event;
use micro_core::{Error, Result};
use redis::streams::StreamId;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::ID;

/// The prefix of every events stream key.
pub const KEY_PREFIX: &str = "micro:events:";
/// Bits of the sequence holding the id's `seq` part.
const SEQ_BITS: u32 = 20;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;

/// Field names of an entry.
pub(super) const FIELD_ID: &str = "micro-id";
pub(super) const FIELD_TIMESTAMP: &str = "micro-timestamp";
pub(super) const FIELD_METADATA: &str = "micro-metadata";
pub(super) const FIELD_PAYLOAD: &str = "payload";

/// The stream key of `topic`.
pub fn key(topic: &str) -> String {
    format!("{KEY_PREFIX}{topic}")
}

/// The sequence of stream id `ms-seq`; `None` when it is not one or does not fit.
pub fn sequence(id: &str) -> Option<u64> {
    let (ms, seq) = id.split_once('-')?;
    let (ms, seq): (u64, u64) = (ms.parse().ok()?, seq.parse().ok()?);
    if seq > SEQ_MASK || ms >= (1 << (64 - SEQ_BITS)) {
        return None;
    }
    Some(ms << SEQ_BITS | seq)
}

/// The stream id of `sequence` (the inverse of [`sequence`]).
pub fn stream_id(sequence: u64) -> String {
    format!("{}-{}", sequence >> SEQ_BITS, sequence & SEQ_MASK)
}

/// The first sequence of the millisecond `time` falls in.
pub fn sequence_at(time: SystemTime) -> Result<u64> {
    let ms = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    u64::try_from(ms)
        .ok()
        .filter(|ms| *ms < (1 << (64 - SEQ_BITS)))
        .map(|ms| ms << SEQ_BITS)
        .ok_or_else(|| {
            Error::bad_request(
                ID,
                format!("time {time:?} is too far in the future for a Redis stream position"),
            )
        })
}

/// The fields of the entry that keeps `event`.
pub(super) fn encode(event: &Event) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let nanos = event
        .timestamp
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| u64::try_from(d.as_nanos()).ok())
        .ok_or_else(|| {
            Error::bad_request(
                ID,
                format!(
                    "event timestamp {:?} cannot be stored: give a time between 1970 and 2554",
                    event.timestamp
                ),
            )
        })?;
    let metadata = serde_json::to_vec(&event.metadata).map_err(|e| {
        Error::internal(ID, format!("event metadata cannot be encoded as JSON: {e}"))
    })?;
    Ok(vec![
        (FIELD_ID, event.id.clone().into_bytes()),
        (FIELD_TIMESTAMP, nanos.to_string().into_bytes()),
        (FIELD_METADATA, metadata),
        (FIELD_PAYLOAD, event.payload.to_vec()),
    ])
}

/// The event kept in `entry` of `topic`'s stream, or why it is not one.
pub(super) fn decode(topic: &str, entry: &StreamId) -> std::result::Result<Event, String> {
    let sequence = sequence(&entry.id)
        .ok_or_else(|| format!("its id {} does not map to a sequence", entry.id))?;
    let field = |name: &str| -> std::result::Result<Vec<u8>, String> {
        entry
            .get::<Vec<u8>>(name)
            .ok_or_else(|| format!("it has no field {name}"))
    };
    let id = String::from_utf8(field(FIELD_ID)?).map_err(|_| format!("{FIELD_ID} is not UTF-8"))?;
    let nanos: u64 = std::str::from_utf8(&field(FIELD_TIMESTAMP)?)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{FIELD_TIMESTAMP} is not a number of nanoseconds"))?;
    let metadata: BTreeMap<String, String> = match entry.get::<Vec<u8>>(FIELD_METADATA) {
        Some(raw) if !raw.is_empty() => serde_json::from_slice(&raw)
            .map_err(|e| format!("{FIELD_METADATA} is not a JSON object of strings: {e}"))?,
        _ => BTreeMap::new(),
    };
    let payload = field(FIELD_PAYLOAD)?;
    let mut event = Event::new(topic, payload);
    event.id = id;
    event.sequence = sequence;
    event.timestamp = UNIX_EPOCH + Duration::from_nanos(nanos);
    event.metadata = metadata;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_sequences_map_both_ways_in_order() {
        for id in ["0-1", "1-0", "1712345678901-0", "1712345678901-1048575"] {
            let n = sequence(id).unwrap();
            assert_eq!(stream_id(n), id);
        }
        assert!(sequence("5-0").unwrap() > sequence("4-1048575").unwrap());
        assert_eq!(sequence("0-1"), Some(1));
        for bad in ["", "x-1", "1", "1-1048576", "18446744073709551615-0"] {
            assert_eq!(sequence(bad), None, "{bad}");
        }
    }

    #[test]
    fn events_round_trip_and_foreign_entries_are_refused() {
        let mut event = Event::new("t", &b"\x00\xffx"[..]);
        event.metadata.insert("k".into(), "v".into());
        let map = encode(&event)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.to_string(), redis::Value::BulkString(v)))
            .collect();
        let entry = StreamId {
            id: "7-3".into(),
            map,
            ..Default::default()
        };
        let back = decode("t", &entry).unwrap();
        assert_eq!(back.id, event.id);
        assert_eq!(back.payload, event.payload);
        assert_eq!(back.metadata, event.metadata);
        assert_eq!(back.timestamp, event.timestamp);
        assert_eq!(back.sequence, 7 << 20 | 3);
        let foreign = StreamId {
            id: "7-4".into(),
            map: [("hello".to_string(), redis::Value::BulkString(b"x".to_vec()))].into(),
            ..Default::default()
        };
        assert!(decode("t", &foreign).unwrap_err().contains(FIELD_ID));
    }
}
