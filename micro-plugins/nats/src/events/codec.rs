//! How events are laid out on JetStream: stream and consumer names, subjects, and the
//! headers an event travels with.
//!
//! Names: a topic or group name becomes a NATS name token by keeping ASCII letters, digits
//! and `-`, and writing every other byte as `_` and two upper-case hex digits (`a.b` is
//! `a_2Eb`, `_` is `_5F`). The mapping is reversible and the result holds no `.`, `*`, `>`,
//! space or path separator. Headers: the id in `Nats-Msg-Id` (deduplication) and
//! `Micro-Id`, the timestamp in `Micro-Timestamp` (signed nanoseconds since the Unix
//! epoch), each metadata entry in `Micro-Meta-<key>`; keys and values percent-encode the
//! bytes a header cannot carry.

use async_nats::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use micro_core::events::Event;
use micro_core::{Error, Result};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::ID;

/// Subject prefix of every topic: topic `orders` is `micro.events.orders`.
pub const SUBJECT_PREFIX: &str = "micro.events.";
/// Stream name prefix: topic `orders` is stream `MICRO_EVENTS_orders`.
pub const STREAM_PREFIX: &str = "MICRO_EVENTS_";
/// Longest escaped topic or group name: stream and consumer names are file names on the
/// server, which allows 255 bytes.
pub const MAX_NAME: usize = 200;

/// The event's id (also in `Nats-Msg-Id`).
pub const HEADER_ID: &str = "Micro-Id";
/// The event's timestamp: signed nanoseconds since the Unix epoch.
pub const HEADER_TIMESTAMP: &str = "Micro-Timestamp";
/// Prefix of a metadata header.
pub const HEADER_META: &str = "Micro-Meta-";
/// JetStream's deduplication header.
pub const HEADER_MSG_ID: &str = "Nats-Msg-Id";

/// `name` as a NATS name token (see the module documentation).
pub fn escape(name: &str) -> String {
    crate::escape::escape(name, b'_', |_, byte| {
        byte.is_ascii_alphanumeric() || byte == b'-'
    })
}

/// The name `escape` made `token` from; `None` when `token` is not such a name.
pub fn unescape(token: &str) -> Option<String> {
    crate::escape::unescape(token, b'_')
}

/// `name` escaped, or a 400 when it is too long to be a JetStream name.
fn checked(kind: &str, name: &str) -> Result<String> {
    let escaped = escape(name);
    if escaped.len() > MAX_NAME {
        return Err(Error::bad_request(
            ID,
            format!(
                "{kind} {name:?} is too long: escaped for NATS it takes {} bytes, at most \
                 {MAX_NAME} fit; give a shorter {kind} (letters, digits and '-' take one \
                 byte, other bytes three)",
                escaped.len()
            ),
        ));
    }
    Ok(escaped)
}

/// The stream of `topic`.
pub fn stream_name(topic: &str) -> Result<String> {
    Ok(format!("{STREAM_PREFIX}{}", checked("topic", topic)?))
}

/// The subject of `topic`.
pub fn subject(topic: &str) -> Result<String> {
    Ok(format!("{SUBJECT_PREFIX}{}", checked("topic", topic)?))
}

/// The durable consumer of `group`.
pub fn consumer_name(group: &str) -> Result<String> {
    checked("group", group)
}

/// A metadata key as the rest of a header name: printable ASCII but `:` stays.
fn encode_key(key: &str) -> String {
    crate::escape::escape(key, b'%', |_, b| b.is_ascii_graphic() && b != b':')
}

/// A metadata value as a header value: no control bytes, and no white space at either end
/// (NATS trims it).
fn encode_value(value: &str) -> String {
    let last = value.len().saturating_sub(1);
    crate::escape::escape(value, b'%', |i, b| {
        !b.is_ascii_control() && !(b == b' ' && (i == 0 || i == last))
    })
}

/// The headers `event` is published with.
pub fn encode(event: &Event) -> Result<HeaderMap> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        Error::internal(ID, format!("cannot write {what} as a NATS header: {e}"))
    };
    let mut headers = HeaderMap::new();
    let id = HeaderValue::try_from(encode_value(&event.id)).map_err(|e| bad("the id", &e))?;
    headers.insert(HEADER_MSG_ID, id.clone());
    headers.insert(HEADER_ID, id);
    headers.insert(
        HEADER_TIMESTAMP,
        nanos(event.timestamp).to_string().as_str(),
    );
    for (key, value) in &event.metadata {
        let name = HeaderName::try_from(format!("{HEADER_META}{}", encode_key(key)))
            .map_err(|e| bad("a metadata key", &e))?;
        let value =
            HeaderValue::try_from(encode_value(value)).map_err(|e| bad("a metadata value", &e))?;
        headers.insert(name, value);
    }
    Ok(headers)
}

/// The event in a stored message, or why it is not one.
pub fn decode(
    topic: &str,
    sequence: u64,
    headers: Option<&HeaderMap>,
    payload: Bytes,
) -> std::result::Result<Event, String> {
    let headers = headers.ok_or("no headers (not published by micro)")?;
    let id = headers
        .get(HEADER_ID)
        .ok_or(format!("no {HEADER_ID} header (not published by micro)"))?;
    let id = crate::escape::unescape(id.as_str(), b'%')
        .filter(|id| !id.is_empty())
        .ok_or(format!("bad {HEADER_ID} header {:?}", id.as_str()))?;
    let stamp = headers
        .get(HEADER_TIMESTAMP)
        .ok_or(format!("no {HEADER_TIMESTAMP} header"))?;
    let timestamp = stamp
        .as_str()
        .parse::<i128>()
        .ok()
        .and_then(from_nanos)
        .ok_or(format!(
            "bad {HEADER_TIMESTAMP} header {:?}: want nanoseconds since 1970",
            stamp.as_str()
        ))?;
    let mut event = Event::new(topic, payload);
    event.id = id;
    event.sequence = sequence;
    event.timestamp = timestamp;
    for (name, values) in headers.iter() {
        let name: &str = name.as_ref();
        let Some(key) = name.strip_prefix(HEADER_META) else {
            continue;
        };
        let key = crate::escape::unescape(key, b'%')
            .ok_or(format!("bad metadata header name {name:?}"))?;
        let value = values.last().map(|v| v.as_str()).unwrap_or_default();
        let value = crate::escape::unescape(value, b'%')
            .ok_or(format!("bad value of metadata header {name:?}"))?;
        event.metadata.insert(key, value);
    }
    Ok(event)
}

/// `time` as signed nanoseconds since the Unix epoch.
pub fn nanos(time: SystemTime) -> i128 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    }
}

/// The time `nanos` after (or before, when negative) the Unix epoch, if representable.
pub fn from_nanos(nanos: i128) -> Option<SystemTime> {
    let magnitude = nanos.unsigned_abs();
    let secs = u64::try_from(magnitude / 1_000_000_000).ok()?;
    let span = Duration::new(secs, (magnitude % 1_000_000_000) as u32);
    if nanos >= 0 {
        UNIX_EPOCH.checked_add(span)
    } else {
        UNIX_EPOCH.checked_sub(span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn names_escape_reversibly() {
        for name in ["orders", "a.b*c>d e", "_5F", "ümlaut/x\\y", "", "a-b_c"] {
            let escaped = escape(name);
            assert!(
                escaped
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{escaped}"
            );
            assert_eq!(unescape(&escaped).as_deref(), Some(name));
        }
        assert_eq!(escape("a.b"), "a_2Eb");
        assert_eq!(unescape("a_2"), None);
        assert_eq!(unescape("micro_private_x"), None);
        assert!(stream_name(&"x".repeat(MAX_NAME + 1)).is_err());
    }

    #[test]
    fn headers_round_trip() {
        let mut event = Event::new("t", Bytes::from_static(b"\0payload"));
        event.timestamp = UNIX_EPOCH - Duration::new(5, 7);
        event.metadata = BTreeMap::from([
            ("plain".into(), "value with spaces".into()),
            ("odd key: %".into(), " line\r\nbreak 100% ünï ".into()),
            ("".into(), "".into()),
        ]);
        let headers = encode(&event).unwrap();
        let back = decode("t", 7, Some(&headers), event.payload.clone()).unwrap();
        assert_eq!(back.id, event.id);
        assert_eq!(back.timestamp, event.timestamp);
        assert_eq!(back.metadata, event.metadata);
        assert_eq!(back.sequence, 7);
        assert_eq!(
            headers.get("Micro-Meta-plain").map(|v| v.as_str()),
            Some("value with spaces")
        );
    }

    #[test]
    fn foreign_messages_are_refused_with_a_reason() {
        assert!(decode("t", 1, None, Bytes::new()).is_err());
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_ID, "x");
        headers.insert(HEADER_TIMESTAMP, "yesterday");
        let reason = decode("t", 1, Some(&headers), Bytes::new()).unwrap_err();
        assert!(reason.contains("yesterday"), "{reason}");
    }
}
