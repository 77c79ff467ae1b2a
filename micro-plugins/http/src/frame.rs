//! The binary frame format of streaming exchanges (the same layout as the `tcp` transport's
//! frames), used in HTTP request and response bodies that carry `Micro-Stream`.
//!
//! ```text
//! u32 BE  length        bytes after this field: 4 + 1 + 2 + headers + body
//! u32 BE  stream id     0 over HTTP (one HTTP exchange = one stream); ignored on receipt
//! u8      flags         0x01 END, 0x02 RESET; other bits ignored
//! u16 BE  header count
//! headers, each:        u16 BE key length, key (UTF-8), u32 BE value length, value (UTF-8)
//! body                  the rest of the frame
//! ```
//!
//! The lead may later share one codec with `micro-tcp`; this one has the same layout.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use micro_core::Error;
use micro_core::transport::Message;
use std::collections::HashMap;

/// Flag: the sender ended its direction of the stream.
pub const END: u8 = 0x01;
/// Flag: the sender aborted the stream; a `Micro-Error` header may say why.
pub const RESET: u8 = 0x02;

/// Bytes of the fixed part after the length field (stream id, flags, header count).
const FIXED: usize = 4 + 1 + 2;

use crate::ID;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Stream id (0 over HTTP).
    pub stream: u32,
    /// [`END`], [`RESET`] or 0.
    pub flags: u8,
    /// Headers and body.
    pub message: Message,
}

impl Frame {
    /// Whether the frame ends its direction.
    pub fn is_end(&self) -> bool {
        self.flags & END != 0
    }

    /// Whether the frame aborts the stream.
    pub fn is_reset(&self) -> bool {
        self.flags & RESET != 0
    }

    /// Whether the frame carries a message (headers or a body) besides its flags.
    pub fn has_message(&self) -> bool {
        !self.message.header.is_empty() || !self.message.body.is_empty()
    }
}

/// Encodes one frame; fails (400) when a header or the frame is too large for the format or
/// the frame is longer than `max_frame`.
pub fn encode(flags: u8, message: &Message, max_frame: usize) -> Result<Bytes, Error> {
    let count = u16::try_from(message.header.len())
        .map_err(|_| Error::bad_request(ID, "too many headers for one frame (at most 65535)"))?;
    let mut length = FIXED + message.body.len();
    for (key, value) in &message.header {
        length += 2 + key.len() + 4 + value.len();
    }
    if length > max_frame {
        return Err(Error::too_large(
            ID,
            format!("frame of {length} bytes is larger than the limit of {max_frame} bytes"),
        ));
    }
    let length32 =
        u32::try_from(length).map_err(|_| Error::too_large(ID, "frame longer than 4 GiB"))?;
    let mut out = BytesMut::with_capacity(4 + length);
    out.put_u32(length32);
    out.put_u32(0);
    out.put_u8(flags);
    out.put_u16(count);
    for (key, value) in &message.header {
        let key_len = u16::try_from(key.len())
            .map_err(|_| Error::bad_request(ID, "header key longer than 65535 bytes"))?;
        let value_len = u32::try_from(value.len())
            .map_err(|_| Error::bad_request(ID, "header value longer than 4 GiB"))?;
        out.put_u16(key_len);
        out.put_slice(key.as_bytes());
        out.put_u32(value_len);
        out.put_slice(value.as_bytes());
    }
    out.put_slice(&message.body);
    Ok(out.freeze())
}

/// An empty frame with only flags set ([`END`]).
pub fn end() -> Bytes {
    let mut out = BytesMut::with_capacity(4 + FIXED);
    out.put_u32(FIXED as u32);
    out.put_u32(0);
    out.put_u8(END);
    out.put_u16(0);
    out.freeze()
}

/// A [`RESET`] frame telling the peer why the stream was aborted.
pub fn reset(error: &Error) -> Bytes {
    let message = Message::default().with_header("Micro-Error", error.to_json());
    // An error's JSON is far below any sane limit; fall back to a bare reset if not.
    encode(RESET, &message, usize::MAX).unwrap_or_else(|_| {
        let mut out = BytesMut::with_capacity(4 + FIXED);
        out.put_u32(FIXED as u32);
        out.put_u32(0);
        out.put_u8(RESET);
        out.put_u16(0);
        out.freeze()
    })
}

/// Incremental decoder: push body chunks as they arrive, take whole frames out.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    max_frame: usize,
}

impl Decoder {
    /// A decoder that rejects frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Decoder {
            buf: BytesMut::new(),
            max_frame,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Whether bytes of an incomplete frame are buffered.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed, or a 400 error for a
    /// malformed frame (the stream cannot continue after that).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, Error> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let length = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        let length = usize::try_from(length)
            .map_err(|_| Error::bad_request(ID, "frame length does not fit in memory"))?;
        if length < FIXED {
            return Err(Error::bad_request(
                ID,
                format!(
                    "malformed frame: length {length} is shorter than the fixed part ({FIXED})"
                ),
            ));
        }
        if length > self.max_frame {
            return Err(Error::too_large(
                ID,
                format!(
                    "frame of {length} bytes is larger than the limit of {} bytes",
                    self.max_frame
                ),
            ));
        }
        if self.buf.len() < 4 + length {
            self.buf.reserve(4 + length - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(4);
        let frame = self.buf.split_to(length).freeze();
        parse(frame).map(Some)
    }
}

fn malformed(what: &str) -> Error {
    Error::bad_request(ID, format!("malformed frame: {what}"))
}

/// Parses the part of a frame after its length field.
fn parse(mut frame: Bytes) -> Result<Frame, Error> {
    let stream = frame.get_u32();
    let flags = frame.get_u8();
    let count = frame.get_u16();
    let mut header = HashMap::with_capacity(usize::from(count).min(64));
    for _ in 0..count {
        if frame.remaining() < 2 {
            return Err(malformed("header key length cut short"));
        }
        let key_len = usize::from(frame.get_u16());
        if frame.remaining() < key_len + 4 {
            return Err(malformed("header key cut short"));
        }
        let key = text(frame.split_to(key_len), "header key")?;
        let value_len = usize::try_from(frame.get_u32())
            .map_err(|_| malformed("header value length does not fit in memory"))?;
        if frame.remaining() < value_len {
            return Err(malformed("header value cut short"));
        }
        let value = text(frame.split_to(value_len), "header value")?;
        header.insert(key, value);
    }
    Ok(Frame {
        stream,
        flags,
        message: Message {
            header,
            body: frame,
        },
    })
}

fn text(bytes: Bytes, what: &str) -> Result<String, Error> {
    String::from_utf8(bytes.to_vec()).map_err(|_| malformed(&format!("{what} is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_pieces() {
        let message = Message::new(vec![0u8, 1, 2, 255])
            .with_header("Micro-Endpoint", "Greeter.Hello")
            .with_header("Empty", "");
        let mut wire = encode(0, &message, 1024).unwrap().to_vec();
        wire.extend_from_slice(&end());
        let mut decoder = Decoder::new(1024);
        let mut frames = Vec::new();
        for byte in wire {
            decoder.push(&[byte]);
            while let Some(frame) = decoder.next_frame().unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].message, message);
        assert!(!frames[0].is_end());
        assert!(frames[1].is_end() && !frames[1].has_message());
        assert!(!decoder.has_partial());
    }

    #[test]
    fn rejects_bad_frames() {
        let mut short = Decoder::new(1024);
        short.push(&[0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(short.next_frame().unwrap_err().code, 400);

        let mut big = Decoder::new(16);
        big.push(&[0, 0, 1, 0]);
        assert_eq!(big.next_frame().unwrap_err().code, 413);

        // One header announced, none present.
        let mut cut = Decoder::new(1024);
        cut.push(&[0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(cut.next_frame().unwrap_err().code, 400);

        // A key that is not UTF-8.
        let mut utf = Decoder::new(1024);
        utf.push(&[0, 0, 0, 14, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0xff, 0, 0, 0, 0]);
        assert_eq!(utf.next_frame().unwrap_err().code, 400);

        assert_eq!(
            encode(0, &Message::new(vec![0u8; 64]), 16)
                .unwrap_err()
                .code,
            413
        );
    }

    #[test]
    fn reset_carries_the_error() {
        let err = Error::bad_request("x", "nope");
        let mut decoder = Decoder::new(1024);
        decoder.push(&reset(&err));
        let frame = decoder.next_frame().unwrap().unwrap();
        assert!(frame.is_reset());
        assert_eq!(
            Error::parse(frame.message.header("Micro-Error").unwrap()),
            err
        );
    }
}
