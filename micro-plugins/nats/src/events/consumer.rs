//! The task feeding one [`micro_core::events::Consumer`] from a JetStream pull consumer.
//!
//! The consumer's channel holds one event. The task waits for room in it (the previous
//! event was taken), then pulls ONE message (a pull request that waits up to
//! [`PULL_WAIT`]), so an event is only taken from the group when a consumer is ready for it
//! and two consumers of a group split the events. The handed-out event is settled so:
//! - auto-ack: acked when the consumer takes it (the next room in the channel) or goes away
//!   (an event in the channel when the consumer is dropped counts as delivered, as with
//!   every backend: the channel cannot say whether it was taken); while it waits in the
//!   channel its ack deadline is pushed back (`+WPI`) so it is not redelivered, and if the
//!   process dies meanwhile it comes again;
//! - manual ack: the event carries a [`JsAcker`] (ack = `+ACK` confirmed by the server, nack
//!   = `-NAK`, redelivered now, until `max_deliver = 1 + retry_limit`); its ack deadline is
//!   pushed back while it waits in the channel, so `ack_wait` counts from about when the
//!   consumer took it.
//!
//! When the consumer is dropped (or the [`super::NatsEvents`] is), the task finishes the
//! pull in progress (an event it brings is given back with `-NAK`, redelivered at once to
//! the group), deletes a private consumer, and ends. Errors (server gone, consumer deleted)
//! never end the stream: the task waits with a growing backoff, makes the stream and
//! consumer again when missing (a private one resumes after the last sequence it handed
//! out), and goes on; async-nats reconnects underneath.

use super::{ID, codec};
use async_nats::jetstream::consumer::{DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::message::Acker;
use async_nats::jetstream::{self, AckKind, stream};
use async_trait::async_trait;
use futures::StreamExt;
use micro_core::backoff::Backoff;
use micro_core::events::{Event, EventAcker};
use micro_core::logger::Logger;
use micro_core::{Error, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long one pull request waits for a message.
const PULL_WAIT: Duration = Duration::from_secs(5);
/// How long deleting a private consumer may take when its task ends.
const CLEANUP_WAIT: Duration = Duration::from_secs(5);

/// Logs a message that is not a micro event and is skipped.
pub(super) fn skipped(logger: &Logger, subject: &str, sequence: u64, reason: &str) {
    logger.in_scope(|| {
        tracing::warn!(
            subject,
            sequence,
            "skipping a message on {subject} that is not a micro event: {reason}"
        )
    });
}

/// Settles one delivery of one event.
pub(super) struct JsAcker {
    acker: Acker,
    subject: String,
    sequence: u64,
    /// Deliveries so far, this one included.
    delivered: i64,
    /// Deliveries allowed (`-1` = no limit).
    max_deliver: i64,
    logger: Logger,
}

impl JsAcker {
    fn error(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::unavailable(
            ID,
            format!(
                "{what} of event {} on {} did not reach nats-server ({e}); it will be \
                 delivered again after its ack_wait",
                self.sequence, self.subject
            ),
        )
    }

    /// Sends `kind` without waiting for the server.
    async fn send(&self, kind: AckKind) -> Result<()> {
        self.acker
            .ack_with(kind)
            .await
            .map_err(|e| self.error(&format!("{kind:?}"), e))
    }
}

#[async_trait]
impl EventAcker for JsAcker {
    async fn ack(&self) -> Result<()> {
        self.acker
            .double_ack()
            .await
            .map_err(|e| self.error("the ack", e))
    }

    async fn nack(&self) -> Result<()> {
        self.send(AckKind::Nak(None)).await?;
        if self.max_deliver > 0 && self.delivered >= self.max_deliver {
            self.logger.in_scope(|| {
                tracing::warn!(
                    subject = %self.subject,
                    sequence = self.sequence,
                    "event dropped: not acknowledged within its retry limit ({} deliveries)",
                    self.delivered
                )
            });
        }
        Ok(())
    }
}

/// An event in the consumer's channel, not taken yet.
struct Buffered {
    acker: Arc<JsAcker>,
    since: Instant,
}

/// Everything the task of one consumer needs.
pub(super) struct Feed {
    pub topic: String,
    pub stream_config: stream::Config,
    pub js: jetstream::Context,
    pub stream: stream::Stream,
    pub consumer: PullConsumer,
    /// The consumer's configuration, to make it again.
    pub config: pull::Config,
    pub private: bool,
    pub auto_ack: bool,
    pub logger: Logger,
    pub cancel: CancellationToken,
    pub tx: mpsc::Sender<Event>,
    /// Stream sequence of the last event handed out (0 = none yet).
    pub last: u64,
}

impl Feed {
    /// Feeds the consumer until it or the events are dropped.
    pub async fn run(mut self) {
        let mut buffered: Option<Buffered> = None;
        let mut backoff = Backoff::new();
        // Half the ack wait: how often an event waiting in the channel gets more time.
        let refresh = (self.config.ack_wait / 2).max(Duration::from_millis(50));
        'run: loop {
            let permit = loop {
                let due = async {
                    match &buffered {
                        Some(b) => tokio::time::sleep_until(b.since + refresh).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    () = self.cancel.cancelled() => break 'run,
                    permit = self.tx.reserve() => match permit {
                        Ok(permit) => break permit,
                        Err(_) => break 'run,
                    },
                    () = due => {
                        if let Some(b) = &mut buffered {
                            let _ = b.acker.send(AckKind::Progress).await;
                            b.since = Instant::now();
                        }
                    }
                }
            };
            // Room in the channel: the consumer took the event that was in it.
            if let Some(b) = buffered.take() {
                if self.auto_ack {
                    if let Err(e) = b.acker.send(AckKind::Ack).await {
                        self.warn(&format!("auto-ack failed: {e}"));
                    }
                } else if b.since.elapsed() > refresh / 5 {
                    // Full ack_wait from about now, when the consumer has it.
                    let _ = b.acker.send(AckKind::Progress).await;
                }
            }
            let message = match self.pull().await {
                Ok(Some(message)) => message,
                Ok(None) => continue,
                Err(e) => {
                    drop(permit);
                    let (first, wait) = backoff.failed();
                    if first {
                        self.warn(&format!("pulling events failed ({e}); trying again"));
                    } else {
                        self.logger.in_scope(
                            || tracing::debug!(topic = %self.topic, "pull failed again: {e}"),
                        );
                    }
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.cancel.cancelled() => break 'run,
                        () = self.tx.closed() => break 'run,
                    }
                    if let Err(e) = self.recover().await {
                        self.logger.in_scope(
                            || tracing::debug!(topic = %self.topic, "recovery failed: {e}"),
                        );
                    }
                    continue;
                }
            };
            if backoff.succeeded() {
                self.logger
                    .in_scope(|| tracing::info!(topic = %self.topic, "pulling events works again"));
            }
            let (sequence, delivered) = match message.info() {
                Ok(info) => (info.stream_sequence, info.delivered),
                Err(e) => {
                    let subject = message.subject.to_string();
                    skipped(
                        &self.logger,
                        &subject,
                        0,
                        &format!("no JetStream info: {e}"),
                    );
                    let _ = message.ack_with(AckKind::Term).await;
                    continue;
                }
            };
            let (message, acker) = message.split();
            let acker = Arc::new(JsAcker {
                acker,
                subject: message.subject.to_string(),
                sequence,
                delivered,
                max_deliver: self.config.max_deliver,
                logger: self.logger.clone(),
            });
            let event = match codec::decode(
                &self.topic,
                sequence,
                message.headers.as_ref(),
                message.payload,
            ) {
                Ok(event) => event,
                Err(reason) => {
                    skipped(&self.logger, &acker.subject, sequence, &reason);
                    let _ = acker.send(AckKind::Term).await;
                    continue;
                }
            };
            if self.tx.is_closed() {
                // Dropped while the pull was on: give it back at once.
                let _ = acker.send(AckKind::Nak(None)).await;
                break 'run;
            }
            self.last = sequence;
            let event = if self.auto_ack {
                event
            } else {
                event.with_acker(acker.clone())
            };
            permit.send(event);
            buffered = Some(Buffered {
                acker,
                since: Instant::now(),
            });
        }
        if let Some(b) = buffered
            && self.auto_ack
        {
            // Whether the consumer took it before going away cannot be told (the channel
            // drops what it holds): like every backend, count it as delivered.
            let _ = b.acker.send(AckKind::Ack).await;
        }
        if self.private {
            let name = self.config.durable_name.clone().unwrap_or_default();
            let deleted =
                tokio::time::timeout(CLEANUP_WAIT, self.stream.delete_consumer(&name)).await;
            if !matches!(deleted, Ok(Ok(_))) {
                self.logger.in_scope(|| {
                    tracing::debug!(topic = %self.topic, consumer = %name,
                        "private consumer not deleted; the server removes it when idle")
                });
            }
        }
    }

    fn warn(&self, what: &str) {
        self.logger.in_scope(
            || tracing::warn!(topic = %self.topic, consumer = ?self.config.durable_name, "{what}"),
        );
    }

    /// One message, or `None` when none came within [`PULL_WAIT`].
    async fn pull(&self) -> std::result::Result<Option<jetstream::Message>, async_nats::Error> {
        let mut batch = self
            .consumer
            .batch()
            .max_messages(1)
            .expires(PULL_WAIT)
            .messages()
            .await?;
        batch.next().await.transpose()
    }

    /// Makes the stream and the consumer again when they are gone; a consumer made again
    /// starts after the last event handed out.
    async fn recover(&mut self) -> std::result::Result<(), async_nats::Error> {
        let stream = self
            .js
            .get_or_create_stream(self.stream_config.clone())
            .await?;
        let mut config = self.config.clone();
        if self.last > 0 {
            config.deliver_policy = DeliverPolicy::ByStartSequence {
                start_sequence: self.last + 1,
            };
        }
        let name = config.durable_name.clone().unwrap_or_default();
        self.consumer = stream.get_or_create_consumer(&name, config).await?;
        self.stream = stream;
        Ok(())
    }
}
