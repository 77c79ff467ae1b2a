//! The wire format of one frame, as pure functions over byte buffers (no I/O), so that it can
//! be tested and fuzzed on its own. `docs/protocol-tcp.md` is the normative description. Used by the `tcp` transport on
//! sockets and by the `http` transport in streaming bodies.
//!
//! ```text
//! u32 length (BE, bytes after this field) | u32 stream id (BE) | u8 flags | u16 header count (BE)
//! per header: u16 key length (BE) | key (UTF-8) | u32 value length (BE) | value (UTF-8)
//! body: the remaining bytes
//! ```

use crate::Error;
use crate::transport::{ByteString, HeaderMap, Message};
use bytes::{Buf, BufMut, BytesMut};
use std::fmt;

/// Who raises frame errors.
const ID: &str = "go.micro.transport";

/// Flag: the sender closes its direction of the stream; the frame carries no message.
pub const END: u8 = 0x01;
/// Flag: the stream is aborted; the frame may carry a `Micro-Error` header, no body.
pub const RESET: u8 = 0x02;
/// Flag: a whole unary exchange in one frame. From the client it opens a stream and is the
/// complete request (no END follows); the server answers with exactly one UNARY frame (or a
/// RESET), after which both sides forget the id.
pub const UNARY: u8 = 0x04;
/// Size of the length prefix.
pub const PREFIX_LEN: usize = 4;
/// Smallest valid value of the length prefix: stream id, flags and header count.
pub const MIN_LENGTH: usize = 4 + 1 + 2;
/// The stream id of the connection itself (connection-level errors).
pub const CONNECTION: u32 = 0;
/// Header carrying an error as the JSON of a `micro::Error`.
pub const ERROR_HEADER: &str = "Micro-Error";

/// One frame: the stream it belongs to, its flags and its message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    /// Stream id; 0 is the connection itself.
    pub stream: u32,
    /// [`END`], [`RESET`] or 0.
    pub flags: u8,
    /// Headers and body (empty for END; empty body for RESET).
    pub message: Message,
}

impl Frame {
    /// A data frame.
    pub fn data(stream: u32, message: Message) -> Self {
        Frame {
            stream,
            flags: 0,
            message,
        }
    }

    /// A UNARY frame: a whole request or a whole answer.
    pub fn unary(stream: u32, message: Message) -> Self {
        Frame {
            stream,
            flags: UNARY,
            message,
        }
    }

    /// The END frame of a stream.
    pub fn end(stream: u32) -> Self {
        Frame {
            stream,
            flags: END,
            message: Message::default(),
        }
    }

    /// The RESET frame of a stream, with the reason as `Micro-Error`.
    pub fn reset(stream: u32, reason: &Error) -> Self {
        Frame {
            stream,
            flags: RESET,
            message: Message::default().with_header(ERROR_HEADER, reason.to_json()),
        }
    }

    /// The connection-level error frame (stream 0).
    pub fn connection_error(error: &Error) -> Self {
        Frame {
            stream: CONNECTION,
            flags: 0,
            message: Message::default().with_header(ERROR_HEADER, error.to_json()),
        }
    }

    /// Whether the END flag is set.
    pub fn is_end(&self) -> bool {
        self.flags & END != 0
    }

    /// Whether the UNARY flag is set.
    pub fn is_unary(&self) -> bool {
        self.flags & UNARY != 0
    }

    /// Whether the RESET flag is set.
    pub fn is_reset(&self) -> bool {
        self.flags & RESET != 0
    }

    /// The error this frame carries in `Micro-Error`, if any.
    pub fn error(&self) -> Option<Error> {
        self.message.header(ERROR_HEADER).map(Error::parse)
    }
}

/// Why bytes are not a valid frame (or a frame cannot be written).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix (or the encoded frame) exceeds the limit.
    TooLarge {
        /// The frame's length (bytes after the prefix).
        length: u64,
        /// The limit.
        max: u64,
    },
    /// The bytes do not follow the format.
    Malformed(String),
}

impl FrameError {
    /// The error sent to the peer: 413 for oversize, 400 for malformed.
    pub fn to_error(&self) -> Error {
        match self {
            FrameError::TooLarge { .. } => Error::too_large(ID, self.to_string()),
            FrameError::Malformed(_) => Error::bad_request(ID, self.to_string()),
        }
    }

    fn malformed(what: impl Into<String>) -> Self {
        FrameError::Malformed(what.into())
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { length, max } => {
                write!(
                    f,
                    "frame of {length} bytes exceeds the limit of {max} bytes"
                )
            }
            FrameError::Malformed(what) => write!(f, "malformed frame: {what}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// Checks the flag rules shared by encode and decode.
fn check_flags(flags: u8, headers: usize, body: usize) -> Result<(), FrameError> {
    if flags & !(END | RESET | UNARY) != 0 {
        return Err(FrameError::malformed(format!(
            "unknown flag bits {:#04x}",
            flags & !(END | RESET | UNARY)
        )));
    }
    if flags.count_ones() > 1 {
        return Err(FrameError::malformed(format!(
            "flags {flags:#04x}: END, RESET and UNARY exclude each other"
        )));
    }
    if flags == END && (headers != 0 || body != 0) {
        return Err(FrameError::malformed(
            "an END frame carries headers or a body",
        ));
    }
    if flags == RESET && body != 0 {
        return Err(FrameError::malformed("a RESET frame carries a body"));
    }
    Ok(())
}

/// The frame's length field: bytes after the prefix. Errors if a header or the frame cannot
/// be represented (key over 65535 bytes, more than 65535 headers, over 4 GiB).
pub fn frame_length(frame: &Frame) -> Result<u64, FrameError> {
    let header = &frame.message.header;
    if header.len() > usize::from(u16::MAX) {
        return Err(FrameError::malformed(format!(
            "{} headers, at most 65535 fit in a frame",
            header.len()
        )));
    }
    let mut length = MIN_LENGTH as u64 + frame.message.body.len() as u64;
    for (key, value) in header {
        if key.len() > usize::from(u16::MAX) {
            return Err(FrameError::malformed(format!(
                "header key of {} bytes, at most 65535 fit in a frame",
                key.len()
            )));
        }
        length += 2 + key.len() as u64 + 4 + value.len() as u64;
    }
    if length > u64::from(u32::MAX) {
        return Err(FrameError::TooLarge {
            length,
            max: u64::from(u32::MAX),
        });
    }
    Ok(length)
}

/// Whether `buf` starts like an HTTP/1.x message or the HTTP/2 preface (read where a length
/// prefix was expected, it looks like a frame of more than a gigabyte).
fn speaks_http(buf: &[u8]) -> bool {
    const STARTS: [&[u8; 4]; 10] = [
        b"HTTP", b"GET ", b"POST", b"PUT ", b"HEAD", b"PRI ", b"DELE", b"OPTI", b"PATC", b"CONN",
    ];
    buf.len() >= 4 && STARTS.iter().any(|s| buf[..4] == s[..])
}

/// [`frame_length`], failing with [`FrameError::TooLarge`] above `max` (the limit a peer
/// reads).
pub fn length_within(frame: &Frame, max: usize) -> Result<u64, FrameError> {
    let length = frame_length(frame)?;
    if length > max as u64 {
        return Err(FrameError::TooLarge {
            length,
            max: max as u64,
        });
    }
    Ok(length)
}

/// Appends the encoded frame (prefix included) to `buf`. Nothing is written on error.
pub fn encode(frame: &Frame, buf: &mut BytesMut) -> Result<(), FrameError> {
    encode_head(frame, buf, frame.message.body.len())?;
    buf.put_slice(&frame.message.body);
    Ok(())
}

/// Appends everything but the body (prefix, stream id, flags, headers) to `buf`, reserving
/// `extra` more bytes; the length field counts the body, which the caller writes next (or
/// hands to a vectored write). Nothing is written on error.
pub fn encode_head(frame: &Frame, buf: &mut BytesMut, extra: usize) -> Result<(), FrameError> {
    let message = &frame.message;
    check_flags(frame.flags, message.header.len(), message.body.len())?;
    let length = frame_length(frame)?;
    // frame_length guarantees every count and length below fits its field.
    let (Ok(length32), Ok(count)) = (u32::try_from(length), u16::try_from(message.header.len()))
    else {
        return Err(FrameError::malformed("frame fields out of range"));
    };
    let head = length as usize - message.body.len();
    buf.reserve(PREFIX_LEN + head + extra);
    buf.put_u32(length32);
    buf.put_u32(frame.stream);
    buf.put_u8(frame.flags);
    buf.put_u16(count);
    for (key, value) in &message.header {
        buf.put_u16(key.len() as u16);
        buf.put_slice(key.as_bytes());
        buf.put_u32(value.len() as u32);
        buf.put_slice(value.as_bytes());
    }
    Ok(())
}

/// The total size (prefix included) of the frame starting `buf`, once its prefix is there.
pub fn peek_size(buf: &[u8]) -> Option<usize> {
    let prefix: [u8; PREFIX_LEN] = buf.get(..PREFIX_LEN)?.try_into().ok()?;
    Some(PREFIX_LEN + u32::from_be_bytes(prefix) as usize)
}

/// Takes one frame off the front of `buf`. `Ok(None)`: more bytes are needed (nothing is
/// consumed). A length over `max` fails as soon as the prefix is there, before the rest
/// arrives. On error the buffer's contents are unspecified (the connection is done).
pub fn decode(buf: &mut BytesMut, max: usize) -> Result<Option<Frame>, FrameError> {
    let Some(size) = peek_size(buf) else {
        return Ok(None);
    };
    let length = size - PREFIX_LEN;
    if length > max {
        if speaks_http(buf) {
            return Err(FrameError::malformed(
                "the peer speaks HTTP, not micro's tcp frames: it is a server or client of the \
                 http transport; use transport http on this side too (or tcp on both)",
            ));
        }
        return Err(FrameError::TooLarge {
            length: length as u64,
            max: max as u64,
        });
    }
    if length < MIN_LENGTH {
        return Err(FrameError::malformed(format!(
            "length {length} is below the minimum of {MIN_LENGTH}"
        )));
    }
    if buf.len() < size {
        return Ok(None);
    }
    let mut bytes = buf.split_to(size);
    bytes.advance(PREFIX_LEN);
    let stream = bytes.get_u32();
    let flags = bytes.get_u8();
    let count = bytes.get_u16();
    // Each header needs at least 6 bytes: never reserve more than the frame can hold.
    let mut header = HeaderMap::with_capacity(usize::from(count).min(bytes.len() / 6));
    for index in 0..count {
        let key = take_string(&mut bytes, 2, index, "key")?;
        let value = take_string(&mut bytes, 4, index, "value")?;
        header.append(key, value);
    }
    check_flags(flags, usize::from(count), bytes.len())?;
    Ok(Some(Frame {
        stream,
        flags,
        message: Message {
            header,
            body: bytes.freeze(),
        },
    }))
}

/// Reads a length-prefixed UTF-8 string (`width`-byte length) of header `index`; it shares
/// the frame's buffer.
fn take_string(
    bytes: &mut BytesMut,
    width: usize,
    index: u16,
    what: &str,
) -> Result<ByteString, FrameError> {
    if bytes.len() < width {
        return Err(FrameError::malformed(format!(
            "header {index}: {what} length runs past the end of the frame"
        )));
    }
    let len = if width == 2 {
        usize::from(bytes.get_u16())
    } else {
        bytes.get_u32() as usize
    };
    if bytes.len() < len {
        return Err(FrameError::malformed(format!(
            "header {index}: {what} of {len} bytes runs past the end of the frame"
        )));
    }
    match ByteString::try_from(bytes.split_to(len).freeze()) {
        Ok(text) => Ok(text),
        Err(_) => Err(FrameError::malformed(format!(
            "header {index}: {what} is not valid UTF-8"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frame: &Frame) -> Frame {
        let mut buf = BytesMut::new();
        encode(frame, &mut buf).unwrap();
        let size = buf.len();
        assert_eq!(peek_size(&buf), Some(size));
        let decoded = decode(&mut buf, usize::MAX).unwrap().unwrap();
        assert!(buf.is_empty());
        decoded
    }

    #[test]
    fn data_end_reset_round_trip() {
        let data = Frame::data(7, Message::new("hi").with_header("Micro-Id", "1"));
        assert_eq!(round_trip(&data), data);
        assert_eq!(round_trip(&Frame::end(3)), Frame::end(3));
        let reset = Frame::reset(3, &Error::unavailable("x", "gone"));
        assert_eq!(round_trip(&reset), reset);
        let unary = Frame::unary(9, Message::new("{}").with_header("Micro-Id", "2"));
        assert_eq!(round_trip(&unary), unary);
        assert!(unary.is_unary() && !unary.is_end());
    }

    #[test]
    fn exact_bytes() {
        let frame = Frame::data(1, Message::new("hi").with_header("A", "b"));
        let mut buf = BytesMut::new();
        encode(&frame, &mut buf).unwrap();
        assert_eq!(
            &buf[..],
            &[
                0, 0, 0, 17, 0, 0, 0, 1, 0, 0, 1, 0, 1, b'A', 0, 0, 0, 1, b'b', b'h', b'i'
            ]
        );
    }

    #[test]
    fn partial_input_needs_more() {
        let mut buf = BytesMut::new();
        encode(&Frame::data(1, Message::new("hello")), &mut buf).unwrap();
        for cut in 0..buf.len() {
            let mut part = BytesMut::from(&buf[..cut]);
            assert_eq!(decode(&mut part, 1024), Ok(None), "cut at {cut}");
            assert_eq!(part.len(), cut);
        }
    }

    #[test]
    fn oversize_fails_on_the_prefix_alone() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            decode(&mut buf, 1024),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(
            FrameError::TooLarge { length: 1, max: 0 }.to_error().code,
            413
        );
    }

    #[test]
    fn malformed_frames() {
        let cases: &[&[u8]] = &[
            &[0, 0, 0, 3, 0, 0, 0],                   // below the minimum
            &[0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 1],       // one header, no bytes for it
            &[0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 1, 0, 5], // key runs past the end
            &[0, 0, 0, 7, 0, 0, 0, 1, 0x80, 0, 0],    // unknown flag
            &[0, 0, 0, 7, 0, 0, 0, 1, 3, 0, 0],       // END and RESET
            &[0, 0, 0, 7, 0, 0, 0, 1, 5, 0, 0],       // END and UNARY
            &[0, 0, 0, 8, 0, 0, 0, 1, 1, 0, 0, b'x'], // END with a body
            &[0, 0, 0, 8, 0, 0, 0, 1, 2, 0, 0, b'x'], // RESET with a body
            &[0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0xff, 0, 0, 0, 0, 0], // bad UTF-8
        ];
        for case in cases {
            let mut buf = BytesMut::from(*case);
            let err = decode(&mut buf, 1024).unwrap_err();
            assert!(matches!(err, FrameError::Malformed(_)), "{case:?}: {err}");
            assert_eq!(err.to_error().code, 400);
        }
    }

    /// The hex dumps of docs/protocol-tcp.md section 5, in order.
    fn doc_examples() -> Vec<Vec<u8>> {
        let doc = include_str!("../../../docs/protocol-tcp.md");
        let example = doc.split("## 5. Example").nth(1).unwrap_or_default();
        let example = example.split("## 6.").next().unwrap_or_default();
        let mut dumps = Vec::new();
        for (i, block) in example.split("```").enumerate() {
            if i % 2 == 0 {
                continue;
            }
            let mut bytes = Vec::new();
            for line in block.lines().filter(|l| l.len() > 6 && l.starts_with('0')) {
                let columns = &line[6..line.len().min(6 + 48)];
                for token in columns.split_whitespace() {
                    bytes.push(u8::from_str_radix(token, 16).unwrap());
                }
            }
            dumps.push(bytes);
        }
        dumps
    }

    #[test]
    fn http_where_a_frame_was_expected_is_named() {
        for start in [
            &b"HTTP/1.1 400 Bad Request\r\n"[..],
            b"POST / HTTP/1.1\r\n",
            b"PRI * HTTP/2.0\r\n",
        ] {
            let mut buf = BytesMut::from(start);
            let err = decode(&mut buf, 4 << 20).unwrap_err();
            assert!(err.to_string().contains("the peer speaks HTTP"), "{err}");
            assert_eq!(err.to_error().code, 400);
        }
        // A large frame that is not HTTP is still just too large.
        let mut buf = BytesMut::from(&[0x7f, 0, 0, 0, 0, 0, 0, 0][..]);
        assert!(matches!(
            decode(&mut buf, 1024),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn the_documented_example_decodes() {
        let dumps = doc_examples();
        assert_eq!(dumps.len(), 3, "three hex dumps in the example");
        let decode_one = |bytes: &[u8]| {
            let mut buf = BytesMut::from(bytes);
            let frame = decode(&mut buf, 4 << 20).unwrap().unwrap();
            assert!(buf.is_empty());
            frame
        };
        let request = decode_one(&dumps[0]);
        assert_eq!(
            request,
            Frame::data(
                1,
                Message::new(r#"{"name":"John"}"#)
                    .with_header("Micro-Endpoint", "Greeter.Hello")
                    .with_header("Content-Type", "application/json")
            )
        );
        assert_eq!(decode_one(&dumps[1]), Frame::end(1));
        let response = decode_one(&dumps[2]);
        assert_eq!(
            response,
            Frame::data(
                1,
                Message::new(r#"{"msg":"Hello John"}"#)
                    .with_header("Micro-Endpoint", "Greeter.Hello")
                    .with_header("Content-Type", "application/json")
            )
        );
        // Re-encoding gives the same size (header order may differ).
        let mut buf = BytesMut::new();
        encode(&request, &mut buf).unwrap();
        assert_eq!(buf.len(), dumps[0].len());
    }

    #[test]
    fn encode_rejects_what_cannot_be_written() {
        let mut buf = BytesMut::new();
        let long_key = Frame::data(1, Message::new("").with_header("k".repeat(70_000), "v"));
        assert!(encode(&long_key, &mut buf).is_err());
        let end_with_body = Frame {
            stream: 1,
            flags: END,
            message: Message::new("x"),
        };
        assert!(encode(&end_with_body, &mut buf).is_err());
        assert!(buf.is_empty());
    }
}
