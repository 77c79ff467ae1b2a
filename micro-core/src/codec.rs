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
        let base = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match base.as_str() {
            "" | "application/json" | "text/json" | "application/json-rpc" => Ok(Format::Json),
            "application/protobuf" | "application/x-protobuf" | "application/proto-rpc"
            | "application/grpc+proto" => Ok(Format::Protobuf),
            "application/octet-stream" | "application/bytes" => Ok(Format::Bytes),
            _ => Err(Error::unsupported_media_type(
                "go.micro.codec",
                format!(
                    "unsupported content type {content_type:?}: use one of {JSON}, {PROTOBUF}, {BYTES}"
                ),
            )),
        }
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
    let body = if body.is_empty() { b"{}".as_slice() } else { body };
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
    fn bad_json_is_bad_request() {
        let err = decode_json::<serde_json::Value>(b"{nope").unwrap_err();
        assert_eq!(err.code, 400);
    }
}
