//! Publish/subscribe: topics, queue groups (one member of each group gets a message) and
//! broadcast (every subscriber without a group gets it), with acknowledgement.

use crate::{Error, Result};
use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Arc;

/// A published message: headers and body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Headers (`Micro-Topic`, `Micro-Id`, `Content-Type`, ...).
    pub header: HashMap<String, String>,
    /// Encoded body.
    pub body: Bytes,
}

impl Message {
    /// A message with the given body and no headers.
    pub fn new(body: impl Into<Bytes>) -> Self {
        Message {
            header: HashMap::new(),
            body: body.into(),
        }
    }

    /// The same message with one more header.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.header.insert(key.into(), value.into());
        self
    }
}

/// Settles a delivery with the broker. Brokers without acknowledgement use [`NoAck`].
/// Async and fallible: with a networked broker (RabbitMQ, Redis) an ack is a round trip that
/// can fail.
#[async_trait]
pub trait Acker: Send + Sync {
    /// The message was handled.
    async fn ack(&self) -> Result<()>;
    /// The message was not handled; the broker may deliver it again.
    async fn nack(&self) -> Result<()>;
}

/// For brokers where delivery is final.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoAck;

#[async_trait]
impl Acker for NoAck {
    async fn ack(&self) -> Result<()> {
        Ok(())
    }
    async fn nack(&self) -> Result<()> {
        Ok(())
    }
}

/// One delivery of a message to a subscriber.
#[derive(Clone)]
pub struct Delivery {
    /// Topic it was published on.
    pub topic: String,
    /// The message.
    pub message: Message,
    acker: Arc<dyn Acker>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("topic", &self.topic)
            .field("message", &self.message)
            .finish()
    }
}

impl Delivery {
    /// A delivery settled through `acker`.
    pub fn new(topic: impl Into<String>, message: Message, acker: Arc<dyn Acker>) -> Self {
        Delivery {
            topic: topic.into(),
            message,
            acker,
        }
    }

    /// Acknowledges the message (only needed when the subscription is not auto-ack). An
    /// error means the broker did not take it: the message may come again.
    pub async fn ack(&self) -> Result<()> {
        self.acker.ack().await
    }

    /// Refuses the message so the broker may redeliver it.
    pub async fn nack(&self) -> Result<()> {
        self.acker.nack().await
    }
}

/// Called for each delivery. Returning `Ok` acks it when the subscription auto-acks;
/// returning `Err` nacks it.
pub type Handler = Arc<dyn Fn(Delivery) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// Wraps an async closure as a [`Handler`].
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    Arc::new(move |d| Box::pin(f(d)))
}

option_struct! {
    /// Options of [`Broker::subscribe`].
    #[derive(Debug, Clone)]
    pub struct SubscribeOptions {
        /// Queue group: each message goes to one member of the group. `None` = broadcast.
        pub queue: Option<String>,
        /// Ack after the handler returns `Ok` (default `true`).
        pub auto_ack: bool,
    }
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            queue: None,
            auto_ack: true,
        }
    }
}

/// A live subscription; unsubscribing stops delivery.
#[async_trait]
pub trait Subscriber: Send + Sync {
    /// The topic subscribed to.
    fn topic(&self) -> &str;
    /// The options it was made with.
    fn options(&self) -> &SubscribeOptions;
    /// Stops delivery to this subscriber.
    async fn unsubscribe(&self) -> Result<()>;
}

/// A pub/sub backend.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Plugin name, e.g. `memory`.
    fn name(&self) -> &str;
    /// Where the broker is (addresses or a local endpoint).
    fn address(&self) -> String;
    /// Connects to the backend (idempotent).
    async fn connect(&self) -> Result<()>;
    /// Disconnects; subscriptions stop.
    async fn disconnect(&self) -> Result<()>;
    /// Publishes `message` on `topic`.
    async fn publish(&self, topic: &str, message: Message) -> Result<()>;
    /// Delivers messages on `topic` to `handler`.
    async fn subscribe(
        &self,
        topic: &str,
        handler: Handler,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscriber>>;
}

/// The error a broker returns for an empty topic.
pub fn empty_topic() -> Error {
    Error::bad_request("go.micro.broker", "topic is empty: give a topic name")
}
