//! Reading whole HTTP bodies under a size limit: what the transport's server, its plain
//! client and the broker's server share (the h2 client's unary path counts its chunks itself,
//! and says so with [`too_large`]).

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, HeaderMap};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Body;
use micro_core::Error;

/// Why a whole body could not be read.
pub(crate) enum BodyError {
    /// It is (or says it is) larger than the limit.
    TooLarge,
    /// Reading it failed (the peer reset or closed the connection); the reason.
    Broken(String),
}

/// Reads the whole `body` of a message with head `head`, at most `max` bytes. A declared
/// `Content-Length` over `max` fails before anything is read.
pub(crate) async fn read_limited<B>(
    head: &HeaderMap,
    body: B,
    max: usize,
) -> Result<Bytes, BodyError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = head
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Err(BodyError::TooLarge);
    }
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => Err(BodyError::TooLarge),
        Err(err) => Err(BodyError::Broken(err.to_string())),
    }
}

/// The body of a request a server received, at most `max` bytes: a 413 error beyond, a 400
/// when it cannot be read. `what` names it in the error ("request", "message"); `id` is the
/// error id.
pub(crate) async fn request_body(
    request: http::Request<hyper::body::Incoming>,
    max: usize,
    id: &str,
    what: &str,
) -> Result<Bytes, Error> {
    let (parts, body) = request.into_parts();
    read_limited(&parts.headers, body, max)
        .await
        .map_err(|err| match err {
            BodyError::TooLarge => too_large(id, what, max),
            BodyError::Broken(reason) => {
                Error::bad_request(id, format!("reading the {what} body: {reason}"))
            }
        })
}

/// The 413 error for a `what` body over `max` bytes.
pub(crate) fn too_large(id: &str, what: &str, max: usize) -> Error {
    Error::too_large(
        id,
        format!(
            "{what} body is larger than the limit of {max} bytes: send less, or raise the \
             receiver's max_body_size"
        ),
    )
}
