//! Codec suite: micro-core's message encodings ([`Format`], [`Payload`]) behave as every
//! client, server and broker plugin relies on.
//!
//! - JSON (any serde type, and [`Proto`] messages that also derive serde), protobuf
//!   ([`Proto`] over a hand-written prost message) and raw bytes ([`Raw`]) round-trip;
//!   protobuf bodies are prost's own encoding, so peers in other languages read them.
//! - Raw bytes pass through untouched: non-UTF-8, empty, and bodies that look like JSON.
//! - Content types resolve case-insensitively, with parameters (`; charset=utf-8`) and
//!   go-micro's aliases; an empty content type is JSON; an unknown one is a 415 whose detail
//!   names the type and the supported ones.
//! - A type asked for a format it cannot speak is a 415; a body that does not decode is a
//!   400, never a panic (also for a few thousand pseudo-random bodies).
//!
//! The cases are plain functions; [`codec_suite!`](crate::codec_suite) turns each into a
//! `#[test]`:
//!
//! ```ignore
//! micro_conformance::codec_suite!();
//! ```

use bytes::Bytes;
use micro_core::Error;
use micro_core::codec::{BYTES, Format, JSON, PROTOBUF, Payload, Proto, Raw};
use serde::{Deserialize, Serialize};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The suite's protobuf message, written by hand with prost's derive (no `.proto` file).
#[derive(Clone, PartialEq, prost::Message, Serialize, Deserialize)]
struct Sample {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(int64, tag = "2")]
    count: i64,
    #[prost(bytes = "vec", tag = "3")]
    blob: Vec<u8>,
    #[prost(string, repeated, tag = "4")]
    tags: Vec<String>,
    #[prost(bool, tag = "5")]
    flag: bool,
}

fn sample() -> Sample {
    Sample {
        name: "Jöhn \"quoted\" \u{1F600}\n".into(),
        count: -42,
        blob: vec![0, 1, 2, 0xfe, 0xff],
        tags: vec!["a".into(), "".into(), "ü".into()],
        flag: true,
    }
}

/// A serde type whose fields all have defaults.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
struct Defaults {
    name: String,
    count: u32,
}

/// A plain serde type (JSON only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    customer: String,
    lines: Vec<Line>,
    note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Line {
    sku: String,
    quantity: u32,
    price: f64,
}

fn order() -> Order {
    Order {
        id: u64::MAX,
        customer: "Ann \u{e9}\u{1F600} \"<&>\"\t\\".into(),
        lines: vec![
            Line {
                sku: "a-1".into(),
                quantity: 3,
                price: 9.5,
            },
            Line {
                sku: "".into(),
                quantity: 0,
                price: -0.25,
            },
        ],
        note: None,
    }
}

fn encode<T: Payload>(check: &str, value: &T, format: Format) -> Bytes {
    value
        .encode(format)
        .unwrap_or_else(|e| panic!("{check}: encode as {format:?}: {e}"))
}

fn decode<T: Payload>(check: &str, format: Format, body: &[u8]) -> T {
    T::decode(format, body).unwrap_or_else(|e| panic!("{check}: decode {format:?} {body:?}: {e}"))
}

fn resolve(check: &str, content_type: &str) -> Format {
    Format::from_content_type(content_type)
        .unwrap_or_else(|e| panic!("{check}: content type {content_type:?} refused: {e}"))
}

/// Decodes `body` as `T`, failing the check if decoding panics; `Ok` or `Err` both pass.
fn decode_without_panic<T: Payload>(
    check: &str,
    format: Format,
    body: &[u8],
) -> micro_core::Result<T> {
    match catch_unwind(AssertUnwindSafe(|| T::decode(format, body))) {
        Ok(result) => result,
        Err(_) => panic!("{check}: decoding {body:?} as {format:?} panicked"),
    }
}

fn assert_bad_request(check: &str, what: &str, result: micro_core::Result<impl std::fmt::Debug>) {
    match result {
        Err(err) => assert_eq!(err.code, 400, "{check}: {what}: expected a 400, got {err}"),
        Ok(value) => panic!("{check}: {what}: decoded garbage as {value:?}"),
    }
}

fn assert_unsupported(check: &str, what: &str, err: &Error) {
    assert_eq!(err.code, 415, "{check}: {what}: expected a 415, got {err}");
    assert_eq!(
        err.status, "Unsupported Media Type",
        "{check}: {what}: status"
    );
    assert!(!err.detail.is_empty(), "{check}: {what}: detail says why");
}

/// A serde value round-trips through JSON, and the body is the JSON serde_json writes.
pub fn check_json_round_trip() {
    let check = "check_json_round_trip";
    let value = order();
    let body = encode(check, &value, Format::Json);
    let parsed: serde_json::Value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{check}: the body is not JSON ({e}): {body:?}"));
    let expected = serde_json::to_value(&value).expect("check_json_round_trip: to_value");
    assert_eq!(parsed, expected, "{check}: body");
    assert_eq!(
        decode::<Order>(check, Format::Json, &body),
        value,
        "{check}: round trip"
    );
    // Dynamic JSON too: what a gateway or `micro call` sends.
    let dynamic = serde_json::json!({"name": "John", "n": [1, 2.5, null, true], "o": {}});
    let body = encode(check, &dynamic, Format::Json);
    assert_eq!(
        decode::<serde_json::Value>(check, Format::Json, &body),
        dynamic,
        "{check}: serde_json::Value"
    );
    // Bodies from elsewhere: whitespace and field order do not matter.
    let text = br#" { "note" : "n", "lines" : [ ], "customer" : "c", "id" : 7 } "#;
    let got: Order = decode(check, Format::Json, text);
    assert_eq!(
        got,
        Order {
            id: 7,
            customer: "c".into(),
            lines: vec![],
            note: Some("n".into()),
        },
        "{check}: foreign JSON"
    );
}

/// An empty JSON body decodes as `{}` (so `curl -d ''` calls an endpoint without fields).
pub fn check_empty_json_body_is_an_empty_object() {
    let check = "check_empty_json_body_is_an_empty_object";
    assert_eq!(
        decode::<serde_json::Value>(check, Format::Json, b""),
        serde_json::json!({}),
        "{check}: empty body"
    );
    let got: Defaults = decode(check, Format::Json, b"");
    assert_eq!(
        got,
        Defaults::default(),
        "{check}: empty body into a struct"
    );
}

/// A prost message round-trips through protobuf as prost's own encoding, and through
/// JSON; the default message is an empty body and back.
pub fn check_protobuf_round_trip() {
    let check = "check_protobuf_round_trip";
    let message = Proto(sample());
    let body = encode(check, &message, Format::Protobuf);
    assert_eq!(
        &body[..],
        prost::Message::encode_to_vec(&message.0).as_slice(),
        "{check}: the body is prost's encoding"
    );
    assert_eq!(
        decode::<Proto<Sample>>(check, Format::Protobuf, &body),
        message,
        "{check}: protobuf round trip"
    );
    let json = encode(check, &message, Format::Json);
    assert_eq!(
        decode::<Proto<Sample>>(check, Format::Json, &json),
        message,
        "{check}: JSON round trip of a protobuf message"
    );
    let empty = encode(check, &Proto(Sample::default()), Format::Protobuf);
    assert!(
        empty.is_empty(),
        "{check}: the default message encodes to nothing: {empty:?}"
    );
    assert_eq!(
        decode::<Proto<Sample>>(check, Format::Protobuf, b""),
        Proto(Sample::default()),
        "{check}: an empty body is the default message"
    );
}

/// Raw bytes pass through untouched in every format: non-UTF-8, empty, JSON-looking.
pub fn check_bytes_pass_through() {
    let check = "check_bytes_pass_through";
    let all: Vec<u8> = (0..=255u8).collect();
    let bodies: [&[u8]; 6] = [
        b"",
        &[0xff, 0xfe, 0x00, 0x80, 0xc3],
        b"{\"looks\": \"like json\"}",
        b"\n\r\t \0",
        "h\u{e9}llo".as_bytes(),
        &all,
    ];
    for body in bodies {
        let raw = Raw(Bytes::copy_from_slice(body));
        for format in [Format::Bytes, Format::Json, Format::Protobuf] {
            let encoded = encode(check, &raw, format);
            assert_eq!(&encoded[..], body, "{check}: encode {body:?} as {format:?}");
            let decoded: Raw = decode(check, format, body);
            assert_eq!(
                &decoded.0[..],
                body,
                "{check}: decode {body:?} as {format:?}"
            );
        }
    }
}

/// Each format's canonical content type resolves to it, in any case and with parameters.
pub fn check_content_types() {
    let check = "check_content_types";
    for (format, canonical) in [
        (Format::Json, JSON),
        (Format::Protobuf, PROTOBUF),
        (Format::Bytes, BYTES),
    ] {
        assert_eq!(format.content_type(), canonical, "{check}: {format:?}");
        let upper = canonical.to_ascii_uppercase();
        let mixed: String = canonical
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        for content_type in [
            canonical.to_string(),
            upper,
            mixed,
            format!("{canonical}; charset=utf-8"),
            format!("{canonical};charset=UTF-8"),
            format!("  {canonical} ; q=0.9; x=\"y\""),
        ] {
            assert_eq!(
                resolve(check, &content_type),
                format,
                "{check}: {content_type:?}"
            );
        }
    }
}

/// go-micro's other names of the formats resolve too, and no content type means JSON.
pub fn check_content_type_aliases() {
    let check = "check_content_type_aliases";
    for (content_type, format) in [
        ("", Format::Json),
        ("text/json", Format::Json),
        ("application/json-rpc", Format::Json),
        ("application/x-protobuf", Format::Protobuf),
        ("application/proto-rpc", Format::Protobuf),
        ("application/grpc+proto", Format::Protobuf),
        (
            "Application/X-Protobuf; proto=greeter.Hello",
            Format::Protobuf,
        ),
        ("application/bytes", Format::Bytes),
    ] {
        assert_eq!(
            resolve(check, content_type),
            format,
            "{check}: {content_type:?}"
        );
    }
}

/// An unknown content type is a 415 naming the type and the supported ones.
pub fn check_unknown_content_type() {
    let check = "check_unknown_content_type";
    for content_type in [
        "text/csv",
        "application/xml",
        "application/jsonx",
        "json",
        "application/json+x",
        "multipart/form-data; boundary=x",
        "\u{e9}/\u{e9}",
    ] {
        let err = match Format::from_content_type(content_type) {
            Ok(format) => panic!("{check}: {content_type:?} resolved to {format:?}"),
            Err(err) => err,
        };
        assert_unsupported(check, content_type, &err);
        for named in [content_type, JSON, PROTOBUF, BYTES] {
            assert!(
                err.detail.contains(named),
                "{check}: {content_type:?}: the detail names {named:?}: {}",
                err.detail
            );
        }
    }
}

/// A type asked for a format it cannot speak is a 415, both ways.
pub fn check_unspeakable_format() {
    let check = "check_unspeakable_format";
    let value = order();
    for format in [Format::Protobuf, Format::Bytes] {
        match value.encode(format) {
            Err(err) => assert_unsupported(check, &format!("encode serde as {format:?}"), &err),
            Ok(body) => panic!("{check}: a serde type encoded as {format:?}: {body:?}"),
        }
        match Order::decode(format, b"{}") {
            Err(err) => assert_unsupported(check, &format!("decode serde as {format:?}"), &err),
            Ok(got) => panic!("{check}: a serde type decoded from {format:?}: {got:?}"),
        }
    }
    let message = Proto(sample());
    match message.encode(Format::Bytes) {
        Err(err) => assert_unsupported(check, "encode protobuf as bytes", &err),
        Ok(body) => panic!("{check}: a protobuf message encoded as raw bytes: {body:?}"),
    }
    match Proto::<Sample>::decode(Format::Bytes, b"") {
        Err(err) => assert_unsupported(check, "decode protobuf from bytes", &err),
        Ok(got) => panic!("{check}: a protobuf message decoded from raw bytes: {got:?}"),
    }
}

/// Bodies that are not what they claim are 400s, never panics.
pub fn check_garbage_is_an_error() {
    let check = "check_garbage_is_an_error";
    let json_garbage: [&[u8]; 9] = [
        b"{nope",
        b"[1, 2",
        b"\"unterminated",
        b"{\"id\": \"seven\", \"customer\": \"c\", \"lines\": []}",
        b"{\"id\": -1, \"customer\": \"c\", \"lines\": []}",
        b"null",
        &[0xff, 0xfe, 0xfd],
        b"{\"id\": 1} trailing",
        b"\0",
    ];
    for body in json_garbage {
        let got = decode_without_panic::<Order>(check, Format::Json, body);
        assert_bad_request(check, &format!("JSON {body:?}"), got);
    }
    for body in [&b"{nope"[..], b"[1,", b"{\"name\": 5}"] {
        let got = decode_without_panic::<Proto<Sample>>(check, Format::Json, body);
        assert_bad_request(check, &format!("JSON message {body:?}"), got);
    }
    let protobuf_garbage: [&[u8]; 6] = [
        // A field key that is all continuation bytes (a varint that never ends).
        &[0xff],
        &[0x80, 0x80, 0x80],
        // Field 1 (string) announcing 100 bytes, giving 2.
        &[0x0a, 100, b'a', b'b'],
        // Field 1 (string) holding bytes that are not UTF-8.
        &[0x0a, 2, 0xff, 0xfe],
        // Wire type 7 does not exist.
        &[0x0f],
        // Field number 0 is invalid.
        &[0x00, 0x01],
    ];
    for body in protobuf_garbage {
        let got = decode_without_panic::<Proto<Sample>>(check, Format::Protobuf, body);
        assert_bad_request(check, &format!("protobuf {body:?}"), got);
    }
    // Pseudo-random bodies (a fixed xorshift sequence): any answer but a panic.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2000 {
        let len = (next() % 64) as usize;
        let body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let _ = decode_without_panic::<Proto<Sample>>(check, Format::Protobuf, &body);
        let _ = decode_without_panic::<Proto<Sample>>(check, Format::Json, &body);
        let _ = decode_without_panic::<Order>(check, Format::Json, &body);
        let _ = decode_without_panic::<serde_json::Value>(check, Format::Json, &body);
    }
}

/// One `#[test]` per case of the codec suite: `codec_suite!()` puts them in a module
/// `conformance`, `codec_suite!(mod name)` in a module `name`.
#[macro_export]
macro_rules! codec_suite {
    () => {
        $crate::codec_suite!(mod conformance);
    };
    (mod $name:ident $(,)?) => {
        mod $name {
            $crate::__codec_cases!(
                check_json_round_trip,
                check_empty_json_body_is_an_empty_object,
                check_protobuf_round_trip,
                check_bytes_pass_through,
                check_content_types,
                check_content_type_aliases,
                check_unknown_content_type,
                check_unspeakable_format,
                check_garbage_is_an_error,
            );
        }
    };
}

/// The tests of [`codec_suite!`](crate::codec_suite).
#[doc(hidden)]
#[macro_export]
macro_rules! __codec_cases {
    ($($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::codec::$case();
            }
        )*
    };
}
