//! The one way requests reach a server: an [`Exchange`] (its opening frame and the stream it
//! came on) handed to the listener's [`ExchangeHandler`].

use super::{FrameSink, Listener, Message, Stream, StreamSender};
use crate::{Error, Result};
use futures::future::BoxFuture;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// An exchange a peer opened: its opening frame, and the stream to read the rest from and
/// answer on. For a unary exchange the receiver is already ended and the sender takes one
/// answer.
#[derive(Debug)]
pub struct Exchange {
    /// The opening frame (a request's headers and body).
    pub first: Message,
    /// The rest of the peer's frames, and where answers go.
    pub stream: Stream,
}

impl Exchange {
    /// The exchange as a plain stream whose first frame is the opening one.
    pub fn into_stream(self) -> Stream {
        let Stream {
            sender,
            receiver,
            remote,
        } = self.stream;
        Stream {
            sender,
            receiver: receiver.with_first(self.first),
            remote,
        }
    }
}

/// The future of an [`ExchangeHandler`]: done when the exchange is answered.
pub type ExchangeFuture = BoxFuture<'static, ()>;

/// Serves exchanges: what a server gives [`Listener::serve`].
pub type ExchangeHandler = Arc<dyn Fn(Exchange) -> ExchangeFuture + Send + Sync>;

/// Reads the opening frame of `stream` and hands the exchange to `handler`; a stream that
/// ends (or fails) before its first frame is dropped. For listeners whose connections yield
/// streams.
pub async fn serve_stream(mut stream: Stream, handler: &ExchangeHandler) {
    if let Some(Ok(first)) = stream.receiver.recv().await {
        handler(Exchange { first, stream }).await;
    }
}

/// The serve loop of a listener whose connections hand their streams to one channel: every
/// stream is served ([`serve_stream`]) on a task of its own. Once `drain` starts,
/// `stop_accepting` runs once (the transport closes its listening socket or frees its
/// address) while the streams of open connections are still served, until the channel
/// closes.
pub async fn serve_streams(
    streams: &mut mpsc::Receiver<Stream>,
    handler: ExchangeHandler,
    drain: super::Drain,
    mut stop_accepting: impl FnMut(),
) {
    let mut accepting = true;
    loop {
        let stream = tokio::select! {
            stream = streams.recv() => stream,
            _ = drain.started(), if accepting => {
                accepting = false;
                stop_accepting();
                continue;
            }
        };
        let Some(stream) = stream else { return };
        let handler = handler.clone();
        tokio::spawn(async move { serve_stream(stream, &handler).await });
    }
}

/// The sender of a unary exchange: the one answer goes to `answer` (e.g. written as one
/// frame by the connection); a second answer is an error.
pub fn reply_once(answer: impl FnOnce(Message) -> Result<()> + Send + 'static) -> StreamSender {
    StreamSender::from_sink(Arc::new(ReplyOnce {
        answer: Mutex::new(Some(Box::new(answer))),
    }))
}

type Answer = Box<dyn FnOnce(Message) -> Result<()> + Send>;

struct ReplyOnce {
    answer: Mutex<Option<Answer>>,
}

impl FrameSink for ReplyOnce {
    fn send(&self, message: Message) -> BoxFuture<'_, Result<()>> {
        let answer = self.answer.lock().unwrap_or_else(|e| e.into_inner()).take();
        let result = match answer {
            Some(answer) => answer(message),
            None => Err(Error::bad_request(
                "go.micro.transport",
                "a unary exchange takes one answer; open a stream to send more",
            )),
        };
        Box::pin(std::future::ready(result))
    }

    fn is_closed(&self) -> bool {
        false
    }

    fn closed(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::pending())
    }
}

/// The first step of a graceful stop, given to [`Listener::serve`]: once
/// [`started`](Drain::start), the listener stops accepting connections (new dials are refused)
/// and keeps serving the connections already open, whose exchanges still reach the handler
/// (a stopping server answers new ones with a retryable 503). Dropping the serve future is
/// the second step: it closes every connection. Cheap to clone; clones share the signal.
#[derive(Clone, Debug, Default)]
pub struct Drain {
    token: CancellationToken,
}

impl Drain {
    /// A drain not started yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts draining: the listener stops accepting connections. Idempotent.
    pub fn start(&self) {
        self.token.cancel();
    }

    /// Whether draining started.
    pub fn is_started(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes once draining started.
    pub async fn started(&self) {
        self.token.cancelled().await;
    }
}

/// A listener served by a task of its own; dropping it stops the task and closes the
/// listener.
pub struct Serving {
    address: String,
    drain: Drain,
    task: tokio::task::JoinHandle<()>,
}

impl Serving {
    /// Serves `listener` with `handler` on a new task.
    pub fn start(listener: Box<dyn Listener>, handler: ExchangeHandler) -> Self {
        let drain = Drain::new();
        Serving {
            address: listener.address(),
            task: tokio::spawn(listener.serve(handler, drain.clone())),
            drain,
        }
    }

    /// The listener's bound address.
    pub fn address(&self) -> String {
        self.address.clone()
    }

    /// Stops accepting connections; the open ones go on being served until this is dropped.
    pub fn drain(&self) {
        self.drain.start();
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving")
            .field("address", &self.address)
            .finish()
    }
}

/// A listener's exchanges as streams to pull one by one (tests and tools; a server gives
/// [`Listener::serve`] a handler instead). Dropping it closes the listener.
pub struct Accepting {
    serving: Serving,
    streams: mpsc::Receiver<Stream>,
}

/// Serves `listener` into a queue of streams (each starting with its opening frame).
pub fn accept_streams(listener: Box<dyn Listener>) -> Accepting {
    let (tx, streams) = mpsc::channel(super::STREAM_BUFFER);
    let handler: ExchangeHandler = Arc::new(move |exchange: Exchange| {
        let tx = tx.clone();
        Box::pin(async move {
            let _ = tx.send(exchange.into_stream()).await;
        })
    });
    Accepting {
        serving: Serving::start(listener, handler),
        streams,
    }
}

impl Accepting {
    /// The listener's bound address.
    pub fn address(&self) -> String {
        self.serving.address()
    }

    /// The next stream a peer opened; `None` once the listener is closed.
    pub async fn accept(&mut self) -> Option<Stream> {
        self.streams.recv().await
    }
}

impl std::fmt::Debug for Accepting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepting")
            .field("address", &self.serving.address)
            .finish()
    }
}
