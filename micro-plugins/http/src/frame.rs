//! The binary frames of streaming exchanges, in HTTP request and response bodies: the same
//! codec as the `tcp` transport ([`micro_core::transport::frame`]), with stream id 0 (one
//! HTTP exchange is one stream), wrapped for body chunks.

use bytes::{Bytes, BytesMut};
use micro_core::Error;
use micro_core::transport::Message;
use micro_core::transport::frame::{self as codec, FrameError};

pub use micro_core::transport::frame::{END, Frame, RESET};

/// Whether the frame carries a message (headers or a body) besides its flags.
pub fn has_message(frame: &Frame) -> bool {
    !frame.message.header.is_empty() || !frame.message.body.is_empty()
}

fn write(frame: &Frame, max_frame: usize) -> Result<Bytes, FrameError> {
    codec::length_within(frame, max_frame)?;
    let mut out = BytesMut::new();
    codec::encode(frame, &mut out)?;
    Ok(out.freeze())
}

/// Encodes one frame; 413 when it is longer than `max_frame`, 400 when a header does not fit
/// the format.
pub fn encode(flags: u8, message: Message, max_frame: usize) -> Result<Bytes, Error> {
    let frame = Frame {
        stream: 0,
        flags,
        message,
    };
    write(&frame, max_frame).map_err(|e| e.to_error())
}

/// An empty frame with only [`END`] set.
pub fn end() -> Bytes {
    write(&Frame::end(0), usize::MAX).unwrap_or_default()
}

/// A [`RESET`] frame telling the peer why the stream was aborted.
pub fn reset(error: &Error) -> Bytes {
    write(&Frame::reset(0, error), usize::MAX)
        .or_else(|_| {
            write(
                &Frame {
                    stream: 0,
                    flags: RESET,
                    message: Message::default(),
                },
                usize::MAX,
            )
        })
        .unwrap_or_default()
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

    /// The next whole frame, `Ok(None)` when more bytes are needed, or an error (400
    /// malformed, 413 too large) after which the stream cannot continue.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, Error> {
        codec::decode(&mut self.buf, self.max_frame).map_err(|e| e.to_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_pieces() {
        let message = Message::new(vec![0u8, 1, 2, 255])
            .with_header("Micro-Endpoint", "Greeter.Hello")
            .with_header("Empty", "");
        let mut wire = encode(0, message.clone(), 1024).unwrap().to_vec();
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
        assert!(frames[1].is_end() && !has_message(&frames[1]));
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
            encode(0, Message::new(vec![0u8; 64]), 16).unwrap_err().code,
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
