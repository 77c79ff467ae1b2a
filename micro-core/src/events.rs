//! Event streaming: durable topics consumed by groups from an offset, with ack, nack,
//! redelivery after an ack timeout and a retry limit; plus reading history.

use crate::{Error, Result};
use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

/// Settles an event with its stream. Async and fallible: on a networked backend (JetStream,
/// Redis streams) an ack is a round trip that can fail, and the caller must learn that the
/// event will come again.
#[async_trait]
pub trait EventAcker: Send + Sync {
    /// Handled: do not deliver again.
    async fn ack(&self) -> Result<()>;
    /// Not handled: deliver again (until the retry limit).
    async fn nack(&self) -> Result<()>;
}

/// One event on a topic.
#[derive(Clone, Serialize, Deserialize)]
pub struct Event {
    /// Unique id.
    pub id: String,
    /// Topic it was published on.
    pub topic: String,
    /// Its position in the topic, given by the backend (JetStream stream sequence, memory
    /// log position), starting at 1 and growing with each event; `0` until published.
    /// What [`Offset::Sequence`] and [`ReadOptions::after`] take.
    #[serde(default)]
    pub sequence: u64,
    /// When it was published.
    pub timestamp: SystemTime,
    /// Metadata given at publish time.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Encoded payload.
    pub payload: Bytes,
    #[serde(skip)]
    acker: Option<Arc<dyn EventAcker>>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("id", &self.id)
            .field("topic", &self.topic)
            .field("sequence", &self.sequence)
            .field("timestamp", &self.timestamp)
            .field("metadata", &self.metadata)
            .field("payload", &self.payload)
            .finish()
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.topic == other.topic
            && self.sequence == other.sequence
            && self.timestamp == other.timestamp
            && self.metadata == other.metadata
            && self.payload == other.payload
    }
}

impl Event {
    /// A new event with a fresh id, stamped now.
    pub fn new(topic: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Event {
            id: uuid::Uuid::new_v4().to_string(),
            topic: topic.into(),
            sequence: 0,
            timestamp: SystemTime::now(),
            metadata: BTreeMap::new(),
            payload: payload.into(),
            acker: None,
        }
    }

    /// The event a backend stores for [`Events::publish`]: a fresh id, the options'
    /// metadata, their timestamp or now. An empty topic is a 400 ([`empty_topic`]).
    pub fn to_publish(topic: &str, payload: Bytes, options: PublishOptions) -> Result<Self> {
        if topic.is_empty() {
            return Err(empty_topic());
        }
        let mut event = Event::new(topic, payload);
        event.metadata = options.metadata;
        if let Some(timestamp) = options.timestamp {
            event.timestamp = timestamp;
        }
        Ok(event)
    }

    /// The same event, settled through `acker` when consumed.
    pub fn with_acker(mut self, acker: Arc<dyn EventAcker>) -> Self {
        self.acker = Some(acker);
        self
    }

    /// Acknowledges the event. Events read from history, or consumed with auto-ack, need none.
    /// An error means the backend did not take the ack: the event may come again.
    pub async fn ack(&self) -> Result<()> {
        match &self.acker {
            Some(acker) => acker.ack().await,
            None => Ok(()),
        }
    }

    /// Asks for the event to be delivered again.
    pub async fn nack(&self) -> Result<()> {
        match &self.acker {
            Some(acker) => acker.nack().await,
            None => Ok(()),
        }
    }
}

/// Where a new consumer group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Offset {
    /// Only events published after the consumer started (default).
    #[default]
    Latest,
    /// Every event kept on the topic.
    Earliest,
    /// Events published at or after this time.
    Since(SystemTime),
    /// Events from this [`Event::sequence`] on (the event with it included): to resume
    /// where a consumer stopped, give the last handled sequence + 1.
    Sequence(u64),
}

option_struct! {
    /// Options of [`Events::publish`].
    #[derive(Debug, Clone, Default)]
    pub struct PublishOptions {
        /// Metadata stored with the event.
        pub metadata: BTreeMap<String, String>,
        /// Timestamp to use instead of now.
        pub timestamp: Option<SystemTime>,
    }
}

option_struct! {
    /// Options of [`Events::consume`].
    #[derive(Debug, Clone)]
    pub struct ConsumeOptions {
        /// Consumer group: each event goes to one consumer of the group, and the group's
        /// position is shared. `None` = a private group for this consumer alone.
        pub group: Option<String>,
        /// Where a new group starts.
        pub offset: Offset,
        /// Ack each event as it is handed out (default `true`).
        pub auto_ack: bool,
        /// Without auto-ack: redeliver an event not acked within this long.
        pub ack_wait: Duration,
        /// Deliveries after the first before an event is dropped; `None` = no limit.
        pub retry_limit: Option<u32>,
    }
}

impl Default for ConsumeOptions {
    fn default() -> Self {
        ConsumeOptions {
            group: None,
            offset: Offset::Latest,
            auto_ack: true,
            ack_wait: Duration::from_secs(30),
            retry_limit: None,
        }
    }
}

option_struct! {
    /// Options of [`Events::read`].
    #[derive(Debug, Clone, Default)]
    pub struct ReadOptions {
        /// At most this many events (`0` = no limit).
        pub limit: usize,
        /// Skip this many events first (oldest first), after `after` applied.
        pub offset: usize,
        /// Only events with a [`Event::sequence`] greater than this: the next page starts
        /// after the last event of the previous one. Backends seek to the position (no
        /// scan of what comes before), unlike `offset`.
        pub after: Option<u64>,
    }
}

/// The events a consumer receives; ends when the stream is closed or the consumer dropped.
#[derive(Debug)]
pub struct Consumer {
    receiver: mpsc::Receiver<Event>,
}

impl Consumer {
    /// A consumer reading from `receiver` (for plugin authors).
    pub fn new(receiver: mpsc::Receiver<Event>) -> Self {
        Consumer { receiver }
    }

    /// The next event.
    pub async fn next(&mut self) -> Option<Event> {
        self.receiver.recv().await
    }
}

/// An event streaming backend.
#[async_trait]
pub trait Events: Send + Sync + 'static {
    /// Plugin name, e.g. `memory`.
    fn name(&self) -> &str;
    /// Appends an event to `topic`.
    async fn publish(&self, topic: &str, payload: Bytes, options: PublishOptions) -> Result<()>;
    /// Starts consuming `topic`.
    async fn consume(&self, topic: &str, options: ConsumeOptions) -> Result<Consumer>;
    /// Events kept on `topic`, oldest first.
    async fn read(&self, topic: &str, options: ReadOptions) -> Result<Vec<Event>>;
}

/// Checks what [`Events::consume`] is given, alike for every plugin: a topic, a group name
/// that is not empty, and an `ack_wait` when events are acked by hand (`id`: the plugin's
/// error id).
pub fn check_consume(id: &str, topic: &str, options: &ConsumeOptions) -> Result<()> {
    if topic.is_empty() {
        return Err(empty_topic());
    }
    if !options.auto_ack && options.ack_wait.is_zero() {
        return Err(Error::bad_request(
            id,
            "ack_wait must be longer than zero when auto_ack is off",
        ));
    }
    if options.group.as_deref() == Some("") {
        return Err(Error::bad_request(
            id,
            "consumer group name is empty: give a name, or none for a private group",
        ));
    }
    Ok(())
}

/// The error for an empty topic.
pub fn empty_topic() -> Error {
    Error::bad_request("go.micro.events", "topic is empty: give a topic name")
}
