//! The gRPC wire mapping: method paths, content types, `grpc-timeout`, metadata, and the
//! pass-through codec that hands message bytes to micro's own codecs.

use bytes::{Buf, BufMut, Bytes};
use http::HeaderMap;
use micro_core::codec::Format;
use micro_core::{Error, Metadata, Result};
use std::time::Duration;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// `application/grpc`: protobuf messages (what protoc-generated peers send).
pub const GRPC: &str = "application/grpc";
/// `application/grpc+proto`: the same, spelled out.
pub const GRPC_PROTO: &str = "application/grpc+proto";
/// `application/grpc+json`: JSON messages (serde services without a `.proto`).
pub const GRPC_JSON: &str = "application/grpc+json";

/// gRPC's default limit on a received message: 4 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// The method path of endpoint `Trait.Method` in `package`: `/{package}.{Trait}/{Method}`, or
/// `/{Trait}/{Method}` without a package. `None` when the endpoint has no `.`.
pub fn method_path(package: Option<&str>, endpoint: &str) -> Option<String> {
    let (service, method) = endpoint.split_once('.')?;
    if service.is_empty() || method.is_empty() {
        return None;
    }
    Some(match package.filter(|p| !p.is_empty()) {
        Some(package) => format!("/{package}.{service}/{method}"),
        None => format!("/{service}/{method}"),
    })
}

/// The gRPC service name of a path (`/greeter.v1.Greeter/Hello` → `greeter.v1.Greeter`).
pub fn service_of_path(path: &str) -> Option<&str> {
    path.strip_prefix('/')?.split_once('/').map(|(s, _)| s)
}

/// What a request's `content-type` says: `None` when it is not gRPC at all, else the
/// message format, or a 415 for a gRPC subtype micro does not speak.
pub fn format_of(content_type: &str) -> Option<Result<Format>> {
    let base = content_type.split(';').next().unwrap_or("").trim();
    let lower = base.to_ascii_lowercase();
    let subtype = lower.strip_prefix(GRPC)?;
    Some(match subtype {
        "" | "+proto" => Ok(Format::Protobuf),
        "+json" => Ok(Format::Json),
        other => Err(Error::unsupported_media_type(
            "go.micro.server",
            format!(
                "unsupported gRPC content type {content_type:?} (subtype {other:?}): use \
                 {GRPC} (protobuf) or {GRPC_JSON}"
            ),
        )),
    })
}

/// The `content-type` messages of `format` travel with.
pub fn content_type_of(format: Format) -> &'static str {
    match format {
        Format::Json => GRPC_JSON,
        _ => GRPC,
    }
}

/// Parses `grpc-timeout`: at most 8 digits and a unit (`H`, `M`, `S`, `m`, `u`, `n`).
pub fn parse_timeout(value: &str) -> Result<Duration> {
    let bad = || {
        Error::bad_request(
            "go.micro.server",
            format!(
                "invalid grpc-timeout {value:?}: send at most 8 digits and a unit H, M, S, m, u \
                 or n (e.g. 100m), or leave the header out for no deadline"
            ),
        )
    };
    if value.len() < 2 || value.len() > 9 || !value.is_ascii() {
        return Err(bad());
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    Ok(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return Err(bad()),
    })
}

/// Headers that are HTTP/2 or gRPC protocol, never call metadata.
fn reserved(name: &str) -> bool {
    name.starts_with("grpc-")
        || name.starts_with(':')
        || matches!(
            name,
            "content-type"
                | "te"
                | "user-agent"
                | "host"
                | "content-length"
                | "accept-encoding"
                | "connection"
                | "transfer-encoding"
                | "micro-error-bin"
        )
}

/// The call metadata of a request's (or response's) headers: every header but the
/// protocol's own, with text values (`-bin` values stay base64, as sent).
pub fn metadata_from_headers(headers: &HeaderMap) -> Metadata {
    headers
        .iter()
        .filter(|(name, _)| !reserved(name.as_str()))
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect()
}

/// Adds `metadata` to `headers`; keys are lower-cased (HTTP/2 requires it). Entries that
/// cannot be headers (protocol names, invalid characters) are left out.
pub fn insert_metadata(metadata: &Metadata, headers: &mut HeaderMap) {
    for (key, value) in metadata.iter() {
        let key = key.to_ascii_lowercase();
        if reserved(&key) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
}

/// A tonic codec that passes message bytes through: micro's handlers decode them with the
/// request's format (protobuf or JSON).
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

/// The encoder and decoder of [`RawCodec`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCoder;
    type Decoder = RawCoder;

    fn encoder(&mut self) -> RawCoder {
        RawCoder
    }

    fn decoder(&mut self) -> RawCoder {
        RawCoder
    }
}

impl Encoder for RawCoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> std::result::Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> std::result::Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_and_without_a_package() {
        assert_eq!(
            method_path(Some("greeter.v1"), "Greeter.Hello").as_deref(),
            Some("/greeter.v1.Greeter/Hello")
        );
        assert_eq!(
            method_path(None, "Greeter.Hello").as_deref(),
            Some("/Greeter/Hello")
        );
        assert_eq!(
            method_path(Some(""), "Greeter.Hello").as_deref(),
            Some("/Greeter/Hello")
        );
        assert_eq!(method_path(None, "Debug"), None);
        assert_eq!(method_path(None, ".Hello"), None);
        assert_eq!(
            service_of_path("/greeter.v1.Greeter/Hello"),
            Some("greeter.v1.Greeter")
        );
        assert_eq!(service_of_path("nope"), None);
    }

    #[test]
    fn content_types() {
        assert_eq!(
            format_of("application/grpc").unwrap().ok(),
            Some(Format::Protobuf)
        );
        assert_eq!(
            format_of("application/grpc+proto").unwrap().ok(),
            Some(Format::Protobuf)
        );
        assert_eq!(
            format_of("Application/GRPC+json; charset=utf-8")
                .unwrap()
                .ok(),
            Some(Format::Json)
        );
        assert_eq!(
            format_of("application/grpc+cbor")
                .unwrap()
                .unwrap_err()
                .code,
            415
        );
        assert!(format_of("application/json").is_none());
        assert!(format_of("").is_none());
    }

    #[test]
    fn grpc_timeouts() {
        assert_eq!(parse_timeout("100m"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_timeout("2S"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_timeout("1H"), Ok(Duration::from_secs(3600)));
        assert_eq!(
            parse_timeout("99999999n"),
            Ok(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "m", "100", "100x", "123456789S", "-1S", "1.5S", "é1S"] {
            assert_eq!(parse_timeout(bad).unwrap_err().code, 400, "{bad:?}");
        }
    }

    #[test]
    fn metadata_skips_the_protocol_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/grpc".parse().unwrap());
        headers.insert("grpc-timeout", "1S".parse().unwrap());
        headers.insert("te", "trailers".parse().unwrap());
        headers.insert("x-user", "ann".parse().unwrap());
        let metadata = metadata_from_headers(&headers);
        assert_eq!(metadata.len(), 1);
        assert_eq!(metadata.get("X-User"), Some("ann"));
        let mut out = HeaderMap::new();
        let mut more = metadata.clone();
        more.insert("Grpc-Status", "0");
        more.insert("bad key", "v");
        insert_metadata(&more, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out.get("x-user").unwrap(), "ann");
    }
}
