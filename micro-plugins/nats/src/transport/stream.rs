//! One stream between two NATS inboxes: a task per side (the pump) reads the side's inbox
//! subscription and publishes what its user sends; the user's receiver reads frames the pump
//! queued and grants credit back to the peer as it reads.
//!
//! Every frame a pump publishes carries its own inbox as reply subject, so when the peer's
//! inbox is gone NATS answers "no responders" and the stream fails at once instead of
//! waiting. An idle side sends a ping every heartbeat; a side that hears nothing from its
//! peer for [`SILENT_HEARTBEATS`] heartbeats fails the stream.

use super::frames::{self, Control, ID, WINDOW};
use async_nats::{Client, StatusCode, Subject, Subscriber};
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use micro_core::transport::{FrameSource, Message, Stream, StreamReceiver, stream_pair};
use micro_core::{Error, Result};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Heartbeats without a word from the peer after which a stream fails.
pub const SILENT_HEARTBEATS: u32 = 4;

/// What a pump needs besides its ends.
#[derive(Clone)]
pub(crate) struct Settings {
    /// Ping interval of an idle stream.
    pub heartbeat: Duration,
    /// Server side: time the peer has to send its first frame after opening.
    pub first_frame: Option<Duration>,
    /// Cancelled when the side closes (server: its listener's serve was dropped).
    pub stop: CancellationToken,
    /// Where problems are logged.
    pub logger: micro_core::logger::Logger,
}

/// The two inboxes of a stream, from one side's point of view.
pub(crate) struct Ends {
    pub client: Client,
    /// This side's inbox (subscribed).
    pub own: Subject,
    pub subscriber: Subscriber,
    /// The peer's inbox.
    pub peer: Subject,
    /// What the stream is about, for errors (the listener subject).
    pub subject: String,
}

/// Starts the pump of one side and returns the user's stream.
pub(crate) fn start(ends: Ends, settings: Settings, remote: String) -> Stream {
    let (mut stream, io) = stream_pair(remote);
    let (frames, queued) = mpsc::channel(2 * WINDOW as usize);
    stream.receiver = StreamReceiver::from_source(Box::new(Inbound {
        queued,
        client: ends.client.clone(),
        peer: ends.peer.clone(),
        read: 0,
    }));
    let pump = Pump {
        ends,
        settings,
        outgoing: Some(io.outgoing),
        incoming: Some(frames),
        credits: WINDOW,
        heard: Instant::now(),
        said: Instant::now(),
        got_data: false,
    };
    drop(io.incoming); // the receiver is ours (`Inbound`), not the pair's channel
    tokio::spawn(pump.run());
    stream
}

/// The user's receiver: frames the pump queued; every `WINDOW / 2` frames read, it
/// publishes credit to the peer.
struct Inbound {
    queued: mpsc::Receiver<Result<Message>>,
    client: Client,
    peer: Subject,
    read: u32,
}

impl FrameSource for Inbound {
    fn recv(&mut self) -> BoxFuture<'_, Option<Result<Message>>> {
        Box::pin(async move {
            let item = self.queued.recv().await;
            if matches!(item, Some(Ok(_))) {
                self.read += 1;
                if self.read >= WINDOW / 2 {
                    let credit = Control::Credit(self.read);
                    self.read = 0;
                    // A lost credit only matters if the peer is gone, which the pump sees.
                    let _ = self
                        .client
                        .publish_with_headers(self.peer.clone(), credit.headers(), Bytes::new())
                        .await;
                }
            }
            item
        })
    }
}

/// One side's task.
struct Pump {
    ends: Ends,
    settings: Settings,
    /// Frames the user sends; `None` once this direction ended.
    outgoing: Option<mpsc::Receiver<Message>>,
    /// Where frames for the user go; `None` once the peer's direction ended.
    incoming: Option<mpsc::Sender<Result<Message>>>,
    /// Frames this side may still send before the peer grants more.
    credits: u32,
    /// When the peer was last heard from.
    heard: Instant,
    /// When this side last published.
    said: Instant,
    /// Whether a data frame arrived yet.
    got_data: bool,
}

/// How a pump's turn went.
enum Turn {
    Go,
    Done,
}

impl Pump {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(self.settings.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.reset();
        let first_deadline = self.settings.first_frame.map(|d| Instant::now() + d);
        while self.outgoing.is_some() || self.incoming.is_some() {
            let sending = self.credits > 0;
            let turn = tokio::select! {
                message = self.ends.subscriber.next() => match message {
                    Some(message) => self.received(message).await,
                    None => {
                        let error = Error::unavailable(ID, format!(
                            "{}: the NATS connection closed; open a new stream", self.ends.subject));
                        self.fail(error, false).await
                    }
                },
                frame = recv_some(&mut self.outgoing), if sending => match frame {
                    Some(frame) => self.send(frame).await,
                    None => {
                        self.outgoing = None;
                        self.control(Control::End).await
                    }
                },
                _ = closed_some(&self.incoming) => {
                    // The user dropped its receiver: the peer's sends fail from now on.
                    self.incoming = None;
                    self.control(Control::Stop).await
                }
                _ = tick.tick() => self.heartbeat().await,
                _ = sleep_until_some(first_deadline), if !self.got_data => {
                    let error = Error::timeout(ID, format!(
                        "{}: no frame within {:?} of opening the stream; send the first \
                         frame sooner", self.ends.subject, self.settings.first_frame.unwrap_or_default()));
                    self.fail(error, true).await
                }
                _ = self.settings.stop.cancelled() => {
                    let error = Error::unavailable(ID, format!(
                        "{}: the server stopped before the stream ended; the call may have \
                         run in part", self.ends.subject));
                    self.fail(error, true).await
                }
            };
            if let Turn::Done = turn {
                break;
            }
        }
    }

    /// A message arrived on this side's inbox.
    async fn received(&mut self, message: async_nats::Message) -> Turn {
        self.heard = Instant::now();
        if message.status == Some(StatusCode::NO_RESPONDERS) {
            let error = Error::unavailable(
                ID,
                format!(
                    "{}: the peer's end of the stream is gone (no responders on its inbox); \
                     open a new stream",
                    self.ends.subject
                ),
            );
            return self.fail(error, false).await;
        }
        match frames::control_of(&message) {
            None => {
                self.got_data = true;
                let Some(incoming) = &self.incoming else {
                    return Turn::Go; // after Stop or End: dropped
                };
                if incoming.try_send(Ok(frames::to_frame(message))).is_err() {
                    let error = Error::bad_request(
                        ID,
                        format!(
                            "{}: the peer sent more than {} frames without credit",
                            self.ends.subject,
                            2 * WINDOW
                        ),
                    );
                    return self.fail(error, true).await;
                }
                Turn::Go
            }
            Some(Ok(Control::End)) => {
                self.got_data = true;
                self.incoming = None;
                Turn::Go
            }
            Some(Ok(Control::Stop)) => {
                self.outgoing = None;
                Turn::Go
            }
            Some(Ok(Control::Credit(n))) => {
                self.credits = self.credits.saturating_add(n).min(WINDOW);
                Turn::Go
            }
            Some(Ok(Control::Reset)) => {
                let error = frames::reset_error(&message, &self.ends.subject);
                self.fail(error, false).await
            }
            Some(Ok(Control::Ping | Control::Accept)) => Turn::Go,
            Some(Ok(Control::Open)) => {
                let error = Error::bad_request(
                    ID,
                    format!("{}: an open frame inside a stream", self.ends.subject),
                );
                self.fail(error, true).await
            }
            Some(Err(error)) => {
                let error =
                    Error::bad_request(ID, format!("{}: {}", self.ends.subject, error.detail));
                self.fail(error, true).await
            }
        }
    }

    /// Publishes one of the user's frames.
    async fn send(&mut self, frame: Message) -> Turn {
        let headers = match frames::to_nats(&frame.header) {
            Ok(headers) => headers,
            Err(error) => return self.fail(error, true).await,
        };
        self.credits -= 1;
        self.publish(headers, frame.body).await
    }

    /// Publishes a control frame.
    async fn control(&mut self, control: Control) -> Turn {
        self.publish(control.headers(), Bytes::new()).await
    }

    async fn publish(&mut self, headers: async_nats::HeaderMap, body: Bytes) -> Turn {
        self.said = Instant::now();
        let sent = self
            .ends
            .client
            .publish_with_reply_and_headers(
                self.ends.peer.clone(),
                self.ends.own.clone(),
                headers,
                body,
            )
            .await;
        match sent {
            Ok(()) => Turn::Go,
            Err(e) => {
                let error = Error::unavailable(
                    ID,
                    format!("{}: publishing a frame failed: {e}", self.ends.subject),
                );
                self.fail(error, false).await
            }
        }
    }

    /// Pings an idle peer; fails when the peer has been silent too long.
    async fn heartbeat(&mut self) -> Turn {
        let beat = self.settings.heartbeat;
        if self.heard.elapsed() >= beat * SILENT_HEARTBEATS {
            let error = Error::unavailable(
                ID,
                format!(
                    "{}: nothing from the peer for {:?}; it went away",
                    self.ends.subject,
                    beat * SILENT_HEARTBEATS
                ),
            );
            return self.fail(error, true).await;
        }
        if self.said.elapsed() >= beat {
            return self.control(Control::Ping).await;
        }
        Turn::Go
    }

    /// Ends the stream in both directions with `error`: the user's receiver yields it, its
    /// sends fail; `tell` also resets the peer.
    async fn fail(&mut self, error: Error, tell: bool) -> Turn {
        if tell {
            let _ = self
                .ends
                .client
                .publish_with_headers(
                    self.ends.peer.clone(),
                    frames::reset_headers(&error),
                    Bytes::new(),
                )
                .await;
        }
        match self.incoming.take() {
            Some(incoming) => {
                let _ = incoming.try_send(Err(error));
            }
            // Nobody reads any more: the log is the only place the error can go.
            None => self.settings.logger.in_scope(
                || tracing::debug!(subject = %self.ends.subject, %error, "stream failed"),
            ),
        }
        self.outgoing = None;
        Turn::Done
    }
}

async fn recv_some(rx: &mut Option<mpsc::Receiver<Message>>) -> Option<Message> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn closed_some(tx: &Option<mpsc::Sender<Result<Message>>>) {
    match tx {
        Some(tx) => tx.closed().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Waits for the first message of a fresh inbox within `limit`.
pub(crate) async fn first_message(
    subscriber: &mut Subscriber,
    limit: Duration,
) -> Option<Option<async_nats::Message>> {
    tokio::time::timeout(limit, subscriber.next()).await.ok()
}
