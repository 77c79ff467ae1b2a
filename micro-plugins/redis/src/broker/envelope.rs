//! How a broker message travels in a Redis payload: [`MAGIC`], the length of the header
//! block (4 bytes, big-endian), the headers as a JSON object of strings, then the body.

use micro_core::broker::Message;
use micro_core::{Error, Result};
use std::collections::HashMap;

/// The first bytes of a payload written by micro.
pub const MAGIC: &[u8; 4] = b"\x00mb1";

/// The payload carrying `message`.
pub fn encode(topic: &str, message: &Message) -> Result<Vec<u8>> {
    let header = serde_json::to_vec(&message.header).map_err(|e| {
        Error::bad_request(
            super::ID,
            format!("headers of a message on {topic:?} cannot be encoded: {e}"),
        )
    })?;
    let length = u32::try_from(header.len()).map_err(|_| {
        Error::too_large(
            super::ID,
            format!("headers of a message on {topic:?} are over 4 GiB: send fewer"),
        )
    })?;
    let mut out = Vec::with_capacity(8 + header.len() + message.body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&message.body);
    Ok(out)
}

/// The message in `payload`; a payload micro did not write is a body without headers.
pub fn decode(payload: &[u8]) -> Message {
    try_decode(payload).unwrap_or_else(|| Message::new(payload.to_vec()))
}

fn try_decode(payload: &[u8]) -> Option<Message> {
    let rest = payload.strip_prefix(MAGIC)?;
    let (length, rest) = rest.split_at_checked(4)?;
    let length = u32::from_be_bytes(length.try_into().ok()?) as usize;
    let (header, body) = rest.split_at_checked(length)?;
    let header: HashMap<String, String> = serde_json::from_slice(header).ok()?;
    Some(Message {
        header,
        body: body.to_vec().into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_foreign_payloads_are_bodies() {
        let message = Message::new(&b"\x00\xff{"[..]).with_header("Micro-Id", "1");
        assert_eq!(decode(&encode("t", &message).unwrap()), message);
        assert_eq!(decode(b"hello"), Message::new(&b"hello"[..]));
        let cut = &encode("t", &message).unwrap()[..10];
        assert_eq!(decode(cut), Message::new(cut.to_vec()));
    }
}
