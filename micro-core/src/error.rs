//! The one error type of micro, shaped like go-micro's `errors.Error`.
//!
//! On the wire it is JSON: `{"id":"go.micro.client","code":500,"detail":"...","status":"Internal Server Error"}`,
//! plus `"retryable":true` when the caller may safely try again (readers ignore unknown
//! fields, so go-micro peers read it unchanged). In Rust it also has an [`ErrorKind`], a
//! [`source`](std::error::Error::source) chain and a human [`Display`](fmt::Display); the
//! JSON form is [`Error::to_json`].

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Result with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A cause kept under an [`Error`]; shared so errors stay cheap to clone.
pub type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// What kind of failure an [`Error`] is: what callers match on instead of ids or text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is malformed (400).
    BadRequest,
    /// No or invalid credentials (401).
    Unauthorized,
    /// Credentials are valid but not allowed (403).
    Forbidden,
    /// The thing asked for does not exist (404).
    NotFound,
    /// The method is not allowed (405).
    MethodNotAllowed,
    /// A deadline passed (408, 504).
    Timeout,
    /// Conflicts with the current state (409).
    Conflict,
    /// The payload is larger than allowed (413).
    TooLarge,
    /// The content type is not supported (415).
    UnsupportedMediaType,
    /// Too many requests (429).
    TooManyRequests,
    /// A body could not be encoded or decoded (400 on the wire).
    Codec,
    /// Configuration is wrong (400 on the wire).
    Config,
    /// Connecting or talking to a peer failed (503 on the wire).
    Transport,
    /// Not available now: try again later or elsewhere (502, 503).
    Unavailable,
    /// Not implemented (501).
    NotImplemented,
    /// An internal failure (500, and any code micro does not know).
    Internal,
}

impl ErrorKind {
    /// The kind a wire error of `code` has.
    pub fn from_code(code: u16) -> Self {
        match code {
            400 => ErrorKind::BadRequest,
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            405 => ErrorKind::MethodNotAllowed,
            408 | 504 => ErrorKind::Timeout,
            409 => ErrorKind::Conflict,
            413 => ErrorKind::TooLarge,
            415 => ErrorKind::UnsupportedMediaType,
            429 => ErrorKind::TooManyRequests,
            501 => ErrorKind::NotImplemented,
            502 | 503 => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }

    /// The HTTP-style code errors of this kind carry on the wire.
    pub fn code(self) -> u16 {
        match self {
            ErrorKind::BadRequest | ErrorKind::Codec | ErrorKind::Config => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::Timeout => 408,
            ErrorKind::Conflict => 409,
            ErrorKind::TooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::TooManyRequests => 429,
            ErrorKind::Transport | ErrorKind::Unavailable => 503,
            ErrorKind::NotImplemented => 501,
            ErrorKind::Internal => 500,
        }
    }
}

/// An error with an HTTP-style code, as go-micro sends it between services.
///
/// Build one with a constructor (`Error::not_found(id, detail)`, [`Error::new`],
/// [`Error::transport`]) and refine it with [`Error::with_source`],
/// [`Error::with_kind`] and [`Error::retryable`].
#[derive(Clone, Serialize, Deserialize, Default)]
#[non_exhaustive]
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
    /// Whether the call may be tried again, on this node or another, without risk of running
    /// twice (the request certainly did not reach a handler, or the server refused it
    /// before dispatch).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retryable: bool,
    /// Set when it differs from what `code` implies (e.g. [`ErrorKind::Transport`]).
    #[serde(skip)]
    kind: Option<ErrorKind>,
    #[serde(skip)]
    source: Option<Source>,
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
    /// An error with the given id, code and detail; `status` is filled from the code and
    /// the kind follows from the code.
    pub fn new(id: impl Into<String>, code: u16, detail: impl Into<String>) -> Self {
        Error {
            id: id.into(),
            code,
            detail: detail.into(),
            status: status_text(code).to_string(),
            ..Error::default()
        }
    }

    /// An error of `kind`, with the code that kind has on the wire.
    pub fn of_kind(kind: ErrorKind, id: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::new(id, kind.code(), detail).with_kind(kind)
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
        /// 501: not implemented.
        not_implemented => 501,
        /// 503: not available now; try again later or elsewhere.
        unavailable => 503,
    }

    /// 503 of kind [`ErrorKind::Transport`]: connecting to or talking with a peer failed.
    pub fn transport(id: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::of_kind(ErrorKind::Transport, id, detail)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind.unwrap_or_else(|| ErrorKind::from_code(self.code))
    }

    /// The same error, of `kind` (the code stays).
    pub fn with_kind(mut self, kind: ErrorKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// The same error, caused by `source` (see [`std::error::Error::source`]).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The same error, marked as safe to try again ([`Error::retryable`] field).
    pub fn retryable(mut self) -> Self {
        self.retryable = true;
        self
    }

    /// The same error with [`Error::retryable`] set to `retryable`.
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// The nearest cause of type `E` in this error's source chain.
    pub fn find_source<E: std::error::Error + 'static>(&self) -> Option<&E> {
        let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(err) = next {
            if let Some(found) = err.downcast_ref::<E>() {
                return Some(found);
            }
            next = err.source();
        }
        None
    }

    /// Parses an error from its wire form. Text that is not a JSON error is kept whole as
    /// `detail` of a 500 error, so nothing the peer said is lost.
    pub fn parse(text: &str) -> Self {
        match serde_json::from_str::<Error>(text) {
            Ok(err) if err.code != 0 || !err.detail.is_empty() || !err.id.is_empty() => err,
            _ => Error::new("", 500, text),
        }
    }

    /// The JSON wire form.
    pub fn to_json(&self) -> String {
        // Serialising plain fields cannot fail; fall back to the detail alone anyway.
        serde_json::to_string(self).unwrap_or_else(|_| self.detail.clone())
    }
}

/// For a person: `service foo: not found (404 Not Found, from go.micro.client)`.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let detail = if self.detail.is_empty() {
            "error"
        } else {
            &self.detail
        };
        write!(f, "{detail} ({}", self.code)?;
        if !self.status.is_empty() {
            write!(f, " {}", self.status)?;
        }
        if !self.id.is_empty() {
            write!(f, ", from {}", self.id)?;
        }
        f.write_str(")")
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Error");
        s.field("id", &self.id)
            .field("code", &self.code)
            .field("detail", &self.detail)
            .field("kind", &self.kind());
        if self.retryable {
            s.field("retryable", &true);
        }
        if let Some(source) = &self.source {
            s.field("source", &format_args!("{source}"));
        }
        s.finish()
    }
}

/// Equal when the wire fields, the kind and the retry flag are; sources are not compared.
impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.code == other.code
            && self.detail == other.detail
            && self.status == other.status
            && self.retryable == other.retryable
            && self.kind() == other.kind()
    }
}

impl Eq for Error {}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        use std::io::ErrorKind as Io;
        let kind = match err.kind() {
            Io::TimedOut => ErrorKind::Timeout,
            Io::NotFound => ErrorKind::NotFound,
            Io::ConnectionRefused
            | Io::ConnectionReset
            | Io::ConnectionAborted
            | Io::NotConnected
            | Io::BrokenPipe
            | Io::UnexpectedEof => ErrorKind::Transport,
            _ => ErrorKind::Internal,
        };
        Error::of_kind(kind, "go.micro.io", err.to_string()).with_source(err)
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::of_kind(
            ErrorKind::Codec,
            "go.micro.codec",
            format!("invalid JSON: {err}"),
        )
        .with_source(err)
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
        let again = err.clone().retryable();
        assert_eq!(
            again.to_json(),
            r#"{"id":"go.micro.client","code":500,"detail":"service foo: not found","status":"Internal Server Error","retryable":true}"#
        );
        assert_eq!(Error::parse(&again.to_json()), again);
    }

    #[test]
    fn constructors_set_code_status_and_kind() {
        let cases = [
            (
                Error::bad_request("x", "d"),
                400,
                "Bad Request",
                ErrorKind::BadRequest,
            ),
            (
                Error::unauthorized("x", "d"),
                401,
                "Unauthorized",
                ErrorKind::Unauthorized,
            ),
            (
                Error::forbidden("x", "d"),
                403,
                "Forbidden",
                ErrorKind::Forbidden,
            ),
            (
                Error::not_found("x", "d"),
                404,
                "Not Found",
                ErrorKind::NotFound,
            ),
            (
                Error::method_not_allowed("x", "d"),
                405,
                "Method Not Allowed",
                ErrorKind::MethodNotAllowed,
            ),
            (
                Error::timeout("x", "d"),
                408,
                "Request Timeout",
                ErrorKind::Timeout,
            ),
            (
                Error::conflict("x", "d"),
                409,
                "Conflict",
                ErrorKind::Conflict,
            ),
            (
                Error::unsupported_media_type("x", "d"),
                415,
                "Unsupported Media Type",
                ErrorKind::UnsupportedMediaType,
            ),
            (
                Error::too_many_requests("x", "d"),
                429,
                "Too Many Requests",
                ErrorKind::TooManyRequests,
            ),
            (
                Error::internal("x", "d"),
                500,
                "Internal Server Error",
                ErrorKind::Internal,
            ),
            (
                Error::unavailable("x", "d"),
                503,
                "Service Unavailable",
                ErrorKind::Unavailable,
            ),
            (
                Error::transport("x", "d"),
                503,
                "Service Unavailable",
                ErrorKind::Transport,
            ),
        ];
        for (err, code, status, kind) in cases {
            assert_eq!(err.code, code);
            assert_eq!(err.status, status);
            assert_eq!(err.kind(), kind, "{err:?}");
            assert!(!err.retryable);
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
        // A kind that is not implied by the code does not travel: the peer sees the code's.
        let sent = Error::transport("go.micro.transport", "refused");
        assert_eq!(Error::parse(&sent.to_json()).kind(), ErrorKind::Unavailable);
    }

    #[test]
    fn display_is_for_people_and_sources_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = Error::from(io);
        assert_eq!(err.kind(), ErrorKind::Transport);
        assert_eq!(
            err.to_string(),
            "refused (503 Service Unavailable, from go.micro.io)"
        );
        let source = std::error::Error::source(&err).expect("the io error is the source");
        assert_eq!(source.to_string(), "refused");
        assert!(err.find_source::<std::io::Error>().is_some());
        let wrapped = Error::internal("svc", "saving failed").with_source(err.clone());
        assert_eq!(
            wrapped.find_source::<std::io::Error>().map(|e| e.kind()),
            Some(std::io::ErrorKind::ConnectionRefused),
            "found through two links"
        );
        assert!(!format!("{wrapped:?}").is_empty());
    }
}
