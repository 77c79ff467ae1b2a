//! The listening side: one TCP port serving HTTP/1.1 (keep-alive) and h2c (HTTP/2 with prior
//! knowledge) through hyper-util's `auto` connection builder. Every POST becomes a stream for
//! [`Listener::accept`]; see docs/protocol-http.md for the exact mapping.

use crate::frame::{self, Decoder};
use crate::headers::{self, FRAMES_CONTENT_TYPE, MICRO_ERROR, MICRO_STREAM};
use crate::watch::Timeouts;
use crate::{ID, body};
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use micro_core::logger::Logger;
use micro_core::transport::{
    Drain, Exchange, ExchangeHandler, Listener, Message, STREAM_BUFFER, Stream, StreamIo,
    StreamReceiver, reply_once, serve_streams, stream_pair,
};
use micro_core::{Error, Result};
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Streams received but not yet accepted before new requests wait.
pub const ACCEPT_BACKLOG: usize = 128;

/// HTTP/2 flow-control windows the server offers (per stream, per connection).
const STREAM_WINDOW: u32 = 1 << 20;
const CONNECTION_WINDOW: u32 = 8 << 20;

/// How long the rest of a framed request body is read once the handler is done with it (END
/// frame, RESET, malformed frame, or the handler dropped its receiver), waiting for the
/// client's END_STREAM; see [`drain`].
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// What every connection of one listener shares.
struct Shared {
    streams: mpsc::Sender<Stream>,
    /// Answers plain POSTs directly, once the listener was given one.
    unary: OnceLock<ExchangeHandler>,
    max_body_size: usize,
    /// A request body, or a stream frame, begun must be complete within this (None = never).
    read_timeout: Option<Duration>,
    logger: Logger,
}

/// A listening HTTP transport socket. Draining it (see [`Listener::serve`]) closes the
/// socket and keeps serving the open connections; dropping it shuts them down gracefully:
/// requests already received finish, new ones are refused (HTTP/2 GOAWAY, HTTP/1.1
/// `Connection: close`).
pub struct HttpListener {
    address: String,
    streams: mpsc::Receiver<Stream>,
    shared: Arc<Shared>,
    /// Stops accepting (a child of the shutdown token: shutting down stops accepting too).
    accepting: CancellationToken,
    _shutdown: DropGuard,
}

impl fmt::Debug for HttpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpListener")
            .field("address", &self.address)
            .finish()
    }
}

#[async_trait::async_trait]
impl Listener for HttpListener {
    fn address(&self) -> String {
        self.address.clone()
    }

    /// Plain POSTs are served in the request's own task; each framed stream on a task of
    /// its own. Draining closes the listening socket only.
    async fn serve(mut self: Box<Self>, handler: ExchangeHandler, drain: Drain) {
        let _ = self.shared.unary.set(handler.clone());
        let accepting = self.accepting.clone();
        serve_streams(&mut self.streams, handler, drain, || accepting.cancel()).await;
    }
}

/// `:8080` → `0.0.0.0:8080`, empty → `0.0.0.0:0` (go-micro's address forms).
fn bind_address(address: &str) -> String {
    if address.is_empty() {
        "0.0.0.0:0".to_string()
    } else if address.starts_with(':') {
        format!("0.0.0.0{address}")
    } else {
        address.to_string()
    }
}

/// Binds `address` and serves it until the returned listener is dropped; `timeouts` are the
/// connections' time limits.
pub(crate) async fn listen(
    address: &str,
    max_body_size: usize,
    timeouts: Timeouts,
    logger: Logger,
) -> Result<HttpListener> {
    let bind = bind_address(address);
    let tcp = TcpListener::bind(&bind)
        .await
        .map_err(|e| crate::io_error(e, &format!("listen on {bind}")))?;
    let local = tcp
        .local_addr()
        .map_err(|e| Error::internal(ID, format!("listen on {bind}: {e}")))?;
    let (tx, rx) = mpsc::channel(ACCEPT_BACKLOG);
    let token = CancellationToken::new();
    let accepting = token.child_token();
    let shared = Arc::new(Shared {
        streams: tx,
        unary: OnceLock::new(),
        max_body_size,
        read_timeout: crate::watch::limit(timeouts.read),
        logger,
    });
    let logger = shared.logger.clone();
    let listener_shared = shared.clone();
    tokio::spawn(crate::listen::accept_loop(
        tcp,
        builder(),
        timeouts,
        accepting.clone(),
        token.clone(),
        logger,
        "http transport",
        move |request, peer| {
            let shared = shared.clone();
            async move { handle(request, peer, shared).await }
        },
    ));
    Ok(HttpListener {
        address: local.to_string(),
        streams: rx,
        shared: listener_shared,
        accepting,
        _shutdown: token.drop_guard(),
    })
}

fn builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Head and idle time limits are the accept loop's (hyper's head timer also runs while
    // a keep-alive connection waits for its next request).
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW);
    builder
}

/// The body of every response: a whole body, or frames as the handler sends them.
pub(crate) enum ResponseBody {
    Full(Option<Bytes>),
    Frames(mpsc::Receiver<Bytes>),
}

impl From<Bytes> for ResponseBody {
    fn from(bytes: Bytes) -> Self {
        ResponseBody::Full(Some(bytes))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ResponseBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Frames(rx) => rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(bytes) => bytes.is_none(),
            // The handler's side is over: the last chunk (END or RESET) carries END_STREAM.
            ResponseBody::Frames(rx) => rx.is_closed() && rx.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            ResponseBody::Full(None) => SizeHint::with_exact(0),
            ResponseBody::Frames(_) => SizeHint::default(),
        }
    }
}

async fn handle(
    request: Request<Incoming>,
    peer: SocketAddr,
    shared: Arc<Shared>,
) -> Response<ResponseBody> {
    if request.method() != Method::POST {
        let err = Error::method_not_allowed(
            ID,
            format!(
                "method {} is not allowed: send a POST with the request as body",
                request.method()
            ),
        );
        let mut response = headers::error_response(&err);
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    if request.headers().contains_key(MICRO_STREAM) {
        framed(request, peer, shared).await
    } else {
        unary(request, peer, shared).await
    }
}

/// The 408 error for `what` (a request body, a stream frame) not complete within `limit`.
fn read_timed_out(limit: Duration, what: &str) -> Error {
    Error::timeout(
        ID,
        format!(
            "the {what} was not complete within {limit:?} (transport.read_timeout): send it \
             faster, or raise the server's read_timeout"
        ),
    )
}

fn closed_listener() -> Error {
    Error::unavailable(
        "go.micro.server",
        "the listener is closed: the server is stopping; retry on another node",
    )
    .retryable()
}

/// A plain POST: one request frame in, one response frame out.
async fn unary(
    request: Request<Incoming>,
    peer: SocketAddr,
    shared: Arc<Shared>,
) -> Response<ResponseBody> {
    let header = match headers::from_http(request.headers()) {
        Ok(header) => header,
        Err(err) => return headers::error_response(&err),
    };
    let http1 = request.version() < http::Version::HTTP_2;
    let read = body::request_body(request, shared.max_body_size, ID, "request");
    let body = match shared.read_timeout {
        Some(limit) => tokio::time::timeout(limit, read)
            .await
            .unwrap_or_else(|_| Err(read_timed_out(limit, "request body"))),
        None => read.await,
    };
    let body = match body {
        Ok(body) => body,
        Err(err) if err.code == 408 && http1 => {
            // The rest of the body is not read: the connection cannot carry another request.
            let mut response = headers::error_response(&err);
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
        Err(err) => return headers::error_response(&err),
    };
    if let Some(handler) = shared.unary.get() {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let exchange = Exchange {
            first: Message { header, body },
            stream: Stream {
                sender: reply_once(move |reply| {
                    answer
                        .send(reply)
                        .map_err(|_| Error::transport(ID, "the HTTP request went away"))
                }),
                receiver: StreamReceiver::ended(),
                remote: peer.to_string(),
            },
        };
        // The answer may come after the handler's future (it may hand the stream on).
        handler(exchange).await;
        return match answered.await {
            Ok(reply) => frame_response(reply, &shared.logger),
            Err(_) => headers::error_response(&Error::internal(
                ID,
                "the handler dropped the exchange without answering",
            )),
        };
    }
    let (
        stream,
        StreamIo {
            incoming,
            mut outgoing,
        },
    ) = stream_pair(peer.to_string());
    // The stream's own receiver is alive (inside `stream`), so this cannot fail.
    let _ = incoming.send(Ok(Message { header, body })).await;
    drop(incoming);
    if shared.streams.send(stream).await.is_err() {
        return headers::error_response(&closed_listener());
    }
    match outgoing.recv().await {
        Some(reply) => frame_response(reply, &shared.logger),
        None => headers::error_response(&Error::internal(
            ID,
            "the handler ended the stream without answering",
        )),
    }
}

/// The HTTP response of a unary exchange from the handler's frame.
fn frame_response(reply: Message, logger: &Logger) -> Response<ResponseBody> {
    let error = reply.header(MICRO_ERROR).map(Error::parse);
    let status = headers::status_for(error.as_ref());
    let mut response = Response::new(ResponseBody::Full(None));
    let skipped = headers::to_http(&reply.header, response.headers_mut());
    if !skipped.is_empty() {
        logger.in_scope(|| {
            tracing::debug!(
                ?skipped,
                "http transport: headers HTTP cannot carry were left out"
            )
        });
    }
    let body = match error {
        Some(err) if reply.body.is_empty() => {
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Bytes::from(err.to_json())
        }
        _ => reply.body,
    };
    *response.body_mut() = ResponseBody::Full(Some(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response
}

/// A `Micro-Stream` POST: frames in the request body, frames in the response body.
async fn framed(
    request: Request<Incoming>,
    peer: SocketAddr,
    shared: Arc<Shared>,
) -> Response<ResponseBody> {
    let (stream, StreamIo { incoming, outgoing }) = stream_pair(peer.to_string());
    if shared.streams.send(stream).await.is_err() {
        return headers::error_response(&closed_listener());
    }
    let (body_tx, body_rx) = mpsc::channel(STREAM_BUFFER);
    let abort = CancellationToken::new();
    let max = shared.max_body_size;
    tokio::spawn(read_frames(
        request.into_body(),
        incoming,
        body_tx.downgrade(),
        abort.clone(),
        (max, shared.read_timeout),
        shared.logger.clone(),
    ));
    tokio::spawn(write_frames(
        outgoing,
        body_tx,
        abort,
        max,
        shared.logger.clone(),
    ));
    let mut response = Response::new(ResponseBody::Frames(body_rx));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(FRAMES_CONTENT_TYPE),
    );
    response
}

/// Request body → frames for the handler, then the rest of the body is drained.
async fn read_frames(
    mut body: Incoming,
    incoming: mpsc::Sender<Result<Message>>,
    out: mpsc::WeakSender<Bytes>,
    abort: CancellationToken,
    (max, read_timeout): (usize, Option<Duration>),
    logger: Logger,
) {
    let limits = (max, read_timeout);
    if deliver_frames(&mut body, incoming, &out, &abort, limits, &logger).await {
        drain(body, max, &logger).await;
    }
}

/// Reads what is left of a request body once its frames are no longer wanted, up to the
/// client's END_STREAM, so that the HTTP/2 stream closes instead of being reset: a request
/// body dropped early makes hyper reset the stream when the response is done, and a client
/// frame that arrives afterwards, once h2 forgot the stream, counts as a protocol error of
/// the client (past 1024 h2 closes the whole connection). Bounded: more than `max` bytes or
/// no end within [`DRAIN_TIMEOUT`], and the body is dropped (the stream reset).
async fn drain(mut body: Incoming, max: usize, logger: &Logger) {
    let mut left = max;
    let read = async {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                // Reset by the client or a broken connection: nothing left to read.
                return true;
            };
            if let Some(data) = frame.data_ref() {
                match left.checked_sub(data.len()) {
                    Some(rest) => left = rest,
                    None => return false,
                }
            }
        }
        true
    };
    if !matches!(tokio::time::timeout(DRAIN_TIMEOUT, read).await, Ok(true)) {
        logger.in_scope(|| {
            tracing::debug!(
                "http transport: the request went on after the handler was done; stopped reading it"
            )
        });
    }
}

/// Request body → frames for the handler, until END, RESET, a malformed frame (the handler
/// gets the error, the client a RESET frame, and the exchange ends), the end of the body, or
/// the handler dropping its receiver. The handler's stream ends (`None`) on return. A frame
/// begun (from its first byte, or the end of the frame before it) must be complete within
/// `read_timeout`, else the stream fails with 408 and false is returned: the rest of the
/// body is not worth draining.
async fn deliver_frames(
    body: &mut Incoming,
    incoming: mpsc::Sender<Result<Message>>,
    out: &mpsc::WeakSender<Bytes>,
    abort: &CancellationToken,
    (max, read_timeout): (usize, Option<Duration>),
    logger: &Logger,
) -> bool {
    let mut decoder = Decoder::new(max);
    let fail = |err: Error| fail_stream(err, &incoming, out, abort, logger);
    // When the frame being read began.
    let mut began: Option<tokio::time::Instant> = None;
    loop {
        let mut completed = false;
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) if frame.is_reset() => {
                    let err = frame
                        .message
                        .header(MICRO_ERROR)
                        .map(Error::parse)
                        .unwrap_or_else(|| Error::unavailable(ID, "stream reset by the client"));
                    let _ = incoming.send(Err(err)).await;
                    abort.cancel();
                    return true;
                }
                Ok(Some(frame)) => {
                    completed = true;
                    let end = frame.is_end();
                    if (!end || frame::has_message(&frame))
                        && incoming.send(Ok(frame.message)).await.is_err()
                    {
                        return true;
                    }
                    if end {
                        return true;
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    fail(err).await;
                    return true;
                }
            }
        }
        began = match (decoder.has_partial(), began) {
            (false, _) => None,
            (true, Some(at)) if !completed => Some(at),
            (true, _) => Some(tokio::time::Instant::now()),
        };
        let deadline = began.zip(read_timeout).map(|(at, limit)| at + limit);
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let next = tokio::select! {
            next = body.frame() => next,
            // The handler stopped reading: nothing more to deliver.
            _ = incoming.closed() => return true,
            _ = timer => {
                let limit = read_timeout.unwrap_or_default();
                fail(read_timed_out(limit, "stream frame")).await;
                return false;
            }
        };
        match next {
            Some(Ok(chunk)) => {
                if let Ok(data) = chunk.into_data() {
                    decoder.push(&data);
                }
            }
            Some(Err(err)) => {
                let err = Error::unavailable(ID, format!("reading the request stream: {err}"));
                let _ = incoming.send(Err(err)).await;
                return true;
            }
            // The body ended without an END frame: the end of the body ends the stream.
            None if decoder.has_partial() => {
                fail(Error::bad_request(
                    ID,
                    "malformed frame: the request body ended inside a frame",
                ))
                .await;
                return true;
            }
            None => return true,
        }
    }
}

/// Reports a malformed request stream to the handler and to the client, and ends it.
async fn fail_stream(
    err: Error,
    incoming: &mpsc::Sender<Result<Message>>,
    out: &mpsc::WeakSender<Bytes>,
    abort: &CancellationToken,
    logger: &Logger,
) {
    logger.in_scope(|| tracing::debug!(error = %err, "http transport: bad request stream"));
    let _ = incoming.send(Err(err.clone())).await;
    if let Some(out) = out.upgrade() {
        let _ = out.send(frame::reset(&err)).await;
    }
    abort.cancel();
}

/// Handler frames → response body, then an END frame when the handler drops its sender.
async fn write_frames(
    mut outgoing: mpsc::Receiver<Message>,
    out: mpsc::Sender<Bytes>,
    abort: CancellationToken,
    max: usize,
    logger: Logger,
) {
    loop {
        let next = tokio::select! {
            biased;
            _ = abort.cancelled() => return,
            next = outgoing.recv() => next,
        };
        let Some(message) = next else {
            let _ = out.send(frame::end()).await;
            return;
        };
        match frame::encode(0, message, max) {
            Ok(bytes) => {
                if out.send(bytes).await.is_err() {
                    return;
                }
            }
            Err(err) => {
                logger.in_scope(|| tracing::debug!(error = %err, "http transport: reply not sent"));
                let _ = out.send(frame::reset(&err)).await;
                abort.cancel();
                return;
            }
        }
    }
}
