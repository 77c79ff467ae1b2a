//! Connections between services: a connection carries many bidirectional streams of frames,
//! each frame a header map plus body bytes.
//!
//! A stream is a pair of channel halves, so every transport (in-process, TCP, HTTP) offers
//! the same shape: `send` frames, `recv` frames, drop the sender to end the stream.

use crate::{Error, Result};
use async_trait::async_trait;
use bytes::Bytes;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub mod frame;
mod header_map;

pub use bytestring::ByteString;
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
#[derive(Debug, Clone)]
pub struct StreamSender {
    inner: mpsc::Sender<Message>,
}

impl StreamSender {
    /// Sends a frame; fails with 503 when the peer or the connection is gone.
    pub async fn send(&self, message: Message) -> Result<()> {
        self.inner.send(message).await.map_err(|_| {
            Error::transport(
                "go.micro.transport",
                "stream closed by peer: the other side ended the stream or went away; \
                     open a new stream to retry",
            )
        })
    }

    /// Ends this direction of the stream.
    pub fn close(self) {}

    /// Whether the peer stopped receiving.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Completes when the peer stops receiving (it ended the stream or went away).
    pub async fn closed(&self) {
        self.inner.closed().await
    }
}

/// The receiving half of a stream.
#[derive(Debug)]
pub struct StreamReceiver {
    inner: mpsc::Receiver<Result<Message>>,
}

impl StreamReceiver {
    /// The next frame; `None` at the end of the stream; `Some(Err)` when the connection
    /// failed.
    pub async fn recv(&mut self) -> Option<Result<Message>> {
        self.inner.recv().await
    }
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
            sender: StreamSender { inner: out_tx },
            receiver: StreamReceiver { inner: in_rx },
            remote: remote.into(),
        },
        StreamIo {
            incoming: in_tx,
            outgoing: out_rx,
        },
    )
}

/// Options of [`Transport::dial`].
#[derive(Debug, Clone, Default)]
pub struct DialOptions {
    /// Give up connecting after this long; `None` = the caller's deadline governs.
    pub timeout: Option<Duration>,
}

/// The future of a [`UnaryHandler`]: the answer frame.
pub type UnaryFuture = Pin<Box<dyn Future<Output = Message> + Send>>;

/// Answers a whole unary request (one frame in, one frame out), see
/// [`Listener::serve_unary`].
pub type UnaryHandler = Arc<dyn Fn(Message) -> UnaryFuture + Send + Sync>;

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

/// A server's listening socket: yields the streams peers open.
#[async_trait]
pub trait Listener: Send {
    /// The bound address (with the real port when `:0` was asked for).
    fn address(&self) -> String;
    /// The next stream a peer opened; `None` once the listener is closed.
    async fn accept(&mut self) -> Option<Stream>;

    /// Asks the listener to answer unary requests (those sent with [`Connection::call`])
    /// with `handler` inside the connection, without making a stream for each. Returns
    /// `false` when the transport has no such path; unary requests then arrive through
    /// [`Listener::accept`] like any stream (one frame, then the end).
    fn serve_unary(&mut self, handler: UnaryHandler) -> bool {
        let _ = handler;
        false
    }
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
