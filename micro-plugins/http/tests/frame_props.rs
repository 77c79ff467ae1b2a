//! Property tests of the HTTP body frame codec (`micro_http::frame`): round trips, arbitrary
//! splits of a body into chunks, and arbitrary bytes (never a panic: a frame, need-more, or a
//! 400/413 error that says what was wrong).

use bytes::Bytes;
use micro_core::Error;
use micro_core::transport::{HeaderMap, Message};
use micro_http::frame::{self, Decoder};
use proptest::collection::{hash_map, vec};
use proptest::prelude::*;

const MAX: usize = 1 << 20;

fn any_message() -> impl Strategy<Value = Message> {
    let header = hash_map(".{0,12}", ".{0,40}", 0..6);
    let body = vec(any::<u8>(), 0..300);
    (header, body).prop_map(|(header, body)| Message {
        header: header.into_iter().collect::<HeaderMap>(),
        body: Bytes::from(body),
    })
}

/// What a body carries: data frames, END, or RESET with an error.
#[derive(Debug, Clone)]
enum Item {
    Data(Message),
    End,
    Reset(u16, String),
}

fn any_item() -> impl Strategy<Value = Item> {
    prop_oneof![
        4 => any_message().prop_map(Item::Data),
        1 => Just(Item::End),
        1 => (400u16..600, ".{0,60}").prop_map(|(code, detail)| Item::Reset(code, detail)),
    ]
}

fn encode(item: &Item) -> Bytes {
    match item {
        Item::Data(message) => frame::encode(0, message.clone(), MAX).unwrap(),
        Item::End => frame::end(),
        Item::Reset(code, detail) => frame::reset(&Error::new("props", *code, detail.clone())),
    }
}

/// The decoded frame is the item that was encoded.
fn same(decoded: &frame::Frame, item: &Item) -> bool {
    match item {
        Item::Data(message) => {
            !decoded.is_end() && !decoded.is_reset() && &decoded.message == message
        }
        Item::End => decoded.is_end() && !frame::has_message(decoded),
        Item::Reset(code, detail) => {
            decoded.is_reset()
                && decoded
                    .message
                    .header("Micro-Error")
                    .map(Error::parse)
                    .is_some_and(|err| err.code == *code && &err.detail == detail)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_is_identity(item in any_item()) {
        let mut decoder = Decoder::new(MAX);
        decoder.push(&encode(&item));
        let decoded = decoder.next_frame().unwrap().expect("a whole frame");
        prop_assert!(same(&decoded, &item), "{:?} came back as {:?}", item, decoded);
        prop_assert!(!decoder.has_partial());
        prop_assert_eq!(decoder.next_frame().unwrap(), None);
    }

    #[test]
    fn any_split_decodes_the_same_frames(
        items in vec(any_item(), 1..6),
        cuts in vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let wire: Vec<u8> = items.iter().flat_map(|i| encode(i).to_vec()).collect();
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
        points.push(wire.len());
        points.sort_unstable();
        let mut decoder = Decoder::new(MAX);
        let mut decoded = Vec::new();
        let mut from = 0;
        for to in points {
            decoder.push(&wire[from..to]);
            from = to;
            while let Some(f) = decoder.next_frame().unwrap() {
                decoded.push(f);
            }
        }
        prop_assert!(!decoder.has_partial());
        prop_assert_eq!(decoded.len(), items.len());
        for (d, i) in decoded.iter().zip(&items) {
            prop_assert!(same(d, i), "{:?} came back as {:?}", i, d);
        }
    }

    #[test]
    fn a_frame_over_the_limit_is_413_both_ways(message in any_message(), max in 0usize..400) {
        let fits = frame::encode(0, message.clone(), MAX).unwrap();
        match frame::encode(0, message, max) {
            Ok(bytes) => prop_assert_eq!(&bytes, &fits),
            Err(err) => {
                prop_assert_eq!(err.code, 413);
                let mut decoder = Decoder::new(max);
                decoder.push(&fits);
                let err = decoder.next_frame().unwrap_err();
                prop_assert_eq!(err.code, 413);
                prop_assert!(!err.detail.is_empty());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(chunks in vec(vec(any::<u8>(), 0..128), 0..6), max in 0usize..1024) {
        let mut decoder = Decoder::new(max);
        'chunks: for chunk in chunks {
            decoder.push(&chunk);
            loop {
                match decoder.next_frame() {
                    Ok(Some(f)) => {
                        // At most one of END and RESET; END carries nothing.
                        prop_assert!(!(f.is_end() && f.is_reset()));
                        prop_assert!(!f.is_end() || !frame::has_message(&f));
                    }
                    // Need more: whatever is buffered is the start of a frame.
                    Ok(None) => break,
                    Err(err) => {
                        prop_assert!(err.code == 400 || err.code == 413, "code {}", err.code);
                        prop_assert!(!err.detail.is_empty());
                        break 'chunks;
                    }
                }
            }
        }
    }

    #[test]
    fn arbitrary_frame_contents_never_panic(flags in any::<u8>(), rest in vec(any::<u8>(), 0..256)) {
        // A length prefix that matches, so the fuzzing reaches the flag and header parser
        // (`rest` starts with the header count).
        let mut raw = Vec::new();
        raw.extend_from_slice(&((5 + rest.len()) as u32).to_be_bytes());
        raw.extend_from_slice(&0u32.to_be_bytes());
        raw.push(flags);
        raw.extend_from_slice(&rest);
        let mut decoder = Decoder::new(MAX);
        decoder.push(&raw);
        match decoder.next_frame() {
            Ok(Some(_)) => {}
            Ok(None) => prop_assert!(false, "a whole frame was buffered, yet more was wanted"),
            Err(err) => {
                prop_assert_eq!(err.code, 400);
                prop_assert!(err.detail.contains("frame"), "detail: {}", err.detail);
            }
        }
    }
}
