//! Events on JetStream: one file-backed stream per topic, a durable pull consumer per
//! consumer group, history read through a short-lived ephemeral consumer.
//!
//! - Topic `orders` is stream `MICRO_EVENTS_orders` with the one subject
//!   `micro.events.orders`; names are escaped as [`codec`] says, so any topic works.
//! - [`Events::publish`] waits for JetStream's ack: `Ok` means stored. The id goes in
//!   `Nats-Msg-Id` (so a retried publish is stored once) and `Micro-Id`, the timestamp in
//!   `Micro-Timestamp`, metadata in `Micro-Meta-*` headers; `Event::sequence` is the stream
//!   sequence.
//! - [`Events::consume`] binds to the durable pull consumer named after the group (made on
//!   first use, with the start position of [`Offset`]), or a uniquely named one for a private
//!   consumer, deleted when its [`Consumer`] is dropped. Acks are explicit; see
//!   [`consumer`] for how events are pulled, handed out and settled.
//! - A message on a topic's subject that micro did not write is skipped with a warning
//!   naming its subject, and terminated so it does not come again.

mod codec;
mod consumer;

use crate::connection::Connector;
use async_nats::jetstream::{self, consumer::pull, stream};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use micro_core::config::EventsConfig;
use micro_core::events::{
    ConsumeOptions, Consumer, Event, Events, Offset, PublishOptions, ReadOptions, empty_topic,
};
use micro_core::logger::Logger;
use micro_core::{Error, Plugin, Result};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use codec::{STREAM_PREFIX, SUBJECT_PREFIX, escape, unescape};

/// Error id of this plugin.
pub(crate) const ID: &str = "go.micro.events.nats";
/// Events fetched per request by [`Events::read`].
const READ_BATCH: usize = 256;
/// How long `read` waits for a batch the server has not answered.
const READ_WAIT: Duration = Duration::from_secs(2);
/// A private consumer left behind by a process that died is removed by the server after
/// this long without pulls.
const PRIVATE_IDLE: Duration = Duration::from_secs(3600);

/// Event streams on NATS JetStream. Clones share the connection; dropping the last clone
/// stops every consumer task (ending their streams).
#[derive(Clone)]
pub struct NatsEvents {
    inner: Arc<Inner>,
}

struct Inner {
    connector: Connector,
    logger: Logger,
    /// Streams known to exist, so publish checks once per topic.
    streams: Mutex<HashSet<String>>,
    cancel: CancellationToken,
    _stop: DropGuard,
}

impl std::fmt::Debug for NatsEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsEvents")
            .field("address", &self.inner.connector.address())
            .finish_non_exhaustive()
    }
}

impl NatsEvents {
    /// Events on the NATS servers at `addresses` (empty = `nats://127.0.0.1:4222`),
    /// connecting on first use.
    pub fn new(addresses: &[String]) -> Self {
        Self::with_connector(Connector::new(addresses, "events"))
    }

    /// Events over an existing connection.
    pub fn with_client(client: async_nats::Client) -> Self {
        Self::with_connector(Connector::with_client(client, "events"))
    }

    fn with_connector(connector: Connector) -> Self {
        let cancel = CancellationToken::new();
        NatsEvents {
            inner: Arc::new(Inner {
                connector,
                logger: Logger::none(),
                streams: Mutex::new(HashSet::new()),
                _stop: cancel.clone().drop_guard(),
                cancel,
            }),
        }
    }

    /// The same events logging to `logger` (skipped messages, dropped events, outages).
    /// Call it before cloning or consuming.
    pub fn with_logger(mut self, logger: Logger) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.logger = logger;
        }
        self
    }

    /// The topics whose streams this instance made or found (by publishing or consuming).
    pub fn known_topics(&self) -> Vec<String> {
        let known = self.known();
        let mut topics: Vec<String> = known
            .iter()
            .filter_map(|name| codec::unescape(name.strip_prefix(STREAM_PREFIX)?))
            .collect();
        topics.sort();
        topics
    }

    /// Deletes `topic`'s stream: its events and every consumer group of it. Deleting a
    /// topic that has no stream is fine.
    pub async fn delete_topic(&self, topic: &str) -> Result<()> {
        let name = codec::stream_name(topic)?;
        let js = self.jetstream().await?;
        self.known().remove(&name);
        match js.delete_stream(&name).await {
            Ok(_) => Ok(()),
            Err(e) if is_stream_not_found(&e) => Ok(()),
            Err(e) => Err(self.failed(&format!("cannot delete stream {name}"), e)),
        }
    }

    async fn jetstream(&self) -> Result<jetstream::Context> {
        Ok(jetstream::new(self.inner.connector.client().await?))
    }

    /// The stream of `topic`, made when missing.
    async fn stream(&self, js: &jetstream::Context, topic: &str) -> Result<stream::Stream> {
        let config = stream_config(topic)?;
        let name = config.name.clone();
        let stream = js
            .get_or_create_stream(config)
            .await
            .map_err(|e| self.failed(&format!("cannot create stream {name}"), e))?;
        self.known().insert(name);
        Ok(stream)
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.inner.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A 503 for a failed JetStream call, saying what to check.
    fn failed(&self, what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::unavailable(
            ID,
            format!(
                "{what}: {e}; is nats-server running with JetStream (-js) at {}? \
                 set events.addresses (MICRO_EVENTS_ADDRESS) to where it is",
                self.inner.connector.address()
            ),
        )
        .with_source(e)
    }

    /// Publishes once and waits for the ack.
    async fn publish_acked(
        &self,
        js: &jetstream::Context,
        subject: &str,
        headers: &async_nats::HeaderMap,
        payload: &Bytes,
    ) -> std::result::Result<jetstream::publish::PublishAck, jetstream::context::PublishError> {
        js.publish_with_headers(subject.to_string(), headers.clone(), payload.clone())
            .await?
            .await
    }
}

/// The stream configuration of `topic`: one subject, file storage, everything kept.
fn stream_config(topic: &str) -> Result<stream::Config> {
    Ok(stream::Config {
        name: codec::stream_name(topic)?,
        subjects: vec![codec::subject(topic)?],
        storage: stream::StorageType::File,
        description: Some(format!("micro events of topic {topic:?}")),
        ..Default::default()
    })
}

/// Where a new consumer starts.
fn deliver_policy(offset: Offset) -> Result<pull::Config> {
    let deliver_policy = match offset {
        Offset::Latest => jetstream::consumer::DeliverPolicy::New,
        Offset::Earliest => jetstream::consumer::DeliverPolicy::All,
        Offset::Since(time) => jetstream::consumer::DeliverPolicy::ByStartTime {
            start_time: async_nats::datetime::from_nanos(codec::nanos(time)).map_err(|e| {
                Error::bad_request(ID, format!("offset {offset:?} is out of range: {e}"))
            })?,
        },
        Offset::Sequence(n) => jetstream::consumer::DeliverPolicy::ByStartSequence {
            start_sequence: n.max(1),
        },
        other => {
            return Err(Error::bad_request(
                ID,
                format!(
                    "offset {other:?} is not supported by nats: use latest, earliest, since \
                     or sequence"
                ),
            ));
        }
    };
    Ok(pull::Config {
        deliver_policy,
        ..Default::default()
    })
}

#[async_trait]
impl Events for NatsEvents {
    fn name(&self) -> &str {
        "nats"
    }

    async fn publish(&self, topic: &str, payload: Bytes, options: PublishOptions) -> Result<()> {
        let event = Event::to_publish(topic, payload, options)?;
        let headers = codec::encode(&event)?;
        let (subject, name) = (codec::subject(topic)?, codec::stream_name(topic)?);
        let js = self.jetstream().await?;
        // Sent while disconnected, the message would wait in the client's buffer and could
        // be stored after this call failed: refuse it before sending instead.
        if js.client().connection_state() != async_nats::connection::State::Connected {
            return Err(Error::unavailable(
                ID,
                format!(
                    "publish on topic {topic:?}: not connected to nats-server at {} \
                     (reconnecting); nothing was sent, publish again later",
                    self.inner.connector.address()
                ),
            ));
        }
        if !self.known().contains(&name) {
            self.stream(&js, topic).await?;
        }
        let acked = match self
            .publish_acked(&js, &subject, &headers, &event.payload)
            .await
        {
            // The stream went away (deleted by hand): make it again, publish once more.
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::StreamNotFound => {
                self.known().remove(&name);
                self.stream(&js, topic).await?;
                self.publish_acked(&js, &subject, &headers, &event.payload)
                    .await
            }
            other => other,
        };
        acked.map(|_| ()).map_err(|e| {
            let detail = format!(
                "publish on topic {topic:?} (subject {subject}) was not confirmed by \
                 JetStream: it may or may not be stored (event id {})",
                event.id
            );
            match e.kind() {
                jetstream::context::PublishErrorKind::MaxPayloadExceeded => {
                    Error::too_large(ID, format!("event on topic {topic:?} is too large: {e}"))
                }
                jetstream::context::PublishErrorKind::TimedOut => {
                    Error::timeout(ID, format!("{detail}: {e}")).with_source(e)
                }
                _ => self.failed(&detail, e),
            }
        })
    }

    async fn consume(&self, topic: &str, options: ConsumeOptions) -> Result<Consumer> {
        micro_core::events::check_consume(ID, topic, &options)?;
        let mut config = deliver_policy(options.offset)?;
        let js = self.jetstream().await?;
        let private = options.group.is_none();
        let name = match &options.group {
            Some(group) => codec::consumer_name(group)?,
            None => {
                // `micro_private_` cannot come out of `escape` (`_p` is no escape).
                let inbox = js.client().new_inbox();
                let unique = inbox.rsplit('.').next().unwrap_or_default();
                format!("micro_private_{unique}")
            }
        };
        config.durable_name = Some(name.clone());
        config.ack_policy = jetstream::consumer::AckPolicy::Explicit;
        config.ack_wait = if options.ack_wait.is_zero() {
            ConsumeOptions::default().ack_wait
        } else {
            options.ack_wait
        };
        config.max_deliver = options
            .retry_limit
            .map_or(-1, |limit| i64::from(limit).saturating_add(1));
        config.description = Some(match &options.group {
            Some(group) => format!("micro group {group:?} of topic {topic:?}"),
            None => format!("micro private consumer of topic {topic:?}"),
        });
        if private {
            config.inactive_threshold = PRIVATE_IDLE;
        }
        let stream = self.stream(&js, topic).await?;
        let pull = stream
            .get_or_create_consumer(&name, config.clone())
            .await
            .map_err(|e| {
                self.failed(
                    &format!(
                        "cannot make consumer {name} of topic {topic:?} (stream {})",
                        { stream.cached_info().config.name.clone() }
                    ),
                    e,
                )
            })?;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let feed = consumer::Feed {
            topic: topic.to_string(),
            stream_config: stream_config(topic)?,
            js,
            stream,
            consumer: pull,
            config,
            private,
            auto_ack: options.auto_ack,
            logger: self.inner.logger.clone(),
            cancel: self.inner.cancel.clone(),
            tx,
            last: 0,
        };
        tokio::spawn(feed.run());
        Ok(Consumer::new(rx))
    }

    async fn read(&self, topic: &str, options: ReadOptions) -> Result<Vec<Event>> {
        if topic.is_empty() {
            return Err(empty_topic());
        }
        let name = codec::stream_name(topic)?;
        let js = self.jetstream().await?;
        let stream = match js.get_stream(&name).await {
            Ok(stream) => stream,
            Err(e) if is_stream_not_found(&e) => return Ok(Vec::new()),
            Err(e) => return Err(self.failed(&format!("cannot read stream {name}"), e)),
        };
        let state = &stream.cached_info().state;
        let start = options.after.map_or(1, |after| after.saturating_add(1));
        if state.messages == 0 || start > state.last_sequence {
            return Ok(Vec::new());
        }
        let config = pull::Config {
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ack_policy: jetstream::consumer::AckPolicy::None,
            memory_storage: true,
            inactive_threshold: Duration::from_secs(30),
            description: Some("micro history read".to_string()),
            ..Default::default()
        };
        let reader = stream
            .create_consumer(config)
            .await
            .map_err(|e| self.failed(&format!("cannot read stream {name}"), e))?;
        let result = self.read_with(topic, &reader, &options).await;
        // Best effort: the server removes it after 30 s idle anyway.
        let _ = stream.delete_consumer(&reader.cached_info().name).await;
        result
    }
}

impl NatsEvents {
    /// Reads `options.limit` events after skipping `options.offset`, through `reader`.
    async fn read_with(
        &self,
        topic: &str,
        reader: &jetstream::consumer::PullConsumer,
        options: &ReadOptions,
    ) -> Result<Vec<Event>> {
        let mut skip = options.offset;
        let mut out = Vec::new();
        let mut pending = reader.cached_info().num_pending;
        while pending > 0 && (options.limit == 0 || out.len() < options.limit) {
            let want = match options.limit {
                0 => READ_BATCH,
                limit => (limit - out.len()).saturating_add(skip).min(READ_BATCH),
            };
            let mut batch = reader
                .fetch()
                .max_messages(want)
                .expires(READ_WAIT)
                .messages()
                .await
                .map_err(|e| self.failed(&format!("cannot read topic {topic:?}"), e))?;
            let mut got = 0;
            while let Some(message) = batch.next().await {
                let message = message.map_err(|e| {
                    Error::unavailable(ID, format!("reading topic {topic:?} failed: {e}"))
                })?;
                got += 1;
                let Ok(info) = message.info() else {
                    continue;
                };
                pending = info.pending;
                let sequence = info.stream_sequence;
                let message = message.message;
                match codec::decode(topic, sequence, message.headers.as_ref(), message.payload) {
                    Ok(event) if skip > 0 => {
                        skip -= 1;
                        drop(event);
                    }
                    Ok(event) => {
                        out.push(event);
                        if options.limit != 0 && out.len() >= options.limit {
                            break;
                        }
                    }
                    Err(reason) => consumer::skipped(
                        &self.inner.logger,
                        message.subject.as_str(),
                        sequence,
                        &reason,
                    ),
                }
            }
            if got == 0 {
                break;
            }
        }
        Ok(out)
    }
}

/// Whether `e` says the stream does not exist.
fn is_stream_not_found(e: &jetstream::context::GetStreamError) -> bool {
    matches!(
        e.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(ref js)
            if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

/// The plugin-table entry: `events: { plugin: nats, addresses: [nats://host:4222] }`.
pub fn plugin() -> Plugin {
    Plugin::events("nats", "nats", |ctx| {
        let config: EventsConfig = ctx.options()?;
        Ok(Arc::new(
            NatsEvents::new(&config.addresses).with_logger(ctx.logger.clone()),
        ))
    })
}
