//! The `nats` broker: pub/sub on core NATS subjects.
//!
//! Semantics:
//! - A topic is the NATS subject itself (`user.created`), as go-micro's nats broker does, so
//!   Go services on the same server interoperate. Topics are checked: no spaces, no empty
//!   tokens (`a..b`, a leading or trailing dot); publishing to a wildcard (`*`, `>`) is a
//!   400, subscribing to one is allowed (a NATS feature).
//! - A subscription without a queue gets every message (broadcast); one with a queue is a
//!   NATS queue subscription: each message goes to one member of the group.
//! - Message headers travel as NATS headers, the body as the payload.
//! - Each subscription has one task calling its handler one message at a time, in order. A
//!   handler's `Err` or panic is logged and the message dropped: core NATS is at-most-once
//!   and deliveries carry [`NoAck`]. Use the `nats` events plugin (JetStream) for delivery
//!   that survives a crash.
//! - `publish` while the connection is known to be down waits for the reconnect up to
//!   [`NatsBrokerOptions::publish_timeout`] and then fails with a retryable 503. A message
//!   handed to a connection that breaks before the client notices can be lost (core NATS is
//!   at-most-once), unless [`NatsBrokerOptions::confirm`] is on: then each publish waits for
//!   the server's answer to a flush, and `Ok` means the server has it. Subscriptions are
//!   restored by async-nats after a reconnect; messages published while a subscriber was cut
//!   off are not replayed to it.
//! - `unsubscribe` (or `disconnect`, for every subscription) stops handler calls: none
//!   starts after it returns.

use async_nats::Client;
use async_nats::connection::State;
use futures::{FutureExt, StreamExt};
use micro_core::broker::{
    Acker, Broker, Delivery, Handler, Message, NoAck, SubscribeOptions, Subscriber, empty_topic,
};
use micro_core::config::BrokerConfig;
use micro_core::logger::Logger;
use micro_core::{Error, Plugin, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::Connector;

const ID: &str = "go.micro.broker.nats";

/// Options of the `nats` broker, read from the `broker:` section (flag
/// `--broker_publish_timeout`, env `MICRO_BROKER_PUBLISH_TIMEOUT`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, micro_derive::Component)]
#[serde(default)]
#[component(section = "broker", plugin = "nats")]
pub struct NatsBrokerOptions {
    /// How long a publish waits for a lost connection to come back before failing.
    #[serde(with = "micro_core::config::duration")]
    #[component(default = Duration::from_secs(5))]
    pub publish_timeout: Duration,
    /// Wait for the server to have each message (one round trip per publish), so that
    /// `Ok` means the server got it even when the connection breaks just then. Off by
    /// default, as go-micro: a publish is handed to the connection and returns.
    pub confirm: bool,
}

/// A broker on NATS subjects. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct NatsBroker {
    inner: Arc<Inner>,
}

struct Inner {
    connector: Connector,
    options: NatsBrokerOptions,
    logger: Logger,
    /// Every live subscription, so `disconnect` can stop them.
    subscriptions: Mutex<Vec<Weak<Active>>>,
}

impl std::fmt::Debug for NatsBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBroker")
            .field("address", &self.inner.connector.address())
            .finish()
    }
}

impl NatsBroker {
    /// A broker for the servers at `addresses` (empty = `nats://127.0.0.1:4222`).
    pub fn new(addresses: &[String], options: NatsBrokerOptions, logger: Logger) -> Self {
        Self::with_connector(Connector::new(addresses, "broker"), options, logger)
    }

    /// A broker on an existing connector (e.g. one made with [`Connector::with_client`]).
    pub fn with_connector(
        connector: Connector,
        options: NatsBrokerOptions,
        logger: Logger,
    ) -> Self {
        NatsBroker {
            inner: Arc::new(Inner {
                connector,
                options,
                logger,
                subscriptions: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The connection, waiting up to the publish timeout for it to be up.
    async fn connected(&self) -> Result<Client> {
        let client = self.inner.connector.client().await?;
        let deadline = tokio::time::Instant::now() + self.inner.options.publish_timeout;
        while client.connection_state() != State::Connected {
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::unavailable(
                    ID,
                    format!(
                        "the connection to NATS at {} is down and did not come back within \
                         {:?}; the message was not published: retry later",
                        self.inner.connector.address(),
                        self.inner.options.publish_timeout
                    ),
                )
                .retryable());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(client)
    }
}

/// Checks a topic as a NATS subject; `publish` also refuses wildcards.
fn check_topic(topic: &str, publish: bool) -> Result<()> {
    if topic.is_empty() {
        return Err(empty_topic());
    }
    let bad = |why: &str| {
        Err(Error::bad_request(
            ID,
            format!("topic {topic:?} is not a NATS subject: {why}"),
        ))
    };
    if topic.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("it holds a space or control character; use dots to separate tokens");
    }
    if topic.split('.').any(str::is_empty) {
        return bad("it has an empty token (a leading, trailing or double dot)");
    }
    if publish && topic.split('.').any(|t| t == "*" || t == ">") {
        return bad("messages cannot be published to a wildcard; name one subject");
    }
    Ok(())
}

/// A message's headers as NATS headers (`None` when it has none); names and values must
/// fit the NATS header block.
fn nats_headers(topic: &str, message: &Message) -> Result<Option<async_nats::HeaderMap>> {
    if message.header.is_empty() {
        return Ok(None);
    }
    let mut headers = async_nats::HeaderMap::new();
    for (key, value) in &message.header {
        if key.is_empty()
            || key
                .chars()
                .any(|c| c == ':' || c.is_whitespace() || c.is_control())
            || value.chars().any(|c| c == '\r' || c == '\n')
        {
            return Err(Error::bad_request(
                ID,
                format!(
                    "header {key:?} of a message on {topic:?} cannot travel as a NATS header: \
                     names need printable characters without ':' or spaces, values no line breaks"
                ),
            ));
        }
        headers.insert(key.as_str(), value.as_str());
    }
    Ok(Some(headers))
}

/// A delivered NATS message as a micro [`Delivery`], settled by `acker`.
fn delivery(message: async_nats::Message, acker: &Arc<dyn Acker>) -> Delivery {
    let mut header = HashMap::new();
    if let Some(headers) = &message.headers {
        for (name, values) in headers.iter() {
            if let Some(value) = values.last() {
                header.insert(name.to_string(), value.as_str().to_string());
            }
        }
    }
    Delivery::new(
        message.subject.as_str(),
        Message {
            header,
            body: message.payload,
        },
        acker.clone(),
    )
}

/// One live subscription: cancelling it stops its task before the next handler call.
struct Active {
    stop: CancellationToken,
}

struct NatsSubscriber {
    topic: String,
    options: SubscribeOptions,
    active: Arc<Active>,
}

#[async_trait::async_trait]
impl Subscriber for NatsSubscriber {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn options(&self) -> &SubscribeOptions {
        &self.options
    }

    async fn unsubscribe(&self) -> Result<()> {
        self.active.stop.cancel();
        Ok(())
    }
}

/// Calls `handler` for each message of `subscription` in order until `stop`.
async fn deliver(
    mut subscription: async_nats::Subscriber,
    handler: Handler,
    active: Arc<Active>,
    logger: Logger,
) {
    // Core NATS has no acknowledgement: one no-op acker for every delivery.
    let acker: Arc<dyn Acker> = Arc::new(NoAck);
    // One wait for the stop, registered once (not per message).
    let stopped = active.stop.cancelled();
    tokio::pin!(stopped);
    loop {
        let message = tokio::select! {
            biased;
            () = &mut stopped => break,
            message = subscription.next() => message,
        };
        let Some(message) = message else { break };
        let subject = message.subject.clone();
        let call = AssertUnwindSafe(handler(delivery(message, &acker))).catch_unwind();
        let outcome = tokio::select! {
            biased;
            outcome = call => outcome,
            () = &mut stopped => break,
        };
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(err)) => logger.in_scope(|| {
                tracing::debug!(subject = %subject.as_str(), %err, "handler refused a message; it is dropped")
            }),
            Err(_) => logger.in_scope(|| {
                tracing::warn!(subject = %subject.as_str(), "handler panicked; the message is dropped")
            }),
        }
    }
    let _ = subscription.unsubscribe().await;
}

#[async_trait::async_trait]
impl Broker for NatsBroker {
    fn name(&self) -> &str {
        "nats"
    }

    fn address(&self) -> String {
        self.inner.connector.address()
    }

    async fn connect(&self) -> Result<()> {
        self.inner.connector.client().await.map(drop)
    }

    async fn disconnect(&self) -> Result<()> {
        let subscriptions = std::mem::take(
            &mut *self
                .inner
                .subscriptions
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for active in subscriptions.iter().filter_map(Weak::upgrade) {
            active.stop.cancel();
        }
        if let Some(client) = self.inner.connector.connected() {
            let _ = client.flush().await;
        }
        Ok(())
    }

    async fn publish(&self, topic: &str, message: Message) -> Result<()> {
        check_topic(topic, true)?;
        let headers = nats_headers(topic, &message)?;
        let client = self.connected().await?;
        let failed = |e: &dyn std::fmt::Display| {
            Error::unavailable(ID, format!("publish on {topic:?} failed: {e}; retry later"))
        };
        // Without headers a plain PUB: the server and subscribers skip the header block.
        let sent = match headers {
            Some(headers) => {
                client
                    .publish_with_headers(topic.to_string(), headers, message.body)
                    .await
            }
            None => client.publish(topic.to_string(), message.body).await,
        };
        sent.map_err(|e| failed(&e).with_source(e))?;
        if self.inner.options.confirm {
            let timeout = self.inner.options.publish_timeout;
            match tokio::time::timeout(timeout, client.flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(failed(&e).with_source(e)),
                Err(_) => {
                    return Err(failed(&format!(
                        "the server did not confirm it within {timeout:?}; it may or may not \
                         have arrived"
                    )));
                }
            }
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        topic: &str,
        handler: Handler,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscriber>> {
        check_topic(topic, false)?;
        let client = self.inner.connector.client().await?;
        let queue = options.queue.clone().filter(|q| !q.is_empty());
        let subscribed = match queue {
            Some(queue) => client.queue_subscribe(topic.to_string(), queue).await,
            None => client.subscribe(topic.to_string()).await,
        };
        let subscription = subscribed.map_err(|e| {
            Error::unavailable(
                ID,
                format!("subscribe to {topic:?} failed: {e}; retry later"),
            )
            .with_source(e)
        })?;
        // The SUB must reach the server before a publish that follows this call.
        let _ = client.flush().await;
        let active = Arc::new(Active {
            stop: CancellationToken::new(),
        });
        {
            let mut subscriptions = self
                .inner
                .subscriptions
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            subscriptions.retain(|s| s.strong_count() > 0);
            subscriptions.push(Arc::downgrade(&active));
        }
        tokio::spawn(deliver(
            subscription,
            handler,
            active.clone(),
            self.inner.logger.clone(),
        ));
        Ok(Box::new(NatsSubscriber {
            topic: topic.to_string(),
            options,
            active,
        }))
    }
}

/// The `nats` broker plugin: `broker: { plugin: nats, addresses: [...] }`.
pub fn plugin() -> Plugin {
    Plugin::broker("nats", "nats", |ctx| {
        let config = ctx.options::<BrokerConfig>()?;
        let options = ctx.options::<NatsBrokerOptions>()?;
        Ok(Arc::new(NatsBroker::new(
            &config.addresses,
            options,
            ctx.logger.clone(),
        )))
    })
    .with_options::<NatsBrokerOptions>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_checked_as_subjects() {
        assert!(check_topic("user.created", true).is_ok());
        assert!(check_topic("user.*", false).is_ok());
        for (topic, publish) in [
            ("user.*", true),
            ("a.>", true),
            ("", false),
            ("a..b", false),
            (".a", false),
            ("a.", false),
            ("a b", false),
        ] {
            let err = check_topic(topic, publish).unwrap_err();
            assert_eq!(err.code, 400, "{topic:?}: {err}");
        }
    }

    #[test]
    fn headers_that_cannot_travel_are_refused() {
        let ok = Message::new("x").with_header("Micro-Id", "1");
        assert!(nats_headers("t", &ok).is_ok());
        for message in [
            Message::new("x").with_header("a:b", "1"),
            Message::new("x").with_header("a b", "1"),
            Message::new("x").with_header("a", "1\r\nX: 2"),
        ] {
            assert_eq!(nats_headers("t", &message).unwrap_err().code, 400);
        }
    }
}
