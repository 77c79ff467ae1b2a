//! Mapping between HTTP header maps and frame headers, and the JSON error responses.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use micro_core::Error;
use micro_core::transport::{ByteString, HeaderMap as FrameHeaders, headers};

/// The header that marks a framed (streaming) exchange.
pub const MICRO_STREAM: &str = "Micro-Stream";
/// The header that carries an error's JSON.
pub const MICRO_ERROR: &str = "Micro-Error";
/// Content type of a framed response body.
pub const FRAMES_CONTENT_TYPE: &str = "application/x-micro-frames";

/// Headers that belong to one HTTP hop (or that HTTP computes itself) and never become, or
/// come from, frame headers. Lower case, as `http` spells header names.
const HTTP_ONLY: [&str; 11] = [
    "connection",
    "content-length",
    "expect",
    "host",
    "http2-settings",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether `name` is an HTTP-only header (see [`HTTP_ONLY`]), in any case.
pub fn is_http_only(name: &str) -> bool {
    HTTP_ONLY.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// One of micro's own header names (as spelled in [`headers::RESERVED`]) as an HTTP header
/// name, made at compile time (no parsing, no copy).
fn micro_http_name(name: &str) -> Option<HeaderName> {
    Some(match name {
        headers::SERVICE => const { HeaderName::from_static("micro-service") },
        headers::ENDPOINT => const { HeaderName::from_static("micro-endpoint") },
        headers::ID => const { HeaderName::from_static("micro-id") },
        headers::ERROR => const { HeaderName::from_static("micro-error") },
        headers::STREAM => const { HeaderName::from_static("micro-stream") },
        headers::TOPIC => const { HeaderName::from_static("micro-topic") },
        headers::CONTENT_TYPE => header::CONTENT_TYPE,
        headers::TIMEOUT => const { HeaderName::from_static("timeout") },
        _ => return None,
    })
}

/// Go's canonical MIME header key: `micro-endpoint` → `Micro-Endpoint`, as go-micro sees
/// HTTP headers.
pub fn canonical(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if upper {
            out.push(c.to_ascii_uppercase());
        } else {
            out.push(c.to_ascii_lowercase());
        }
        upper = c == '-';
    }
    out
}

/// Frame headers from an HTTP header map: HTTP-only headers dropped, keys in canonical
/// form, repeated headers joined with `", "`. A value that is not UTF-8 is a 400 error.
pub fn from_http(http_headers: &HeaderMap) -> Result<FrameHeaders, Error> {
    let mut out = FrameHeaders::with_capacity(http_headers.keys_len());
    for name in http_headers.keys() {
        if HTTP_ONLY.contains(&name.as_str()) {
            continue;
        }
        let mut joined: Option<ByteString> = None;
        for part in http_headers.get_all(name) {
            let part = std::str::from_utf8(part.as_bytes()).map_err(|_| {
                Error::bad_request(crate::ID, format!("header {name} is not UTF-8"))
            })?;
            joined = Some(match joined {
                None => micro_core::transport::header_text(part),
                Some(before) => ByteString::from(format!("{before}, {part}")),
            });
        }
        let Some(value) = joined else { continue };
        out.append(frame_name(name), value);
    }
    Ok(out)
}

/// The frame header name for an HTTP header name: micro's own names as they are spelled
/// in frames (static, no copy), others in canonical form.
fn frame_name(name: &HeaderName) -> ByteString {
    match headers::reserved_name(name.as_str()) {
        Some(known) => ByteString::from_static(known),
        None => ByteString::from(canonical(name.as_str())),
    }
}

/// The HTTP header name for a frame header name: micro's own names without parsing or
/// copying, `None` for an HTTP-only header or a name HTTP cannot carry.
fn http_name(key: &str) -> Option<HeaderName> {
    if let Some(known) = headers::reserved_name(key) {
        return micro_http_name(known);
    }
    let name = HeaderName::from_bytes(key.as_bytes()).ok()?;
    // `http` spells every name in lower case, so an exact comparison is enough here.
    (!HTTP_ONLY.contains(&name.as_str())).then_some(name)
}

/// An HTTP header map from frame headers. HTTP-only headers are left out; so are headers
/// HTTP cannot carry (invalid names, values with control characters), which are returned by
/// name. Values are shared with the frame, not copied.
pub fn to_http(header: &FrameHeaders, out: &mut HeaderMap) -> Vec<String> {
    let mut skipped = Vec::new();
    for (key, value) in header.entries() {
        let name = match http_name(key) {
            Some(name) => name,
            // A frame key may be in any case (or not even a valid HTTP name).
            None if is_http_only(key) => continue,
            None => {
                skipped.push(key.to_string());
                continue;
            }
        };
        match HeaderValue::from_maybe_shared(value.as_bytes().clone()) {
            Ok(value) => {
                out.append(name, value);
            }
            Err(_) => skipped.push(key.to_string()),
        }
    }
    skipped
}

/// The HTTP status for a response frame with this parsed `Micro-Error` (if any): 200, the
/// error's code when that is a 4xx/5xx status, else 500.
pub fn status_for(error: Option<&Error>) -> u16 {
    match error {
        None => 200,
        Some(error) if (400..=599).contains(&error.code) => error.code,
        Some(_) => 500,
    }
}

/// An HTTP response for an error: its code as status, `Micro-Error` header and JSON body.
pub fn error_response<B: From<Bytes>>(error: &Error) -> http::Response<B> {
    let json = error.to_json();
    let status = http::StatusCode::from_u16(error.code)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = http::Response::new(B::from(Bytes::from(json.clone())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = HeaderValue::from_str(&json) {
        headers.insert(HeaderName::from_static("micro-error"), value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use micro_core::transport::Message;

    #[test]
    fn canonical_keys_like_go() {
        assert_eq!(canonical("micro-endpoint"), "Micro-Endpoint");
        assert_eq!(canonical("CONTENT-TYPE"), "Content-Type");
        assert_eq!(canonical("x"), "X");
    }

    #[test]
    fn every_micro_header_has_its_http_name() {
        for name in headers::RESERVED {
            let http = micro_http_name(name).unwrap();
            assert_eq!(http.as_str(), name.to_ascii_lowercase());
        }
        assert!(micro_http_name("X-Other").is_none());
    }

    #[test]
    fn maps_both_ways() {
        let mut map = HeaderMap::new();
        map.insert("micro-endpoint", HeaderValue::from_static("Greeter.Hello"));
        map.insert("host", HeaderValue::from_static("example"));
        map.append("x-list", HeaderValue::from_static("a"));
        map.append("x-list", HeaderValue::from_static("b"));
        let header = from_http(&map).unwrap();
        assert_eq!(header.get("Micro-Endpoint").unwrap(), "Greeter.Hello");
        assert_eq!(header.get("X-List").unwrap(), "a, b");
        assert!(!header.contains_key("Host"));
        let mut keys: Vec<_> = header.keys().collect();
        keys.sort();
        assert_eq!(keys, ["Micro-Endpoint", "X-List"], "canonical keys");

        let mut back = HeaderMap::new();
        let mut frame = header.clone();
        frame.insert("Bad Name", "v");
        frame.insert("Content-Length", "9");
        let skipped = to_http(&frame, &mut back);
        assert_eq!(skipped, vec!["Bad Name".to_string()]);
        assert_eq!(back.get("micro-endpoint").unwrap(), "Greeter.Hello");
        assert!(back.get("content-length").is_none());
    }

    #[test]
    fn status_from_error_header() {
        let status_of = |m: &Message| status_for(m.header(MICRO_ERROR).map(Error::parse).as_ref());
        let ok = Message::new("x");
        assert_eq!(status_of(&ok), 200);
        let nf = Message::default().with_header(MICRO_ERROR, Error::not_found("a", "b").to_json());
        assert_eq!(status_of(&nf), 404);
        let odd = Message::default().with_header("micro-error", r#"{"code":42,"detail":"x"}"#);
        assert_eq!(status_of(&odd), 500);
    }
}
