//! The client's h2c connection (HTTP/2 prior knowledge), one per address and shared by every
//! stream opened on it, and what the two ways of calling over it share: the request head of a
//! call and the answer frame of a plain POST. `client` runs streams on it; `plain` sends
//! unary calls as HTTP/1.1 POSTs to its address.
//!
//! It speaks through the `h2` crate (hyper's HTTP/2 engine) rather than hyper's client
//! connection, because it must notice a server's GOAWAY before opening a stream: a
//! listener that was dropped must make `open_stream` fail, not hang.

use crate::ID;
use crate::headers::{self, MICRO_ERROR, MICRO_STREAM};
use bytes::Bytes;
use h2::client::SendRequest;
use http::header::HeaderValue;
use http::{Request, Uri};
use micro_core::logger::Logger;
use micro_core::transport::Message;
use micro_core::{Error, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::net::TcpStream;

/// HTTP/2 flow-control windows the client offers (per stream, per connection).
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 8 << 20;

/// Value of the `Micro-Stream` HTTP header the client adds when the first frame has none.
const FRAMES_MARKER: &str = "frames";

/// Streams reset locally that h2 remembers at a time (its default is 50), so that frames the
/// server sent before it saw the reset are ignored. A frame for a stream h2 no longer
/// remembers makes it reset that stream again and count it as a protocol error of the
/// server; past 1024 of those h2 closes the connection (GOAWAY `too_many_internal_resets`).
/// Cancelled calls (a timeout, a dropped stream) reset streams, many at once under load.
const MAX_RESET_STREAMS: usize = 1024;

/// One h2c connection, shared by the `HttpConnection`s dialled to its address.
pub(crate) struct ClientConn {
    pub(crate) remote: String,
    uri: Uri,
    pub(crate) send: SendRequest<Bytes>,
    /// Set when the connection task ended (socket closed, protocol error).
    closed: Arc<AtomicBool>,
    pub(crate) max_body_size: usize,
    pub(crate) plain_unary: bool,
    pub(crate) logger: Logger,
}

impl ClientConn {
    /// Connects to `address` and starts the connection task.
    pub(crate) async fn connect(
        address: &str,
        timeout: Duration,
        max_body_size: usize,
        plain_unary: bool,
        logger: Logger,
    ) -> Result<Arc<ClientConn>> {
        let uri: Uri = format!("http://{address}/").parse().map_err(|e| {
            Error::bad_request(
                ID,
                format!("cannot dial {address:?}: not a host:port ({e})"),
            )
        })?;
        let connect = async {
            let tcp = TcpStream::connect(address)
                .await
                .map_err(|e| crate::io_error(e, &format!("dial {address}")))?;
            let _ = tcp.set_nodelay(true);
            h2::client::Builder::new()
                .initial_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .max_concurrent_reset_streams(MAX_RESET_STREAMS)
                // h2 counts every stream it resets over a frame it did not expect (e.g. a
                // WINDOW_UPDATE for a stream it already forgot) for the whole life of the
                // connection and closes it past 1024 (h2 issue #856): a busy, healthy
                // connection to our own server reaches that in seconds.
                .max_local_error_reset_streams(None)
                .handshake::<_, Bytes>(tcp)
                .await
                .map_err(|e| {
                    Error::unavailable(ID, format!("dial {address}: HTTP/2 handshake: {e}"))
                })
        };
        let (send, connection) = tokio::time::timeout(timeout, connect).await.map_err(|_| {
            Error::timeout(
                ID,
                format!("dial {address}: no connection after {timeout:?}"),
            )
        })??;
        let closed = Arc::new(AtomicBool::new(false));
        let flag = closed.clone();
        let task_logger = logger.clone();
        let remote = address.to_string();
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                task_logger.in_scope(|| {
                    tracing::debug!(remote = %remote, error = %err, "http transport: connection ended")
                });
            }
            flag.store(true, Ordering::Release);
        });
        Ok(Arc::new(ClientConn {
            remote: address.to_string(),
            uri,
            send,
            closed,
            max_body_size,
            plain_unary,
            logger,
        }))
    }

    /// Whether no new stream can be opened: the connection ended or the server sent GOAWAY.
    pub(crate) fn is_closed(&self) -> bool {
        if self.closed.load(Ordering::Acquire) {
            return true;
        }
        // A fresh handle has no pending stream, so this never waits; it fails once the
        // connection saw GOAWAY or an error.
        let mut probe = self.send.clone();
        let mut cx = Context::from_waker(Waker::noop());
        matches!(probe.poll_ready(&mut cx), Poll::Ready(Err(_)))
    }

    /// The error a failed h2 operation stands for; marks the connection closed when it is.
    pub(crate) fn broken(&self, err: &h2::Error) -> Error {
        if err.is_go_away() || err.is_io() {
            self.closed.store(true, Ordering::Release);
        }
        Error::unavailable(ID, format!("connection to {}: {err}", self.remote))
    }

    /// The HTTP request head carrying `first`'s headers.
    pub(crate) fn request(&self, first: &Message, framed: bool) -> Request<()> {
        let mut request = Request::new(());
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = self.uri.clone();
        let skipped = headers::to_http(&first.header, request.headers_mut());
        if !skipped.is_empty() {
            self.logger.in_scope(|| {
                tracing::debug!(
                    ?skipped,
                    "http transport: headers HTTP cannot carry were left out of the request head"
                )
            });
        }
        if framed && !request.headers().contains_key(MICRO_STREAM) {
            request
                .headers_mut()
                .insert(MICRO_STREAM, HeaderValue::from_static(FRAMES_MARKER));
        }
        request
    }
}

/// The answer frame of a plain POST: the response headers and body, with a `Micro-Error`
/// made from the status when the server sent none.
pub(crate) fn answer_message(
    status: http::StatusCode,
    head: &http::HeaderMap,
    payload: Bytes,
) -> Result<Message> {
    let mut header = headers::from_http(head)?;
    if !status.is_success() && !header.keys().any(|k| k.eq_ignore_ascii_case(MICRO_ERROR)) {
        let err = status_error(status, head, &payload);
        header.insert(MICRO_ERROR.to_string(), err.to_json());
    }
    Ok(Message {
        header,
        body: payload,
    })
}

/// The error a non-200 response stands for: its `Micro-Error`, a JSON error body, or the
/// status with the body as detail.
pub(crate) fn status_error(status: http::StatusCode, head: &http::HeaderMap, body: &[u8]) -> Error {
    if let Some(text) = head.get(MICRO_ERROR).and_then(|v| v.to_str().ok()) {
        return Error::parse(text);
    }
    match serde_json::from_slice::<Error>(body) {
        Ok(err) if err.code != 0 => err,
        _ => Error::new(
            ID,
            status.as_u16(),
            String::from_utf8_lossy(body).into_owned(),
        ),
    }
}
