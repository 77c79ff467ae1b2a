//! The listening side: [`NatsListener`], a queue subscription on the listener subject that
//! turns requests into unary exchanges and opening frames into streams.

use super::frames::{self, Control, ID};
use super::stream::{self, Ends};
use async_nats::{Client, Subject, Subscriber};
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use micro_core::transport::{
    Drain, Exchange, ExchangeHandler, FrameSink, Listener, Message, Stream, StreamReceiver,
    StreamSender,
};
use micro_core::{Error, Result};
use std::fmt;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// The queue group every listener subscribes with: servers listening on one subject share
/// its requests.
pub const QUEUE_GROUP: &str = "micro";

/// A listener subject. Draining unsubscribes it (new requests and streams get NATS's "no
/// responders"); dropping the serve future also resets the streams it opened.
pub struct NatsListener {
    pub(crate) client: Client,
    pub(crate) subject: String,
    pub(crate) subscriber: Subscriber,
    pub(crate) settings: stream::Settings,
}

impl fmt::Debug for NatsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsListener")
            .field("subject", &self.subject)
            .finish()
    }
}

#[async_trait::async_trait]
impl Listener for NatsListener {
    fn address(&self) -> String {
        self.subject.clone()
    }

    /// Each request is served on a task of its own, each stream by a pump task and its
    /// handler task. Once `drain` starts, the subject is unsubscribed and the open streams
    /// go on; dropping this future resets them.
    async fn serve(self: Box<Self>, handler: ExchangeHandler, drain: Drain) {
        let NatsListener {
            client,
            subject,
            subscriber,
            mut settings,
        } = *self;
        let stop = CancellationToken::new();
        let _stop = stop.clone().drop_guard();
        settings.stop = stop.clone();
        let server = Server {
            client,
            shared_subject: Arc::from(subject.as_str()),
            subject,
            settings,
            handler,
            stop,
        };
        let mut subscriber = Some(subscriber);
        loop {
            let message = tokio::select! {
                message = next_some(&mut subscriber) => message,
                _ = drain.started(), if subscriber.is_some() => {
                    // Unsubscribes: the subject stops taking requests and streams.
                    subscriber = None;
                    continue;
                }
            };
            match message {
                Some(message) => server.take(message),
                // The NATS client closed for good: nothing more comes; streams go on.
                None => subscriber = None,
            }
        }
    }
}

async fn next_some(subscriber: &mut Option<Subscriber>) -> Option<async_nats::Message> {
    match subscriber {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

/// What serving a listener shares across its exchanges.
struct Server {
    client: Client,
    subject: String,
    /// The subject again, shared by the unary exchanges.
    shared_subject: Arc<str>,
    settings: stream::Settings,
    handler: ExchangeHandler,
    stop: CancellationToken,
}

impl Server {
    /// Sorts out one message on the listener subject.
    fn take(&self, message: async_nats::Message) {
        let Some(reply) = message.reply.clone() else {
            self.settings.logger.in_scope(|| {
                tracing::warn!(
                    subject = %self.subject,
                    "a message without a reply subject on the listener subject was dropped: \
                     send requests with a reply inbox (a NATS request)"
                )
            });
            return;
        };
        match frames::control_of(&message) {
            None => self.unary(reply, message),
            Some(Ok(Control::Open)) => self.open(reply),
            Some(Ok(other)) => self.refuse(
                reply,
                Error::bad_request(
                    ID,
                    format!(
                        "{}: a {} frame on the listener subject; open a stream first",
                        self.subject,
                        other.value()
                    ),
                ),
            ),
            Some(Err(error)) => self.refuse(
                reply,
                Error::bad_request(ID, format!("{}: {}", self.subject, error.detail)),
            ),
        }
    }

    /// A NATS request: a unary exchange answered on its reply subject.
    fn unary(&self, reply: Subject, message: async_nats::Message) {
        let remote = reply.to_string();
        let sink = UnaryReply {
            client: self.client.clone(),
            reply: Mutex::new(Some(reply)),
            stop: self.stop.clone(),
            subject: self.shared_subject.clone(),
        };
        let exchange = Exchange {
            first: frames::to_frame(message),
            stream: Stream {
                sender: StreamSender::from_sink(Arc::new(sink)),
                receiver: StreamReceiver::ended(),
                remote,
            },
        };
        // Served here when the handler finishes at once (no task, no wake-up); otherwise on
        // a task of its own, so a slow handler never holds up the listener.
        let mut served = (self.handler)(exchange);
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        if served.as_mut().poll(&mut cx).is_pending() {
            tokio::spawn(served);
        }
    }

    /// An opening frame: a new inbox for this side, the acceptance, the pump, then the
    /// handler once the first frame arrived.
    fn open(&self, peer: Subject) {
        let client = self.client.clone();
        let subject = self.subject.clone();
        let settings = self.settings.clone();
        let handler = self.handler.clone();
        tokio::spawn(async move {
            let inbox = client.new_inbox();
            let subscriber = match client.subscribe(inbox.clone()).await {
                Ok(s) => s,
                Err(e) => {
                    let error = Error::unavailable(
                        ID,
                        format!("{subject}: the server cannot subscribe a stream inbox: {e}"),
                    );
                    let _ = client
                        .publish_with_headers(peer, frames::reset_headers(&error), Bytes::new())
                        .await;
                    return;
                }
            };
            let own = Subject::from(inbox);
            let accepted = client
                .publish_with_reply_and_headers(
                    peer.clone(),
                    own.clone(),
                    Control::Accept.headers(),
                    Bytes::new(),
                )
                .await;
            if accepted.is_err() {
                return;
            }
            let remote = peer.to_string();
            let ends = Ends {
                client,
                own,
                subscriber,
                peer,
                subject,
            };
            let stream = stream::start(ends, settings, remote);
            micro_core::transport::serve_stream(stream, &handler).await;
        });
    }

    /// Answers a malformed message with a reset carrying `error`, and logs it.
    fn refuse(&self, reply: Subject, error: Error) {
        self.settings
            .logger
            .in_scope(|| tracing::warn!(%error, "malformed message on a listener subject"));
        let client = self.client.clone();
        tokio::spawn(async move {
            let _ = client
                .publish_with_headers(reply, frames::reset_headers(&error), Bytes::new())
                .await;
        });
    }
}

/// The sender of a unary exchange: its one answer is published to the request's reply
/// subject.
struct UnaryReply {
    client: Client,
    reply: Mutex<Option<Subject>>,
    stop: CancellationToken,
    subject: Arc<str>,
}

impl FrameSink for UnaryReply {
    fn send(&self, message: Message) -> BoxFuture<'_, Result<()>> {
        let reply = self.reply.lock().unwrap_or_else(|e| e.into_inner()).take();
        Box::pin(async move {
            let Some(reply) = reply else {
                return Err(Error::bad_request(
                    ID,
                    "a unary exchange takes one answer; open a stream to send more",
                ));
            };
            if self.stop.is_cancelled() {
                return Err(Error::unavailable(
                    ID,
                    format!("{}: the listener closed before the answer", self.subject),
                ));
            }
            let (headers, body, result) = match frames::to_nats(&message.header) {
                Ok(headers) => (headers, message.body, Ok(())),
                // The caller still gets an answer: the error, as a reset.
                Err(error) => (frames::reset_headers(&error), Bytes::new(), Err(error)),
            };
            self.client
                .publish_with_headers(reply, headers, body)
                .await
                .map_err(|e| {
                    Error::unavailable(
                        ID,
                        format!("{}: publishing the answer failed: {e}", self.subject),
                    )
                })?;
            result
        })
    }

    fn is_closed(&self) -> bool {
        self.stop.is_cancelled()
    }

    fn closed(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.stop.cancelled())
    }
}
