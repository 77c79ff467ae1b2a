//! In-process event streams: every topic keeps its whole log; consumer groups keep a
//! position in it, hand each event to one of their consumers and redeliver what is not
//! acknowledged.
//!
//! Delivery: each consumer has a task that waits for room in the consumer's channel (one
//! event buffered), then takes the group's next event: a pending redelivery first, else the
//! next event of the log. Without auto-ack the event is then in flight until acked; a nack,
//! or no ack within `ack_wait`, queues it for redelivery to the group, until it has been
//! delivered `1 + retry_limit` times, after which it is dropped. Ack deadlines are checked
//! by the consumer tasks of the group (no timer per event). All tasks hold only a weak
//! reference and stop when the last clone of [`MemoryEvents`] is dropped, which also ends
//! every consumer's stream.

use async_trait::async_trait;
use bytes::Bytes;
use micro_core::events::{
    ConsumeOptions, Consumer, Event, EventAcker, Events, Offset, PublishOptions, ReadOptions,
    empty_topic,
};
use micro_core::logger::Logger;
use micro_core::store::page;
use micro_core::{Error, Plugin, Result};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::{CancellationToken, DropGuard};

/// Error id of this plugin.
const ID: &str = "go.micro.events.memory";
/// Events buffered in a consumer's channel: one, so that `ack_wait` starts close to when the
/// consumer sees the event and a group's events spread over its consumers.
const BUFFER: usize = 1;
/// Longest ack wait honoured (longer ones are capped, so deadlines never overflow).
const MAX_ACK_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// A consumer group: named ones outlive their consumers, private ones end with theirs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum GroupKey {
    Named(String),
    Private(u64),
}

/// An event handed out and not settled yet.
#[derive(Debug)]
struct Inflight {
    /// Deliveries so far, the first included.
    deliveries: u32,
    /// When it is redelivered unless acked; `None` = queued for redelivery now.
    deadline: Option<Instant>,
}

#[derive(Debug)]
struct Group {
    /// Index in the log of the next event never delivered to this group.
    next: usize,
    /// `Since(t)` of a new group: events of the first `.0` (the history then) older than
    /// `.1` are skipped.
    since: Option<(usize, SystemTime)>,
    auto_ack: bool,
    ack_wait: Duration,
    retry_limit: Option<u32>,
    inflight: HashMap<usize, Inflight>,
    redeliver: VecDeque<usize>,
}

impl Group {
    fn new(options: &ConsumeOptions, log: &[Event]) -> Result<Self> {
        let (next, since) = match options.offset {
            Offset::Latest => (log.len(), None),
            Offset::Earliest => (0, None),
            Offset::Since(t) => (0, Some((log.len(), t))),
            // Sequence n is log index n - 1; a sequence past the end waits for it.
            Offset::Sequence(n) => (
                usize::try_from(n.saturating_sub(1)).unwrap_or(usize::MAX),
                None,
            ),
            ref other => {
                return Err(Error::bad_request(
                    ID,
                    format!(
                        "offset {other:?} is not supported here: use latest, earliest or since"
                    ),
                ));
            }
        };
        Ok(Group {
            next,
            since,
            auto_ack: options.auto_ack,
            ack_wait: options.ack_wait.min(MAX_ACK_WAIT),
            retry_limit: options.retry_limit,
            inflight: HashMap::new(),
            redeliver: VecDeque::new(),
        })
    }

    /// A delivery of `index` failed (nack or ack timeout): queue it again, or drop it when
    /// the retry limit is used up. Returns whether it was dropped.
    fn failed(&mut self, index: usize) -> bool {
        let Some(flight) = self.inflight.get_mut(&index) else {
            return false;
        };
        if self
            .retry_limit
            .is_some_and(|limit| flight.deliveries > limit)
        {
            self.inflight.remove(&index);
            return true;
        }
        flight.deadline = None;
        self.redeliver.push_back(index);
        false
    }

    /// Queues again every delivery whose ack deadline has passed; returns the dropped ones.
    fn expire(&mut self, now: Instant) -> Vec<usize> {
        let due: Vec<usize> = self
            .inflight
            .iter()
            .filter(|(_, f)| f.deadline.is_some_and(|at| at <= now))
            .map(|(index, _)| *index)
            .collect();
        due.into_iter()
            .filter(|index| self.failed(*index))
            .collect()
    }

    /// The next delivery for this group: `(index, delivery number)`.
    fn take(&mut self, log: &[Event], now: Instant) -> Option<(usize, u32)> {
        let deadline = now.checked_add(self.ack_wait).unwrap_or(now);
        while let Some(index) = self.redeliver.pop_front() {
            if let Some(flight) = self.inflight.get_mut(&index)
                && flight.deadline.is_none()
            {
                flight.deliveries = flight.deliveries.saturating_add(1);
                flight.deadline = Some(deadline);
                return Some((index, flight.deliveries));
            }
        }
        while self.next < log.len() {
            let index = self.next;
            self.next += 1;
            if let Some((history, since)) = self.since
                && index < history
                && log[index].timestamp < since
            {
                continue;
            }
            if !self.auto_ack {
                self.inflight.insert(
                    index,
                    Inflight {
                        deliveries: 1,
                        deadline: Some(deadline),
                    },
                );
            }
            return Some((index, 1));
        }
        None
    }

    /// The earliest ack deadline, when the group's consumers must look again.
    fn next_deadline(&self) -> Option<Instant> {
        self.inflight.values().filter_map(|f| f.deadline).min()
    }
}

#[derive(Debug, Default)]
struct Topic {
    log: Vec<Event>,
    groups: HashMap<GroupKey, Group>,
    /// Woken on publish and nack, for the consumer tasks of this topic.
    notify: Arc<Notify>,
}

struct Inner {
    topics: Mutex<HashMap<String, Topic>>,
    next_private: AtomicU64,
    logger: Logger,
    cancel: CancellationToken,
    /// Cancels `cancel` (stopping every consumer task) when the last handle goes.
    _stop: DropGuard,
}

impl Inner {
    fn topics(&self) -> MutexGuard<'_, HashMap<String, Topic>> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn dropped(&self, topic: &str, dropped: &[usize], log: &[Event]) {
        for index in dropped {
            if let Some(event) = log.get(*index) {
                self.logger.in_scope(|| {
                    tracing::warn!(
                        topic,
                        id = %event.id,
                        "event dropped: not acknowledged within its retry limit"
                    )
                });
            }
        }
    }

    /// Takes the next event for `group`, or says when to look again.
    fn take(
        &self,
        weak: &Weak<Inner>,
        topic_name: &str,
        key: &GroupKey,
    ) -> (Option<Event>, Option<Instant>) {
        let mut topics = self.topics();
        let Some(topic) = topics.get_mut(topic_name) else {
            return (None, None);
        };
        let Some(group) = topic.groups.get_mut(key) else {
            return (None, None);
        };
        let now = Instant::now();
        let dropped = group.expire(now);
        self.dropped(topic_name, &dropped, &topic.log);
        match group.take(&topic.log, now) {
            Some((index, delivery)) => {
                let mut event = topic.log[index].clone();
                if !group.auto_ack {
                    event = event.with_acker(Arc::new(Acker {
                        inner: weak.clone(),
                        topic: topic_name.to_string(),
                        group: key.clone(),
                        index,
                        delivery,
                    }));
                }
                (Some(event), None)
            }
            None => (None, group.next_deadline()),
        }
    }
}

/// Settles one delivery of one event for one group.
struct Acker {
    inner: Weak<Inner>,
    topic: String,
    group: GroupKey,
    index: usize,
    delivery: u32,
}

#[async_trait]
impl EventAcker for Acker {
    async fn ack(&self) -> Result<()> {
        // Acking any delivery settles the event, even after it was queued again.
        let Some(inner) = self.inner.upgrade() else {
            return Ok(());
        };
        let mut topics = inner.topics();
        if let Some(group) = topics
            .get_mut(&self.topic)
            .and_then(|t| t.groups.get_mut(&self.group))
        {
            group.inflight.remove(&self.index);
        }
        Ok(())
    }

    async fn nack(&self) -> Result<()> {
        // Only the current delivery can be nacked; a stale one is already being redelivered.
        let Some(inner) = self.inner.upgrade() else {
            return Ok(());
        };
        let mut topics = inner.topics();
        let Some(topic) = topics.get_mut(&self.topic) else {
            return Ok(());
        };
        let Some(group) = topic.groups.get_mut(&self.group) else {
            return Ok(());
        };
        let current = group
            .inflight
            .get(&self.index)
            .is_some_and(|f| f.deliveries == self.delivery && f.deadline.is_some());
        if current {
            if group.failed(self.index) {
                inner.dropped(&self.topic, &[self.index], &topic.log);
            }
            topic.notify.notify_waiters();
        }
        Ok(())
    }
}

/// In-process event streams. Clones share the same topics; dropping the last clone stops
/// its background work and ends every consumer's stream.
#[derive(Clone)]
pub struct MemoryEvents {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemoryEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryEvents").finish_non_exhaustive()
    }
}

impl Default for MemoryEvents {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryEvents {
    /// Empty event streams that log nothing.
    pub fn new() -> Self {
        Self::with_logger(Logger::none())
    }

    /// Empty event streams logging (dropped events) to `logger`.
    pub fn with_logger(logger: Logger) -> Self {
        let cancel = CancellationToken::new();
        MemoryEvents {
            inner: Arc::new(Inner {
                topics: Mutex::new(HashMap::new()),
                next_private: AtomicU64::new(0),
                logger,
                _stop: cancel.clone().drop_guard(),
                cancel,
            }),
        }
    }
}

#[async_trait]
impl Events for MemoryEvents {
    fn name(&self) -> &str {
        "memory"
    }

    async fn publish(&self, topic: &str, payload: Bytes, options: PublishOptions) -> Result<()> {
        let mut event = Event::to_publish(topic, payload, options)?;
        let mut topics = self.inner.topics();
        let entry = topics.entry(topic.to_string()).or_default();
        event.sequence = entry.log.len() as u64 + 1;
        entry.log.push(event);
        entry.notify.notify_waiters();
        Ok(())
    }

    async fn consume(&self, topic: &str, options: ConsumeOptions) -> Result<Consumer> {
        micro_core::events::check_consume(ID, topic, &options)?;
        let key = match &options.group {
            Some(name) => GroupKey::Named(name.clone()),
            None => GroupKey::Private(self.inner.next_private.fetch_add(1, Ordering::Relaxed)),
        };
        let notify = {
            let mut topics = self.inner.topics();
            let entry = topics.entry(topic.to_string()).or_default();
            if !entry.groups.contains_key(&key) {
                let group = Group::new(&options, &entry.log)?;
                entry.groups.insert(key.clone(), group);
            }
            entry.notify.clone()
        };
        let (tx, rx) = mpsc::channel(BUFFER);
        tokio::spawn(deliver(
            Arc::downgrade(&self.inner),
            topic.to_string(),
            key,
            notify,
            self.inner.cancel.clone(),
            tx,
        ));
        Ok(Consumer::new(rx))
    }

    async fn read(&self, topic: &str, options: ReadOptions) -> Result<Vec<Event>> {
        if topic.is_empty() {
            return Err(empty_topic());
        }
        let topics = self.inner.topics();
        let Some(topic) = topics.get(topic) else {
            return Ok(Vec::new());
        };
        // Sequence n is at index n - 1: the events after `after` start at index `after`.
        let start = options
            .after
            .map_or(0, |after| usize::try_from(after).unwrap_or(usize::MAX))
            .min(topic.log.len());
        Ok(page(
            topic.log[start..].iter().cloned(),
            options.offset,
            options.limit,
        ))
    }
}

/// The task feeding one consumer of `group` on `topic`.
async fn deliver(
    weak: Weak<Inner>,
    topic: String,
    group: GroupKey,
    notify: Arc<Notify>,
    cancel: CancellationToken,
    tx: mpsc::Sender<Event>,
) {
    'run: loop {
        // Room first, so an event is only taken from the group when it can be handed out.
        let permit = tokio::select! {
            permit = tx.reserve() => match permit {
                Ok(permit) => permit,
                Err(_) => break 'run,
            },
            () = cancel.cancelled() => break 'run,
        };
        let event = loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if tx.is_closed() {
                break 'run;
            }
            let Some(inner) = weak.upgrade() else {
                break 'run;
            };
            let (event, deadline) = inner.take(&weak, &topic, &group);
            drop(inner);
            if let Some(event) = event {
                break event;
            }
            let due = async move {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = notified.as_mut() => {}
                () = due => {}
                () = tx.closed() => break 'run,
                () = cancel.cancelled() => break 'run,
            }
        };
        permit.send(event);
    }
    if let GroupKey::Private(_) = group
        && let Some(inner) = weak.upgrade()
    {
        let mut topics = inner.topics();
        if let Some(topic) = topics.get_mut(&topic) {
            topic.groups.remove(&group);
        }
    }
}

/// The plugin-table entry: `events: { plugin: memory }`.
pub fn plugin() -> Plugin {
    Plugin::events("memory", "memory", |ctx| {
        Ok(Arc::new(MemoryEvents::with_logger(ctx.logger.clone())))
    })
}
