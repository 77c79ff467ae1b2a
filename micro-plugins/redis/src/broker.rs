//! The `redis` broker: broadcast on Redis pub/sub, queue groups on a Redis stream.
//!
//! - **Broadcast**: a message on topic `orders` is `PUBLISH`ed on the channel `orders` (the
//!   topic as it is, as go-micro's redis broker does). Each broadcast subscription has a
//!   pub/sub connection of its own. Pub/sub is at-most-once: a subscriber cut off (server
//!   restart, network) misses what was published meanwhile; it subscribes again by itself.
//! - **Envelope**: the payload is [`envelope::MAGIC`], the headers as a JSON object behind
//!   its length (4 bytes, big-endian), then the body as it is. A payload without the magic
//!   (`redis-cli PUBLISH orders hello`) is delivered as a body without headers.
//! - **Queue groups**: a queue subscription joins the Redis consumer group named after the
//!   queue on the stream `micro:broker:orders` (made with `MKSTREAM`, starting at messages
//!   published from then on). `publish` is one Lua script: `PUBLISH`, then `XADD` (field
//!   `m` = the envelope, `MAXLEN ~` [`RedisBrokerOptions::queue_max_len`]) only when that
//!   stream exists, so topics without queue subscribers keep no stream. Each message goes to
//!   one member of each group (`XREADGROUP`); see [`queue`] for acks and redelivery.
//! - Each subscription has one task calling its handler one message at a time, in order. A
//!   handler's `Err` or panic is logged and the message dropped (acked), as go-micro does.
//! - `unsubscribe` (or `disconnect`, for every subscription) stops handler calls: none starts
//!   after it returns.

pub mod envelope;
mod queue;

use crate::Connector;
use futures::{FutureExt, StreamExt};
use micro_core::backoff::Backoff;
use micro_core::broker::{
    Acker, Broker, Delivery, Handler, Message, NoAck, SubscribeOptions, Subscriber, empty_topic,
};
use micro_core::config::BrokerConfig;
use micro_core::logger::Logger;
use micro_core::{Error, Plugin, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub(crate) const ID: &str = "go.micro.broker.redis";
/// The prefix of the stream key of a topic's queue groups.
pub const QUEUE_PREFIX: &str = "micro:broker:";

/// `PUBLISH`, then `XADD` to the queue stream when it exists (a queue group listens).
const PUBLISH_SCRIPT: &str = r"
local n = redis.call('PUBLISH', ARGV[1], ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'm', ARGV[2])
end
return n
";

/// Options of the `redis` broker, read from the `broker:` section (flags
/// `--broker_queue_max_len`, `--broker_ack_wait`; env `MICRO_BROKER_QUEUE_MAX_LEN`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, micro_derive::Component)]
#[serde(default)]
#[component(section = "broker", plugin = "redis")]
pub struct RedisBrokerOptions {
    /// About how many messages a topic's queue stream keeps (`XADD MAXLEN ~`): a queue group
    /// further behind than that loses the oldest.
    #[component(default = 10_000)]
    pub queue_max_len: u64,
    /// A queue-group message neither acked nor nacked within this long goes to another
    /// member of the group (or the same one).
    #[serde(with = "micro_core::config::duration")]
    #[component(default = Duration::from_secs(30))]
    pub ack_wait: Duration,
}

/// A broker on Redis pub/sub and streams. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct RedisBroker {
    inner: Arc<Inner>,
}

struct Inner {
    connector: Connector,
    options: RedisBrokerOptions,
    logger: Logger,
    script: redis::Script,
    /// Every live subscription, so `disconnect` can stop them.
    subscriptions: Mutex<Vec<Weak<CancellationToken>>>,
    /// Topics this instance made queue groups on.
    queues: Mutex<BTreeSet<String>>,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("address", &self.inner.connector.address())
            .finish_non_exhaustive()
    }
}

impl RedisBroker {
    /// A broker on the Redis server at the first of `addresses` (empty =
    /// `redis://127.0.0.1:6379`), connecting on first use.
    pub fn new(addresses: &[String], options: RedisBrokerOptions, logger: Logger) -> Self {
        RedisBroker {
            inner: Arc::new(Inner {
                connector: Connector::new(addresses, "broker"),
                options,
                logger,
                script: redis::Script::new(PUBLISH_SCRIPT),
                subscriptions: Mutex::new(Vec::new()),
                queues: Mutex::new(BTreeSet::new()),
            }),
        }
    }

    fn failed(&self, what: &str, e: &redis::RedisError) -> Error {
        Error::unavailable(
            ID,
            format!(
                "{what}: {e}; is redis-server running at {}? set broker.addresses \
                 (MICRO_BROKER_ADDRESS) to where it is",
                self.inner.connector.address()
            ),
        )
    }

    /// The topics this instance made queue groups on (their streams are
    /// [`queue_key`]`(topic)`), sorted.
    pub fn queue_topics(&self) -> Vec<String> {
        let queues = self.inner.queues.lock().unwrap_or_else(|e| e.into_inner());
        queues.iter().cloned().collect()
    }

    fn track(&self, stop: &Arc<CancellationToken>) {
        let mut subscriptions = self
            .inner
            .subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        subscriptions.retain(|s| s.strong_count() > 0);
        subscriptions.push(Arc::downgrade(stop));
    }
}

/// The stream key of `topic`'s queue groups.
pub fn queue_key(topic: &str) -> String {
    format!("{QUEUE_PREFIX}{topic}")
}

/// Calls `handler` with `delivery` unless `stop` comes first; logs a refusal or a panic.
/// `false` when stopped.
pub(crate) async fn call(
    handler: &Handler,
    delivery: Delivery,
    stop: &CancellationToken,
    logger: &Logger,
) -> Option<bool> {
    let topic = delivery.topic.clone();
    let call = AssertUnwindSafe(handler(delivery)).catch_unwind();
    let outcome = tokio::select! {
        biased;
        outcome = call => outcome,
        () = stop.cancelled() => return None,
    };
    match outcome {
        Ok(Ok(())) => Some(true),
        Ok(Err(err)) => {
            logger.in_scope(
                || tracing::debug!(%topic, %err, "handler refused a message; it is dropped"),
            );
            Some(false)
        }
        Err(_) => {
            logger.in_scope(|| tracing::warn!(%topic, "handler panicked; the message is dropped"));
            Some(false)
        }
    }
}

/// Delivers the channel `topic` to `handler` until `stop`, subscribing again after the
/// connection is lost.
async fn broadcast(
    client: redis::Client,
    mut pubsub: Option<redis::aio::PubSub>,
    topic: String,
    handler: Handler,
    stop: Arc<CancellationToken>,
    logger: Logger,
) {
    let acker: Arc<dyn Acker> = Arc::new(NoAck);
    let mut backoff = Backoff::new();
    let mut lost = false;
    loop {
        let connection = match pubsub.take() {
            Some(pubsub) => Ok(pubsub),
            None => {
                async {
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe(&topic).await?;
                    Ok::<_, redis::RedisError>(pubsub)
                }
                .await
            }
        };
        let connection = match connection {
            Ok(connection) => {
                if backoff.succeeded() || std::mem::take(&mut lost) {
                    logger.in_scope(|| tracing::info!(%topic, "subscribed again"));
                }
                connection
            }
            Err(e) => {
                let (first, wait) = backoff.failed();
                if first {
                    logger.in_scope(|| {
                        tracing::warn!(%topic, "subscribing to Redis failed ({e}); trying again")
                    });
                }
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = stop.cancelled() => return,
                }
                continue;
            }
        };
        let mut messages = connection.into_on_message();
        loop {
            let message = tokio::select! {
                biased;
                () = stop.cancelled() => return,
                message = messages.next() => message,
            };
            let Some(message) = message else { break };
            let message = envelope::decode(message.get_payload_bytes());
            let delivery = Delivery::new(topic.clone(), message, acker.clone());
            if call(&handler, delivery, &stop, &logger).await.is_none() {
                return;
            }
        }
        logger.in_scope(|| {
            tracing::warn!(%topic, "the pub/sub connection to Redis was lost; subscribing again \
                (messages published meanwhile are missed)")
        });
        lost = true;
    }
}

/// A live subscription.
struct RedisSubscriber {
    topic: String,
    options: SubscribeOptions,
    stop: Arc<CancellationToken>,
}

#[async_trait::async_trait]
impl Subscriber for RedisSubscriber {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn options(&self) -> &SubscribeOptions {
        &self.options
    }

    async fn unsubscribe(&self) -> Result<()> {
        self.stop.cancel();
        Ok(())
    }
}

impl Drop for RedisSubscriber {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[async_trait::async_trait]
impl Broker for RedisBroker {
    fn name(&self) -> &str {
        "redis"
    }

    fn address(&self) -> String {
        self.inner.connector.address().to_string()
    }

    async fn connect(&self) -> Result<()> {
        self.inner.connector.connection().await.map(drop)
    }

    async fn disconnect(&self) -> Result<()> {
        let subscriptions = std::mem::take(
            &mut *self
                .inner
                .subscriptions
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for stop in subscriptions.iter().filter_map(Weak::upgrade) {
            stop.cancel();
        }
        Ok(())
    }

    async fn publish(&self, topic: &str, message: Message) -> Result<()> {
        if topic.is_empty() {
            return Err(empty_topic());
        }
        let payload = envelope::encode(topic, &message)?;
        let mut conn = self.inner.connector.connection().await?;
        self.inner
            .script
            .key(queue_key(topic))
            .arg(topic)
            .arg(payload)
            .arg(self.inner.options.queue_max_len.max(1))
            .invoke_async::<i64>(&mut conn)
            .await
            .map(drop)
            .map_err(|e| {
                self.failed(
                    &format!("publish on {topic:?} failed; it may or may not have been sent"),
                    &e,
                )
            })
    }

    async fn subscribe(
        &self,
        topic: &str,
        handler: Handler,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscriber>> {
        if topic.is_empty() {
            return Err(empty_topic());
        }
        let stop = Arc::new(CancellationToken::new());
        let client = self.inner.connector.client()?;
        match options.queue.clone().filter(|q| !q.is_empty()) {
            Some(queue) => {
                let mut conn = self.inner.connector.connection().await?;
                let key = queue_key(topic);
                (self.inner.queues.lock().unwrap_or_else(|e| e.into_inner()))
                    .insert(topic.to_string());
                crate::events::create_group(&mut conn, &key, &queue, "$")
                    .await
                    .map_err(|e| {
                        self.failed(
                            &format!("cannot join queue group {queue:?} of {topic:?}"),
                            &e,
                        )
                    })?;
                let group = queue::Group::new(
                    client,
                    conn,
                    topic,
                    queue,
                    self.inner.options.ack_wait,
                    options.auto_ack,
                    self.inner.logger.clone(),
                )
                .await
                .map_err(|e| self.failed(&format!("cannot subscribe to {topic:?}"), &e))?;
                tokio::spawn(group.run(handler, stop.clone()));
            }
            None => {
                // Subscribed before this returns, so a publish that follows reaches it.
                let subscribed = async {
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe(topic).await?;
                    Ok::<_, redis::RedisError>(pubsub)
                }
                .await
                .map_err(|e| self.failed(&format!("cannot subscribe to {topic:?}"), &e))?;
                tokio::spawn(broadcast(
                    client,
                    Some(subscribed),
                    topic.to_string(),
                    handler,
                    stop.clone(),
                    self.inner.logger.clone(),
                ));
            }
        }
        self.track(&stop);
        Ok(Box::new(RedisSubscriber {
            topic: topic.to_string(),
            options,
            stop,
        }))
    }
}

/// The `redis` broker plugin: `broker: { plugin: redis, addresses: [redis://host:6379] }`.
pub fn plugin() -> Plugin {
    Plugin::broker("redis", "redis", |ctx| {
        let config = ctx.options::<BrokerConfig>()?;
        let options = ctx.options::<RedisBrokerOptions>()?;
        Ok(Arc::new(RedisBroker::new(
            &config.addresses,
            options,
            ctx.logger.clone(),
        )))
    })
    .with_options::<RedisBrokerOptions>()
}
