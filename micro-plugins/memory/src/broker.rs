//! In-process pub/sub broker with queue groups.
//!
//! State lives in the [`MemoryBroker`] value: clones share it, two values built with
//! [`MemoryBroker::new`] are two separate brokers.
//!
//! Semantics:
//! - `publish` hands the message to every broadcast subscriber (no queue) of the topic and,
//!   for each queue group, to exactly one member, chosen round-robin per (topic, group).
//!   Publishing to a topic nobody subscribes to succeeds and drops the message. An empty
//!   topic is refused ([`micro_core::broker::empty_topic`]); an empty queue name counts as
//!   broadcast.
//! - Each subscriber has its own unbounded queue and task: it sees messages in publish
//!   order, one handler call at a time, and a slow subscriber never blocks `publish` or
//!   other subscribers (its queue grows instead).
//! - Delivery is **at most once**: a handler's `Err` (a nack) or panic is logged and the
//!   message is dropped; the memory broker never redelivers. Deliveries carry
//!   [`NoAck`], so `ack`/`nack` are no-ops whatever `auto_ack` says.
//! - After [`Subscriber::unsubscribe`] returns no further handler call starts (messages
//!   still queued for it are dropped; a call already running finishes). Dropping the
//!   subscription handle does not unsubscribe.
//! - The broker works without `connect`; `disconnect` drops every subscription, as if
//!   each had unsubscribed.

use futures::FutureExt;
use micro_core::broker::{
    Acker, Broker, Delivery, Handler, Message, NoAck, SubscribeOptions, Subscriber, empty_topic,
};
use micro_core::{Plugin, Result};
use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::sync::mpsc;

/// An in-process broker; cheap to clone, clones share state.
#[derive(Clone)]
pub struct MemoryBroker {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    acker: Arc<dyn Acker>,
}

#[derive(Default)]
struct State {
    topics: HashMap<String, Topic>,
    next_id: u64,
}

#[derive(Default)]
struct Topic {
    subscribers: Vec<Entry>,
    /// Round-robin position of each queue group.
    cursors: HashMap<String, usize>,
}

struct Entry {
    id: u64,
    queue: Option<String>,
    queue_tx: mpsc::UnboundedSender<Delivery>,
    active: Arc<AtomicBool>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for MemoryBroker {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("MemoryBroker")
            .field("topics", &state.topics.len())
            .finish()
    }
}

impl MemoryBroker {
    /// A broker with no subscriptions.
    pub fn new() -> Self {
        MemoryBroker {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                acker: Arc::new(NoAck),
            }),
        }
    }
}

/// Runs one subscriber's handler over its queue, in order, until it unsubscribes.
async fn deliver(
    mut queue: mpsc::UnboundedReceiver<Delivery>,
    handler: Handler,
    active: Arc<AtomicBool>,
) {
    while let Some(delivery) = queue.recv().await {
        if !active.load(Ordering::SeqCst) {
            return;
        }
        let topic = delivery.topic.clone();
        let call = AssertUnwindSafe(async { handler(delivery).await }).catch_unwind();
        match call.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::debug!(%topic, %err, "memory broker: handler refused a message; it is dropped");
            }
            Err(_) => {
                tracing::warn!(%topic, "memory broker: handler panicked; the message is dropped");
            }
        }
    }
}

#[async_trait::async_trait]
impl Broker for MemoryBroker {
    fn name(&self) -> &str {
        "memory"
    }

    fn address(&self) -> String {
        "memory".to_string()
    }

    async fn connect(&self) -> Result<()> {
        Ok(())
    }

    async fn disconnect(&self) -> Result<()> {
        let topics = std::mem::take(&mut self.inner.lock().topics);
        for entry in topics.into_values().flat_map(|t| t.subscribers) {
            entry.active.store(false, Ordering::SeqCst);
        }
        Ok(())
    }

    async fn publish(&self, topic: &str, message: Message) -> Result<()> {
        if topic.is_empty() {
            return Err(empty_topic());
        }
        let mut state = self.inner.lock();
        let Some(entry) = state.topics.get_mut(topic) else {
            return Ok(());
        };
        // Forget subscribers whose task is gone so a queue group never picks them.
        entry.subscribers.retain(|s| !s.queue_tx.is_closed());
        let Topic {
            subscribers,
            cursors,
        } = entry;
        let send = |sub: &Entry| {
            let delivery = Delivery::new(topic, message.clone(), self.inner.acker.clone());
            // A closed queue means the subscriber just went away: nothing to deliver to.
            let _ = sub.queue_tx.send(delivery);
        };
        let mut groups: HashMap<&str, Vec<&Entry>> = HashMap::new();
        for sub in subscribers.iter() {
            match &sub.queue {
                None => send(sub),
                Some(queue) => groups.entry(queue.as_str()).or_default().push(sub),
            }
        }
        for (queue, members) in groups {
            let cursor = cursors.entry(queue.to_string()).or_insert(0);
            if let Some(member) = members.get(*cursor % members.len()) {
                send(member);
            }
            *cursor = cursor.wrapping_add(1);
        }
        if subscribers.is_empty() {
            state.topics.remove(topic);
        }
        Ok(())
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
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let active = Arc::new(AtomicBool::new(true));
        tokio::spawn(deliver(queue_rx, handler, active.clone()));
        let id = {
            let mut state = self.inner.lock();
            state.next_id += 1;
            let id = state.next_id;
            state
                .topics
                .entry(topic.to_string())
                .or_default()
                .subscribers
                .push(Entry {
                    id,
                    queue: options.queue.clone().filter(|q| !q.is_empty()),
                    queue_tx,
                    active: active.clone(),
                });
            id
        };
        Ok(Box::new(MemorySubscriber {
            topic: topic.to_string(),
            options,
            id,
            active,
            broker: Arc::downgrade(&self.inner),
        }))
    }
}

/// A subscription to a [`MemoryBroker`] topic.
pub struct MemorySubscriber {
    topic: String,
    options: SubscribeOptions,
    id: u64,
    active: Arc<AtomicBool>,
    broker: Weak<Inner>,
}

impl fmt::Debug for MemorySubscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySubscriber")
            .field("topic", &self.topic)
            .field("queue", &self.options.queue)
            .field("active", &self.active.load(Ordering::SeqCst))
            .finish()
    }
}

#[async_trait::async_trait]
impl Subscriber for MemorySubscriber {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn options(&self) -> &SubscribeOptions {
        &self.options
    }

    async fn unsubscribe(&self) -> Result<()> {
        self.active.store(false, Ordering::SeqCst);
        let Some(inner) = self.broker.upgrade() else {
            return Ok(());
        };
        let mut state = inner.lock();
        if let Some(topic) = state.topics.get_mut(&self.topic) {
            topic.subscribers.retain(|s| s.id != self.id);
            if topic.subscribers.is_empty() {
                state.topics.remove(&self.topic);
            }
        }
        Ok(())
    }
}

/// The plugin-table entry: `broker: {plugin: memory}` builds a new broker.
pub fn plugin() -> Plugin {
    Plugin::broker("memory", "memory", |_| Ok(Arc::new(MemoryBroker::new())))
}
