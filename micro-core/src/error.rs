//! The one error type of micro, shaped like go-micro's `errors.Error`.
//!
//! On the wire it is JSON: `{"id":"go.micro.client","code":500,"detail":"...","status":"Internal Server Error"}`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Result with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error with an HTTP-style code, as go-micro sends it between services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Error {
    /// Who raised it, e.g. `go.micro.client` or a service name.
    #[serde(default)]
    pub id: String,
    /// HTTP status code (400, 404, 500, ...).
    #[serde(default)]
    pub code: u16,
    /// What went wrong, for a person.
    #[serde(default)]
    pub detail: String,
    /// The HTTP reason phrase of `code`.
    #[serde(default)]
    pub status: String,
}

/// The reason phrase of an HTTP status code, or `""` for codes micro does not use.
pub fn status_text(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

macro_rules! constructors {
    ($($(#[$doc:meta])* $name:ident => $code:literal,)*) => {
        $(
            $(#[$doc])*
            pub fn $name(id: impl Into<String>, detail: impl Into<String>) -> Self {
                Self::new(id, $code, detail)
            }
        )*
    };
}

impl Error {
    /// An error with the given id, code and detail; `status` is filled from the code.
    pub fn new(id: impl Into<String>, code: u16, detail: impl Into<String>) -> Self {
        Error {
            id: id.into(),
            code,
            detail: detail.into(),
            status: status_text(code).to_string(),
        }
    }

    constructors! {
        /// 400: the request is malformed.
        bad_request => 400,
        /// 401: no or invalid credentials.
        unauthorized => 401,
        /// 403: credentials are valid but not allowed.
        forbidden => 403,
        /// 404: the thing asked for does not exist.
        not_found => 404,
        /// 405: the method is not allowed.
        method_not_allowed => 405,
        /// 408: the deadline passed.
        timeout => 408,
        /// 409: conflicts with the current state.
        conflict => 409,
        /// 413: the payload is larger than allowed.
        too_large => 413,
        /// 415: the content type is not supported.
        unsupported_media_type => 415,
        /// 429: too many requests.
        too_many_requests => 429,
        /// 500: an internal failure.
        internal => 500,
        /// 503: not available now; try again later or elsewhere.
        unavailable => 503,
    }

    /// Parses an error from its wire form. Text that is not a JSON error is kept whole as
    /// `detail` of a 500 error, so nothing the peer said is lost.
    pub fn parse(text: &str) -> Self {
        match serde_json::from_str::<Error>(text) {
            Ok(err) if err.code != 0 || !err.detail.is_empty() || !err.id.is_empty() => err,
            _ => Error {
                id: String::new(),
                code: 500,
                detail: text.to_string(),
                status: status_text(500).to_string(),
            },
        }
    }

    /// The JSON wire form.
    pub fn to_json(&self) -> String {
        // Serialising four plain fields cannot fail; fall back to the detail alone anyway.
        serde_json::to_string(self).unwrap_or_else(|_| self.detail.clone())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        let code = match err.kind() {
            std::io::ErrorKind::TimedOut => 408,
            std::io::ErrorKind::NotFound => 404,
            std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::NotConnected
            | std::io::ErrorKind::BrokenPipe => 503,
            _ => 500,
        };
        Error::new("go.micro.io", code, err.to_string())
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::bad_request("go.micro.codec", format!("invalid JSON: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_like_go_micro() {
        let err = Error::internal("go.micro.client", "service foo: not found");
        assert_eq!(
            err.to_json(),
            r#"{"id":"go.micro.client","code":500,"detail":"service foo: not found","status":"Internal Server Error"}"#
        );
    }

    #[test]
    fn constructors_set_code_and_status() {
        let cases = [
            (Error::bad_request("x", "d"), 400, "Bad Request"),
            (Error::unauthorized("x", "d"), 401, "Unauthorized"),
            (Error::forbidden("x", "d"), 403, "Forbidden"),
            (Error::not_found("x", "d"), 404, "Not Found"),
            (
                Error::method_not_allowed("x", "d"),
                405,
                "Method Not Allowed",
            ),
            (Error::timeout("x", "d"), 408, "Request Timeout"),
            (Error::conflict("x", "d"), 409, "Conflict"),
            (
                Error::unsupported_media_type("x", "d"),
                415,
                "Unsupported Media Type",
            ),
            (Error::too_many_requests("x", "d"), 429, "Too Many Requests"),
            (Error::internal("x", "d"), 500, "Internal Server Error"),
            (Error::unavailable("x", "d"), 503, "Service Unavailable"),
        ];
        for (err, code, status) in cases {
            assert_eq!(err.code, code);
            assert_eq!(err.status, status);
        }
    }

    #[test]
    fn parse_round_trips_and_keeps_plain_text() {
        let err = Error::not_found("greeter", "no such thing");
        assert_eq!(Error::parse(&err.to_json()), err);
        let plain = Error::parse("connection reset by peer");
        assert_eq!(plain.code, 500);
        assert_eq!(plain.detail, "connection reset by peer");
        let not_error_json = Error::parse(r#"{"hello":"world"}"#);
        assert_eq!(not_error_json.detail, r#"{"hello":"world"}"#);
    }
}
