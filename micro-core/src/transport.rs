//! Connections between services: a connection carries many bidirectional streams of frames,
//! each frame a header map plus body bytes.
//!
//! A stream is a pair of channel halves, so every transport (in-process, TCP, HTTP) offers
//! the same shape: `send` frames, `recv` frames, drop the sender to end the stream.

use crate::{Error, Result};
use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

mod exchange;
pub mod frame;
mod header_map;

pub use bytestring::ByteString;
pub use exchange::{
    Accepting, Drain, Exchange, ExchangeFuture, ExchangeHandler, Serving, accept_streams,
    reply_once, serve_stream, serve_streams,
};
pub use header_map::{HeaderMap, IntoHeaderText, header_text};

/// Frames buffered per stream direction before `send` waits.
pub const STREAM_BUFFER: usize = 64;

/// One frame: headers and a body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Header map (`Micro-Endpoint`, `Content-Type`, ...). Transports keep keys as given;
    /// lookups ignore case.
    pub header: HeaderMap,
    /// Encoded body.
    pub body: Bytes,
}

impl Message {
    /// A frame with the given body and no headers.
    pub fn new(body: impl Into<Bytes>) -> Self {
        Message {
            header: HeaderMap::new(),
            body: body.into(),
        }
    }

    /// The same frame with one more header.
    pub fn with_header(mut self, key: impl IntoHeaderText, value: impl IntoHeaderText) -> Self {
        self.header.insert(key, value);
        self
    }

    /// A header's value, whatever the case of its key.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.header.get(key)
    }
}

/// The sending half of a stream. Dropping it (or calling [`StreamSender::close`]) ends the
/// stream for the peer, which then sees `None` from `recv`.
#[derive(Clone)]
pub struct StreamSender {
    inner: SenderInner,
}

#[derive(Clone)]
enum SenderInner {
    Channel(mpsc::Sender<Message>),
    Sink(Arc<dyn FrameSink>),
}

impl std::fmt::Debug for StreamSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSender")
            .field("closed", &self.is_closed())
            .finish()
    }
}

fn peer_closed() -> Error {
    Error::transport(
        "go.micro.transport",
        "stream closed by peer: the other side ended the stream or went away; \
         open a new stream to retry",
    )
}

impl StreamSender {
    /// A sender that hands frames to a transport's own sink (no channel in between).
    pub fn from_sink(sink: Arc<dyn FrameSink>) -> Self {
        StreamSender {
            inner: SenderInner::Sink(sink),
        }
    }

    /// Sends a frame; fails with 503 when the peer or the connection is gone.
    pub async fn send(&self, message: Message) -> Result<()> {
        match &self.inner {
            SenderInner::Channel(tx) => tx.send(message).await.map_err(|_| peer_closed()),
            SenderInner::Sink(sink) => sink.send(message).await,
        }
    }

    /// Ends this direction of the stream.
    pub fn close(self) {}

    /// Whether the peer stopped receiving.
    pub fn is_closed(&self) -> bool {
        match &self.inner {
            SenderInner::Channel(tx) => tx.is_closed(),
            SenderInner::Sink(sink) => sink.is_closed(),
        }
    }

    /// Completes when the peer stops receiving (it ended the stream or went away).
    pub async fn closed(&self) {
        match &self.inner {
            SenderInner::Channel(tx) => tx.closed().await,
            SenderInner::Sink(sink) => sink.closed().await,
        }
    }
}

/// The receiving half of a stream.
pub struct StreamReceiver {
    /// A frame to give out before the others (the opening frame put back).
    first: Option<Message>,
    inner: ReceiverInner,
}

enum ReceiverInner {
    Channel(mpsc::Receiver<Result<Message>>),
    Source(Box<dyn FrameSource>),
    Ended,
}

impl std::fmt::Debug for StreamReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamReceiver").finish_non_exhaustive()
    }
}

impl StreamReceiver {
    /// A receiver that reads frames from a transport's own source.
    pub fn from_source(source: Box<dyn FrameSource>) -> Self {
        StreamReceiver {
            first: None,
            inner: ReceiverInner::Source(source),
        }
    }

    /// A receiver whose peer already ended the stream (the request side of a unary
    /// exchange).
    pub fn ended() -> Self {
        StreamReceiver {
            first: None,
            inner: ReceiverInner::Ended,
        }
    }

    /// The same receiver, giving out `first` before anything else.
    pub fn with_first(mut self, first: Message) -> Self {
        self.first = Some(first);
        self
    }

    /// The next frame; `None` at the end of the stream; `Some(Err)` when the connection
    /// failed.
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        if let Some(first) = self.first.take() {
            return Some(Ok(first));
        }
        match &mut self.inner {
            ReceiverInner::Channel(rx) => rx.recv().await,
            ReceiverInner::Source(source) => source.recv().await,
            ReceiverInner::Ended => None,
        }
    }
}

/// Where a transport that does not use [`stream_pair`]'s channels delivers a stream's
/// frames (e.g. straight onto a QUIC stream or a gRPC response).
pub trait FrameSink: Send + Sync + 'static {
    /// Sends a frame, waiting for room; fails when the peer is gone.
    fn send(&self, message: Message) -> BoxFuture<'_, Result<()>>;
    /// Whether the peer stopped receiving.
    fn is_closed(&self) -> bool;
    /// Completes when the peer stops receiving.
    fn closed(&self) -> BoxFuture<'_, ()>;
}

/// Where a transport that does not use [`stream_pair`]'s channels reads a stream's frames.
pub trait FrameSource: Send + 'static {
    /// The next frame; `None` at the end; `Some(Err)` when the connection failed.
    fn recv(&mut self) -> BoxFuture<'_, Option<Result<Message>>>;
}

/// A bidirectional stream of frames.
#[derive(Debug)]
pub struct Stream {
    /// Where to send frames to the peer.
    pub sender: StreamSender,
    /// Where frames from the peer arrive.
    pub receiver: StreamReceiver,
    /// The peer's address, as the transport knows it.
    pub remote: String,
}

/// The transport's side of a stream: frames to deliver to the user, and frames the user sent.
#[derive(Debug)]
pub struct StreamIo {
    /// Deliver frames (or a connection error) to the user's receiver.
    pub incoming: mpsc::Sender<Result<Message>>,
    /// Frames the user sent; `None` when the user ended the stream.
    pub outgoing: mpsc::Receiver<Message>,
}

/// Makes a stream for the user and the transport's handles to drive it.
pub fn stream_pair(remote: impl Into<String>) -> (Stream, StreamIo) {
    let (out_tx, out_rx) = mpsc::channel(STREAM_BUFFER);
    let (in_tx, in_rx) = mpsc::channel(STREAM_BUFFER);
    (
        Stream {
            sender: StreamSender {
                inner: SenderInner::Channel(out_tx),
            },
            receiver: StreamReceiver {
                first: None,
                inner: ReceiverInner::Channel(in_rx),
            },
            remote: remote.into(),
        },
        StreamIo {
            incoming: in_tx,
            outgoing: out_rx,
        },
    )
}

option_struct! {
    /// Options of [`Transport::dial`].
    #[derive(Debug, Clone, Default)]
    pub struct DialOptions {
        /// Give up connecting after this long; `None` = the caller's deadline governs.
        pub timeout: Option<Duration>,
    }
}

/// A client's connection to one address; it opens streams.
#[async_trait]
pub trait Connection: Send + Sync {
    /// Opens a new stream on this connection.
    async fn open_stream(&self) -> Result<Stream>;

    /// A unary exchange: sends one request frame and returns the one answer frame. The
    /// default opens a stream, sends the frame, ends its direction and reads the first
    /// frame back; transports override it with a cheaper path (`tcp`: one UNARY frame
    /// each way, no stream state).
    ///
    /// A failure that certainly happened before the request left is
    /// [`retryable`](Error::retryable); any other may have reached the peer.
    async fn call(&self, message: Message) -> Result<Message> {
        call_on_stream(self, message).await
    }

    /// The address dialled.
    fn remote(&self) -> &str;
    /// Whether the connection is known to be broken (it should be dropped from pools).
    fn is_closed(&self) -> bool;
}

/// A unary exchange over a stream of `connection`: open, send the frame, end this direction,
/// read the first frame back. The default of [`Connection::call`].
pub async fn call_on_stream<C: Connection + ?Sized>(
    connection: &C,
    message: Message,
) -> Result<Message> {
    let Stream {
        sender,
        mut receiver,
        ..
    } = connection.open_stream().await.map_err(Error::retryable)?;
    sender.send(message).await.map_err(Error::retryable)?;
    drop(sender);
    match receiver.recv().await {
        Some(Ok(answer)) => Ok(answer),
        Some(Err(error)) => Err(error.with_retryable(false)),
        None => Err(Error::transport(
            "go.micro.transport",
            format!("{} closed the stream before answering", connection.remote()),
        )),
    }
}

/// A server's listening socket. Every exchange a peer opens (a unary request or a stream)
/// reaches the one [`ExchangeHandler`] given to [`Listener::serve`]: that is the only way
/// requests come in. How a transport carries a unary exchange (one frame each way on tcp, a
/// plain POST on http) is its own optimisation behind the same [`Exchange`].
///
/// Stopping takes two steps, alike on every transport: [`Drain::start`] stops accepting
/// connections while the open ones keep bringing exchanges to the handler; dropping the
/// future of [`Listener::serve`] then closes every connection (open streams fail with 503,
/// after what was already sent to the peer has been written).
#[async_trait]
pub trait Listener: Send {
    /// The bound address (with the real port when `:0` was asked for).
    fn address(&self) -> String;
    /// Hands every exchange peers open to `handler`, until the listener is closed; once
    /// `drain` starts, accepts no new connection but keeps serving the open ones. Dropping
    /// the returned future closes the listener and its connections.
    async fn serve(self: Box<Self>, handler: ExchangeHandler, drain: Drain);
}

/// A way of carrying frames between processes (or within one).
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Plugin name, e.g. `tcp`.
    fn name(&self) -> &str;
    /// Connects to `address`.
    async fn dial(&self, address: &str, options: DialOptions) -> Result<Box<dyn Connection>>;
    /// Listens on `address` (`127.0.0.1:0` picks a free port).
    async fn listen(&self, address: &str) -> Result<Box<dyn Listener>>;
}

/// The header names of micro's RPC protocol (go-micro's set). Compare case-insensitively.
pub mod headers {
    /// Service name of a request.
    pub const SERVICE: &str = "Micro-Service";
    /// `Trait.Method` of a request.
    pub const ENDPOINT: &str = "Micro-Endpoint";
    /// Request id, echoed in the response.
    pub const ID: &str = "Micro-Id";
    /// JSON of a `micro::Error`: the frame carries an error instead of a message.
    pub const ERROR: &str = "Micro-Error";
    /// Present on the opening frame of a stream.
    pub const STREAM: &str = "Micro-Stream";
    /// Topic of a published message.
    pub const TOPIC: &str = "Micro-Topic";
    /// Encoding of the body.
    pub const CONTENT_TYPE: &str = "Content-Type";
    /// Time the caller waits, in nanoseconds (go-micro) or as `100ms`.
    pub const TIMEOUT: &str = "Timeout";
    /// Every header micro uses itself; the others are call metadata.
    pub const RESERVED: [&str; 8] = [
        SERVICE,
        ENDPOINT,
        ID,
        ERROR,
        STREAM,
        TOPIC,
        CONTENT_TYPE,
        TIMEOUT,
    ];

    /// Micro's own spelling of `key` when it is one of micro's headers (in any case).
    pub fn reserved_name(key: &str) -> Option<&'static str> {
        RESERVED
            .iter()
            .find(|r| r.eq_ignore_ascii_case(key))
            .copied()
    }

    /// Whether `key` is one of micro's own headers.
    pub fn is_reserved(key: &str) -> bool {
        reserved_name(key).is_some()
    }
}
