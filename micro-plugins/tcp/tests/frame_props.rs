//! Property tests of the frame codec: round trips, arbitrary input, arbitrary splits.

use bytes::{Bytes, BytesMut};
use micro_core::transport::{HeaderMap, Message};
use micro_tcp::frame::{self, END, Frame, RESET, UNARY};
use proptest::collection::{hash_map, vec};
use proptest::prelude::*;

const MAX: usize = 1 << 20;

fn any_frame() -> impl Strategy<Value = Frame> {
    let header = hash_map(".{0,12}", ".{0,40}", 0..6);
    let body = vec(any::<u8>(), 0..300);
    (any::<u32>(), 0u8..4, header, body).prop_map(|(stream, kind, header, body)| {
        let header: HeaderMap = header.into_iter().collect();
        match kind {
            0 => Frame {
                stream,
                flags: 0,
                message: Message {
                    header,
                    body: Bytes::from(body),
                },
            },
            1 => Frame::end(stream),
            2 => Frame::unary(
                stream,
                Message {
                    header,
                    body: Bytes::from(body),
                },
            ),
            _ => Frame {
                stream,
                flags: RESET,
                message: Message {
                    header,
                    body: Bytes::new(),
                },
            },
        }
    })
}

fn encode_all(frames: &[Frame]) -> BytesMut {
    let mut buf = BytesMut::new();
    for f in frames {
        frame::encode(f, &mut buf).unwrap();
    }
    buf
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_is_identity(f in any_frame()) {
        let mut buf = encode_all(std::slice::from_ref(&f));
        prop_assert_eq!(frame::peek_size(&buf), Some(buf.len()));
        let decoded = frame::decode(&mut buf, MAX).unwrap();
        prop_assert_eq!(decoded, Some(f));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..512), max in 0usize..1024) {
        let mut buf = BytesMut::from(&bytes[..]);
        // Keep decoding until the input runs out or fails: every outcome is fine but a panic.
        for _ in 0..bytes.len() + 1 {
            let before = buf.len();
            match frame::decode(&mut buf, max) {
                Ok(Some(f)) => {
                    prop_assert!(buf.len() < before);
                    prop_assert!(f.flags & !(END | RESET | UNARY) == 0);
                    prop_assert!(f.flags.count_ones() <= 1);
                }
                Ok(None) => {
                    prop_assert_eq!(buf.len(), before);
                    break;
                }
                Err(_) => break,
            }
        }
    }

    #[test]
    fn arbitrary_frame_bodies_never_panic(stream in any::<u32>(), flags in any::<u8>(), rest in vec(any::<u8>(), 0..256)) {
        // A well-formed prefix and header so the fuzzing reaches the header parser.
        let mut raw = Vec::new();
        // The length counts what follows the prefix: stream id, flags and the rest.
        raw.extend_from_slice(&((5 + rest.len()) as u32).to_be_bytes());
        raw.extend_from_slice(&stream.to_be_bytes());
        raw.push(flags);
        raw.extend_from_slice(&rest);
        if raw.len() < 11 {
            return Ok(());
        }
        let mut buf = BytesMut::from(&raw[..]);
        // The whole frame is there: the decoder gives a frame or an error, never "need more".
        prop_assert!(!matches!(frame::decode(&mut buf, MAX), Ok(None)));
    }

    #[test]
    fn any_split_decodes_the_same_frames(frames in vec(any_frame(), 1..6), cuts in vec(any::<prop::sample::Index>(), 0..8)) {
        let encoded = encode_all(&frames);
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(encoded.len() + 1)).collect();
        points.push(encoded.len());
        points.sort_unstable();
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        let mut from = 0;
        for to in points {
            buf.extend_from_slice(&encoded[from..to]);
            from = to;
            while let Some(f) = frame::decode(&mut buf, MAX).unwrap() {
                decoded.push(f);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(decoded, frames);
    }
}
