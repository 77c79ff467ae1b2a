//! The dialling side: one h2c (HTTP/2 prior knowledge) connection per address, shared by
//! every stream opened on it. Each stream is one HTTP/2 request; see docs/protocol-http.md.
//!
//! It speaks through the `h2` crate (hyper's HTTP/2 engine) rather than hyper's client
//! connection, because it must notice a server's GOAWAY before opening a stream: a
//! listener that was dropped must make `open_stream` fail, not hang.

use crate::ID;
use crate::frame::{self, Decoder};
use crate::headers::{self, MICRO_ERROR, MICRO_STREAM};
use bytes::Bytes;
use futures::FutureExt;
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};
use http::header::HeaderValue;
use http::{Request, Uri};
use micro_core::logger::Logger;
use micro_core::transport::{Connection, Message, Stream, StreamIo, call_on_stream, stream_pair};
use micro_core::{Error, Result};
use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// HTTP/2 flow-control windows the client offers (per stream, per connection).
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 8 << 20;

/// Value of the `Micro-Stream` HTTP header the client adds when the first frame has none.
const FRAMES_MARKER: &str = "frames";

/// How long the rest of a response body is read after its END (or RESET) frame, waiting for
/// the server's END_STREAM. The server sends it right after END; one that does not is
/// dropped (reset) after this long.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Streams reset locally that h2 remembers at a time (its default is 50), so that frames the
/// server sent before it saw the reset are ignored. A frame for a stream h2 no longer
/// remembers makes it reset that stream again and count it as a protocol error of the
/// server; past 1024 of those h2 closes the connection (GOAWAY `too_many_internal_resets`).
/// Cancelled calls (a timeout, a dropped stream) reset streams, many at once under load.
const MAX_RESET_STREAMS: usize = 1024;

/// One h2c connection, shared by the [`HttpConnection`]s dialled to its address.
pub(crate) struct ClientConn {
    pub(crate) remote: String,
    uri: Uri,
    send: SendRequest<Bytes>,
    /// Set when the connection task ended (socket closed, protocol error).
    closed: Arc<AtomicBool>,
    pub(crate) max_body_size: usize,
    plain_unary: bool,
    logger: Logger,
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

    fn broken(&self, err: &h2::Error) -> Error {
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

/// A client connection of the HTTP transport (cheap: it shares the h2c connection cached per
/// address in the [`crate::HttpTransport`]).
pub struct HttpConnection {
    conn: Arc<ClientConn>,
    plain: crate::plain::PlainClient,
}

impl HttpConnection {
    pub(crate) fn new(conn: Arc<ClientConn>, plain: crate::plain::PlainClient) -> Self {
        HttpConnection { conn, plain }
    }
}

impl fmt::Debug for HttpConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConnection")
            .field("remote", &self.conn.remote)
            .field("closed", &self.conn.is_closed())
            .finish()
    }
}

#[async_trait::async_trait]
impl Connection for HttpConnection {
    async fn open_stream(&self) -> Result<Stream> {
        if self.conn.is_closed() {
            return Err(Error::unavailable(
                ID,
                format!("connection to {} is closed", self.conn.remote),
            ));
        }
        let (stream, io) = stream_pair(self.conn.remote.clone());
        tokio::spawn(drive(self.conn.clone(), io));
        Ok(stream)
    }

    /// A plain POST over a pooled HTTP/1.1 keep-alive connection (see [`crate::plain`]),
    /// unless the frame asks for a stream.
    async fn call(&self, message: Message) -> micro_core::Result<Message> {
        if message.header(MICRO_STREAM).is_some() {
            return call_on_stream(self, message).await;
        }
        crate::plain::call(&self.plain, &self.conn, message).await
    }

    fn remote(&self) -> &str {
        &self.conn.remote
    }

    fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }
}

/// Runs one stream: waits for the user's first frame, then makes the HTTP/2 request.
async fn drive(conn: Arc<ClientConn>, io: StreamIo) {
    let StreamIo {
        incoming,
        mut outgoing,
    } = io;
    let first = tokio::select! {
        first = outgoing.recv() => first,
        _ = incoming.closed() => None,
    };
    // Ended (or dropped) before sending anything: no request at all.
    let Some(first) = first else { return };
    let mut rest = None;
    let result = if conn.plain_unary && first.header(MICRO_STREAM).is_none() {
        drop(outgoing);
        match unary(&conn, first).await {
            Ok(answer) => {
                let _ = incoming.send(Ok(answer)).await;
                Ok(())
            }
            Err(err) => Err(err),
        }
    } else {
        framed(&conn, first, outgoing, &incoming, &mut rest).await
    };
    if let Err(err) = result {
        let _ = incoming.send(Err(err)).await;
    }
    // The user's stream ends here (`None`), whatever is left to read of the HTTP/2 stream.
    drop(incoming);
    if let Some(body) = rest {
        drain(&conn, body).await;
    }
}

/// Reads the rest of a response body whose micro stream is over (its END or RESET frame
/// arrived), up to the server's END_STREAM, so that the HTTP/2 stream closes instead of being
/// reset. h2 resets a stream whose `RecvStream` is dropped before END_STREAM (RST_STREAM
/// CANCEL); under load the END_STREAM then often arrives after h2 forgot the stream, and h2
/// counts it as a protocol error of the server: past 1024 it closes the whole connection and
/// every call on it fails. Bounded: a server that sends more than `max_body_size` bytes after
/// END, or no END_STREAM within [`DRAIN_TIMEOUT`], is dropped (reset).
async fn drain(conn: &ClientConn, mut body: RecvStream) {
    let mut left = conn.max_body_size;
    let read = async {
        while let Some(chunk) = body.data().await {
            let Ok(chunk) = chunk else {
                // Reset by the server or a broken connection: nothing left to read.
                return true;
            };
            let _ = body.flow_control().release_capacity(chunk.len());
            match left.checked_sub(chunk.len()) {
                Some(rest) => left = rest,
                None => return false,
            }
        }
        if !body.is_end_stream() {
            let _ = body.trailers().await;
        }
        true
    };
    if !matches!(tokio::time::timeout(DRAIN_TIMEOUT, read).await, Ok(true)) {
        conn.logger.in_scope(|| {
            tracing::debug!(
                remote = %conn.remote,
                "http transport: no END_STREAM after the END frame; stopped reading the response"
            )
        });
    }
}

/// Opens the HTTP/2 request; `end` when the request has no body.
async fn start(
    conn: &ClientConn,
    request: Request<()>,
    end: bool,
) -> Result<(h2::client::ResponseFuture, SendStream<Bytes>)> {
    let mut send = conn
        .send
        .clone()
        .ready()
        .await
        .map_err(|e| conn.broken(&e))?;
    send.send_request(request, end).map_err(|e| conn.broken(&e))
}

/// Sends `data`, waiting for flow-control capacity, with END_STREAM on its last DATA frame
/// when `end`; `false` when the stream is gone.
async fn send_all(body: &mut SendStream<Bytes>, mut data: Bytes, end: bool) -> bool {
    if data.is_empty() {
        return !end || body.send_data(Bytes::new(), true).is_ok();
    }
    while !data.is_empty() {
        body.reserve_capacity(data.len());
        match poll_fn(|cx| body.poll_capacity(cx)).await {
            Some(Ok(0)) => continue,
            Some(Ok(n)) => {
                let chunk = data.split_to(n.min(data.len()));
                if body.send_data(chunk, end && data.is_empty()).is_err() {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

/// A streaming exchange: every frame, the first included, goes in the request body.
///
/// Once the response's micro stream is over (END or RESET frame, malformed frame), the
/// response body is left in `rest` to be read up to its END_STREAM (see [`drain`]). When the
/// user drops the receiver before that, the frames that already arrived are still looked at:
/// if the END frame is among them the stream is drained as well (micro's client drops its
/// stream after the one reply frame); otherwise the stream is cancelled at once (dropping
/// the body resets the HTTP/2 stream once the request side is done too).
async fn framed(
    conn: &ClientConn,
    first: Message,
    outgoing: mpsc::Receiver<Message>,
    incoming: &mpsc::Sender<Result<Message>>,
    rest: &mut Option<RecvStream>,
) -> Result<()> {
    let request = conn.request(&first, true);
    let first_bytes = frame::encode(0, first, conn.max_body_size)?;
    let (response, body) = start(conn, request, false).await?;
    tokio::spawn(write_frames(
        body,
        first_bytes,
        outgoing,
        conn.max_body_size,
        incoming.downgrade(),
    ));
    let response = tokio::select! {
        response = response => response.map_err(|e| conn.broken(&e))?,
        // The user dropped the receiver: the request still goes out, nobody reads replies.
        _ = incoming.closed() => return Ok(()),
    };
    let (parts, mut body) = response.into_parts();
    if parts.status != http::StatusCode::OK {
        let text = collect(conn, &mut body).await.unwrap_or_default();
        return Err(status_error(parts.status, &parts.headers, &text));
    }
    let mut decoder = Decoder::new(conn.max_body_size);
    // The user dropped the receiver: frames are decoded (to find END) but not delivered.
    let mut abandoned = false;
    loop {
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) if frame.is_reset() => {
                    *rest = Some(body);
                    return Err(frame
                        .message
                        .header(MICRO_ERROR)
                        .map(Error::parse)
                        .unwrap_or_else(|| Error::unavailable(ID, "stream reset by the server")));
                }
                Ok(Some(frame)) => {
                    let end = frame.is_end();
                    if !abandoned
                        && (!end || frame::has_message(&frame))
                        && incoming.send(Ok(frame.message)).await.is_err()
                    {
                        abandoned = true;
                    }
                    if end {
                        *rest = Some(body);
                        return Ok(());
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    *rest = Some(body);
                    return Err(Error::new(ID, 502, err.detail));
                }
            }
        }
        let next = if abandoned {
            // Only what already arrived; nothing more is waited for.
            match body.data().now_or_never() {
                Some(next) => next,
                None => return Ok(()),
            }
        } else {
            tokio::select! {
                next = body.data() => next,
                _ = incoming.closed() => {
                    abandoned = true;
                    continue;
                }
            }
        };
        match next {
            Some(Ok(chunk)) => {
                let _ = body.flow_control().release_capacity(chunk.len());
                decoder.push(&chunk);
            }
            Some(Err(err)) => return Err(conn.broken(&err)),
            None if decoder.has_partial() => {
                return Err(Error::new(
                    ID,
                    502,
                    "malformed frame: the response body ended inside a frame",
                ));
            }
            None => return Ok(()),
        }
    }
}

/// User frames → request body, then END (or RESET if a frame cannot be encoded) in the DATA
/// frame that ends the HTTP/2 stream, so the server never sees one without the other.
async fn write_frames(
    mut body: SendStream<Bytes>,
    first: Bytes,
    mut outgoing: mpsc::Receiver<Message>,
    max: usize,
    user: mpsc::WeakSender<Result<Message>>,
) {
    if !send_all(&mut body, first, false).await {
        return;
    }
    loop {
        let next = tokio::select! {
            next = outgoing.recv() => next,
            // The server reset the stream: stop, so the user's sends fail.
            _ = poll_fn(|cx| body.poll_reset(cx)) => return,
        };
        let Some(message) = next else {
            send_all(&mut body, frame::end(), true).await;
            return;
        };
        match frame::encode(0, message, max) {
            Ok(bytes) => {
                if !send_all(&mut body, bytes, false).await {
                    return;
                }
            }
            Err(err) => {
                send_all(&mut body, frame::reset(&err), true).await;
                if let Some(user) = user.upgrade() {
                    let _ = user.send(Err(err)).await;
                }
                return;
            }
        }
    }
}

/// A plain POST: the first frame is the whole request; the response is one frame.
async fn unary(conn: &ClientConn, first: Message) -> Result<Message> {
    let empty = first.body.is_empty();
    let (response, mut body) = start(conn, conn.request(&first, false), empty).await?;
    if !empty && !send_all(&mut body, first.body, true).await {
        return Err(Error::unavailable(
            ID,
            format!("connection to {}: request not sent", conn.remote),
        ));
    }
    let response = response.await.map_err(|e| conn.broken(&e))?;
    let (parts, mut body) = response.into_parts();
    let payload = collect(conn, &mut body).await?;
    answer_message(parts.status, &parts.headers, payload)
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

/// A whole response body, up to the size limit.
async fn collect(conn: &ClientConn, body: &mut RecvStream) -> Result<Bytes> {
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| conn.broken(&e))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if out.len() + chunk.len() > conn.max_body_size {
            return Err(crate::body::too_large(ID, "response", conn.max_body_size));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

/// The error a non-200 response stands for: its `Micro-Error`, a JSON error body, or the
/// status with the body as detail.
fn status_error(status: http::StatusCode, head: &http::HeaderMap, body: &[u8]) -> Error {
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
