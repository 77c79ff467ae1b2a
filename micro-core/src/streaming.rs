//! Typed message streams over transport streams, for streaming endpoints.
//!
//! On the wire a stream opens with a frame of headers (no message); after it every frame is
//! one message, encoded per `Content-Type`; a frame with a `Micro-Error` header ends the
//! stream with that error; the transport's end-of-stream ends it cleanly.

use crate::Context;
use crate::codec::{Format, Payload};
use crate::transport::{Message, StreamReceiver, StreamSender, headers};
use crate::{Error, Result};
use futures::stream::{BoxStream, Stream, StreamExt};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

/// A stream of typed messages (requests into a handler, or responses out of one).
pub struct Streaming<T> {
    inner: BoxStream<'static, Result<T>>,
}

impl<T> std::fmt::Debug for Streaming<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Streaming")
    }
}

impl<T: Send + 'static> Streaming<T> {
    /// Wraps any stream of results.
    pub fn new(stream: impl Stream<Item = Result<T>> + Send + 'static) -> Self {
        Streaming {
            inner: stream.boxed(),
        }
    }

    /// A stream of the given values.
    pub fn from_values(values: impl IntoIterator<Item = T, IntoIter: Send + 'static>) -> Self {
        Streaming::new(futures::stream::iter(values.into_iter().map(Ok)))
    }

    /// The next message; `None` at the end.
    pub async fn next(&mut self) -> Option<Result<T>> {
        self.inner.next().await
    }
}

impl<T> Stream for Streaming<T> {
    type Item = Result<T>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// The error carried by a frame, if it carries one.
pub fn frame_error(frame: &Message) -> Option<Error> {
    frame.header(headers::ERROR).map(Error::parse)
}

/// A frame carrying `error`.
pub fn error_frame(error: &Error) -> Message {
    Message::default().with_header(headers::ERROR, error.to_json())
}

/// A frame carrying one message.
pub fn message_frame<T: Payload>(value: &T, format: Format) -> Result<Message> {
    Ok(Message::new(value.encode(format)?)
        .with_header(headers::CONTENT_TYPE, format.content_type()))
}

/// Decodes the frames of `receiver` as messages; an error frame or a broken connection ends
/// the stream with that error.
pub fn receive<T: Payload>(receiver: StreamReceiver, format: Format) -> Streaming<T> {
    Streaming::new(futures::stream::unfold(
        Some(receiver),
        move |state| async move {
            let mut receiver = state?;
            match receiver.recv().await? {
                Ok(frame) => match frame_error(&frame) {
                    Some(err) => Some((Err(err), None)),
                    None => Some((T::decode(format, &frame.body), Some(receiver))),
                },
                Err(err) => Some((Err(err), None)),
            }
        },
    ))
}

/// Decodes the frames of `receiver` as messages until `ctx` is cancelled or its deadline
/// passes; then the stream ends with that error (a server's request stream).
pub fn receive_until<T: Payload>(
    receiver: StreamReceiver,
    format: Format,
    ctx: &Context,
) -> Streaming<T> {
    let ctx = ctx.deadline_only();
    let messages = receive::<T>(receiver, format);
    Streaming::new(futures::stream::unfold(
        Some((messages, ctx)),
        |state| async move {
            let (mut messages, ctx) = state?;
            tokio::select! {
                biased;
                _ = ctx.cancelled() => Some((Err(stopped(&ctx)), None)),
                item = messages.next() => item.map(|item| (item, Some((messages, ctx)))),
            }
        },
    ))
}

/// Why a call's context ended: its deadline passed (408) or it was cancelled (503).
pub fn stopped(ctx: &Context) -> Error {
    if ctx.remaining() == Some(std::time::Duration::ZERO) {
        Error::timeout(
            "go.micro.server",
            "deadline exceeded: the stream was stopped when the caller's timeout ran out; \
             give the call a longer timeout (Timeout header) if it needs more time",
        )
    } else {
        Error::unavailable(
            "go.micro.server",
            "the call was cancelled (the caller went away or the server is stopping)",
        )
    }
}

/// Sends every message of `messages`, then ends the stream; an `Err` item is sent as an
/// error frame and ends it. Stops as soon as `ctx` is cancelled or its deadline passes
/// (returning that error, for the caller to send), or the peer stops receiving (then `ctx`
/// is cancelled too, so the handler's own work sees it). Fails when the peer is gone.
pub async fn send_all<T: Payload>(
    sender: StreamSender,
    format: Format,
    mut messages: Streaming<T>,
    ctx: &Context,
) -> Result<()> {
    let send = async {
        while let Some(item) = messages.next().await {
            match item.and_then(|m| message_frame(&m, format)) {
                Ok(frame) => sender.send(frame).await?,
                Err(err) => {
                    sender.send(error_frame(&err)).await?;
                    return Ok(());
                }
            }
        }
        Ok(())
    };
    tokio::select! {
        biased;
        _ = ctx.cancelled() => Err(stopped(ctx)),
        _ = sender.closed() => {
            ctx.cancel();
            Err(Error::transport(
                "go.micro.server",
                "the caller stopped receiving the stream (it ended the call or went away)",
            ))
        }
        result = send => result,
    }
}

/// The caller's side of a streaming call: send requests, receive responses.
pub struct ClientStream<Req, Resp> {
    sender: Option<StreamSender>,
    responses: Streaming<Resp>,
    format: Format,
    _req: std::marker::PhantomData<fn(Req)>,
}

impl<Req: Payload, Resp: Payload> ClientStream<Req, Resp> {
    /// Wraps an opened transport stream.
    pub fn new(stream: crate::transport::Stream, format: Format) -> Self {
        ClientStream {
            sender: Some(stream.sender),
            responses: receive(stream.receiver, format),
            format,
            _req: std::marker::PhantomData,
        }
    }

    /// Sends one request message (encoded before the returned future first waits).
    pub fn send(&self, request: &Req) -> impl std::future::Future<Output = Result<()>> + Send + '_ {
        let frame = message_frame(request, self.format);
        let sender = self.sender.as_ref();
        async move {
            let sender = sender.ok_or_else(|| {
                Error::bad_request("go.micro.client", "stream already closed for sending")
            })?;
            sender.send(frame?).await
        }
    }

    /// Takes the sending half out (e.g. to send from another task).
    pub fn take_sender(&mut self) -> Option<MessageSender<Req>> {
        self.sender.take().map(|sender| MessageSender {
            sender,
            format: self.format,
            _req: std::marker::PhantomData,
        })
    }

    /// Ends the requests (the server sees the end of its request stream).
    pub fn close_send(&mut self) {
        self.sender = None;
    }

    /// The next response; `None` when the server ended the stream.
    pub async fn recv(&mut self) -> Option<Result<Resp>> {
        self.responses.next().await
    }

    /// Ends the requests and returns the responses as a stream.
    pub fn into_responses(mut self) -> Streaming<Resp> {
        self.sender = None;
        self.responses
    }
}

/// The sending half of a typed stream.
pub struct MessageSender<T> {
    sender: StreamSender,
    format: Format,
    _req: std::marker::PhantomData<fn(T)>,
}

impl<T: Payload> MessageSender<T> {
    /// Sends one message (encoded before the returned future first waits).
    pub fn send(&self, message: &T) -> impl std::future::Future<Output = Result<()>> + Send + '_ {
        let frame = message_frame(message, self.format);
        async move { self.sender.send(frame?).await }
    }

    /// Sends an error and so ends the stream for the peer.
    pub async fn send_error(&self, error: &Error) -> Result<()> {
        self.sender.send(error_frame(error)).await
    }
}
