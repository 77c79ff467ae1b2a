//! Message encoding chosen by content type: JSON, protobuf and raw bytes.
//!
//! Content types are resolved here, with aliases and parameters (`; charset=utf-8`)
//! tolerated; an unknown type is a 415 error naming the supported ones.

use crate::{Error, Result};
use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};

/// `application/json`, the client's default.
pub const JSON: &str = "application/json";
/// `application/protobuf` (prost messages).
pub const PROTOBUF: &str = "application/protobuf";
/// `application/octet-stream`: the body is passed through as it is.
pub const BYTES: &str = "application/octet-stream";

/// The encodings micro speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// JSON through serde.
    Json,
    /// Protocol buffers through prost.
    Protobuf,
    /// Raw bytes, untouched.
    Bytes,
}

impl Format {
    /// The canonical content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => JSON,
            Format::Protobuf => PROTOBUF,
            Format::Bytes => BYTES,
        }
    }

    /// Resolves a `Content-Type` header value; an empty value means JSON.
    pub fn from_content_type(content_type: &str) -> Result<Format> {
        let base = content_type.split(';').next().unwrap_or("").trim();
        // No content type at all means JSON; parameters without a type (`;;;`) are not one.
        let base = if base.is_empty() && !content_type.trim().is_empty() {
            content_type.trim()
        } else {
            base
        };
        let one_of = |names: &[&str]| names.iter().any(|n| base.eq_ignore_ascii_case(n));
        if one_of(&["", "application/json", "text/json", "application/json-rpc"]) {
            return Ok(Format::Json);
        }
        if one_of(&[
            "application/protobuf",
            "application/x-protobuf",
            "application/proto-rpc",
            "application/grpc+proto",
        ]) {
            return Ok(Format::Protobuf);
        }
        if one_of(&["application/octet-stream", "application/bytes"]) {
            return Ok(Format::Bytes);
        }
        Err(Error::unsupported_media_type(
            "go.micro.codec",
            format!(
                "unsupported content type {content_type:?}: use one of {JSON}, {PROTOBUF}, {BYTES}"
            ),
        ))
    }
}

/// Encodes a serde value as JSON.
pub fn encode_json<T: Serialize + ?Sized>(value: &T) -> Result<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| Error::internal("go.micro.codec", format!("cannot encode JSON: {e}")))
}

/// Decodes JSON into a serde value; a bad body is a 400 error saying why.
pub fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    let body = if body.is_empty() {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| Error::bad_request("go.micro.codec", format!("invalid JSON body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_aliases_and_rejects_unknown() {
        assert_eq!(
            Format::from_content_type("application/json; charset=utf-8").ok(),
            Some(Format::Json)
        );
        assert_eq!(
            Format::from_content_type("application/x-protobuf").ok(),
            Some(Format::Protobuf)
        );
        let err = Format::from_content_type("text/csv").unwrap_err();
        assert_eq!(err.code, 415);
        assert!(err.detail.contains("application/json"), "{}", err.detail);
    }

    #[test]
    fn parameters_without_a_type_are_not_json() {
        assert_eq!(Format::from_content_type("").ok(), Some(Format::Json));
        assert_eq!(Format::from_content_type("  ").ok(), Some(Format::Json));
        for odd in [";;;", "; charset=utf-8", " ;"] {
            let err = Format::from_content_type(odd).unwrap_err();
            assert_eq!(err.code, 415, "{odd:?}: {err}");
            assert!(err.detail.contains(odd.trim()), "{odd:?}: {}", err.detail);
        }
    }

    #[test]
    fn bad_json_is_bad_request() {
        let err = decode_json::<serde_json::Value>(b"{nope").unwrap_err();
        assert_eq!(err.code, 400);
    }
}

/// A message type that can be written and read in the codecs' formats.
///
/// Every serde type is a `Payload` speaking JSON; wrap prost messages in [`Proto`] to speak
/// protobuf (and JSON, when they also derive serde); [`Raw`] passes bytes through.
pub trait Payload: Sized + Send + 'static {
    /// Encodes in `format`; a format the type cannot speak is a 415 error.
    fn encode(&self, format: Format) -> Result<Bytes>;
    /// Decodes from `format`; a bad body is a 400 error.
    fn decode(format: Format, body: &[u8]) -> Result<Self>;
    /// Whether the type speaks `format`: a typed call whose client default content type
    /// (`client.content_type`) its messages cannot speak falls back to JSON, so one config
    /// serves protobuf and serde-only services alike. Every format, unless said otherwise.
    fn speaks(format: Format) -> bool {
        let _ = format;
        true
    }
}

fn cannot_speak(format: Format, speaks: &str) -> Error {
    Error::unsupported_media_type(
        "go.micro.codec",
        format!(
            "this endpoint cannot use {}: use {speaks}",
            format.content_type()
        ),
    )
}

impl<T: Serialize + DeserializeOwned + Send + 'static> Payload for T {
    fn encode(&self, format: Format) -> Result<Bytes> {
        match format {
            Format::Json => encode_json(self),
            other => Err(cannot_speak(other, JSON)),
        }
    }

    fn decode(format: Format, body: &[u8]) -> Result<Self> {
        match format {
            Format::Json => decode_json(body),
            other => Err(cannot_speak(other, JSON)),
        }
    }

    fn speaks(format: Format) -> bool {
        format == Format::Json
    }
}

/// A prost message that speaks protobuf, and JSON through serde.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Proto<T>(pub T);

impl<T> Payload for Proto<T>
where
    T: prost::Message + Default + Serialize + DeserializeOwned + Send + 'static,
{
    fn encode(&self, format: Format) -> Result<Bytes> {
        match format {
            Format::Protobuf => Ok(Bytes::from(self.0.encode_to_vec())),
            Format::Json => encode_json(&self.0),
            Format::Bytes => Err(cannot_speak(format, &format!("{PROTOBUF} or {JSON}"))),
        }
    }

    fn decode(format: Format, body: &[u8]) -> Result<Self> {
        match format {
            Format::Protobuf => T::decode(body).map(Proto).map_err(|e| {
                Error::bad_request("go.micro.codec", format!("invalid protobuf body: {e}"))
            }),
            Format::Json => decode_json(body).map(Proto),
            Format::Bytes => Err(cannot_speak(format, &format!("{PROTOBUF} or {JSON}"))),
        }
    }

    fn speaks(format: Format) -> bool {
        format != Format::Bytes
    }
}

/// Bytes passed through untouched, whatever the content type.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Raw(pub Bytes);

impl Payload for Raw {
    fn encode(&self, _: Format) -> Result<Bytes> {
        Ok(self.0.clone())
    }

    fn decode(_: Format, body: &[u8]) -> Result<Self> {
        Ok(Raw(Bytes::copy_from_slice(body)))
    }
}

#[cfg(test)]
mod payload_tests {
    use super::*;

    #[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
    struct Hello {
        #[prost(string, tag = "1")]
        name: String,
    }

    #[test]
    fn serde_types_speak_json_only() {
        let body = Payload::encode(&serde_json::json!({"name": "John"}), Format::Json).unwrap();
        assert_eq!(&body[..], br#"{"name":"John"}"#);
        let err = <serde_json::Value as Payload>::decode(Format::Protobuf, b"").unwrap_err();
        assert_eq!(err.code, 415);
    }

    #[test]
    fn proto_speaks_both() {
        let msg = Proto(Hello {
            name: "John".into(),
        });
        for format in [Format::Protobuf, Format::Json] {
            let body = msg.encode(format).unwrap();
            assert_eq!(Proto::<Hello>::decode(format, &body).unwrap(), msg);
        }
        assert_eq!(
            Proto::<Hello>::decode(Format::Protobuf, &[0xff])
                .unwrap_err()
                .code,
            400
        );
    }
}
