//! Events on Redis Streams: one stream per topic, a Redis consumer group per micro consumer
//! group, history read with `XRANGE`.
//!
//! - Topic `orders` is the stream `micro:events:orders`; an entry keeps the event as
//!   [`codec`] says, and [`Event::sequence`] is the entry's id mapped to a number
//!   (`ms << 20 | seq`), which [`Offset::Sequence`] and [`ReadOptions::after`] take back.
//! - [`Events::publish`] is one `XADD`: `Ok` means Redis has it. Streams are not trimmed:
//!   every event is kept until the key is deleted ([`RedisEvents::delete_topic`]).
//! - [`Events::consume`] joins the Redis consumer group named after the micro group (made on
//!   first use with `XGROUP CREATE ... MKSTREAM`, from the start position of the
//!   [`Offset`]: latest = `$`, earliest = `0`, since a time = its millisecond, sequence `n` =
//!   the id of `n`), as a consumer with a name of its own. A consumer without a group gets a
//!   private group (`micro-private-...`), destroyed when its [`Consumer`] is dropped. See
//!   [`consumer`] for how entries are read, claimed after `ack_wait`, retried and settled.
//! - An entry micro did not write (`redis-cli XADD micro:events:orders * a b`) is skipped
//!   with a warning naming the stream; a consumer acks it so it does not come again.
//! - Consumers survive a restart of redis-server: they retry with a growing backoff and make
//!   their group again if it is gone (with persistence, Redis keeps streams and groups).

mod codec;
mod consumer;

use crate::connection::Connector;
use async_trait::async_trait;
use bytes::Bytes;
use micro_core::config::EventsConfig;
use micro_core::events::{
    ConsumeOptions, Consumer, Event, Events, Offset, PublishOptions, ReadOptions,
};
use micro_core::logger::Logger;
use micro_core::{Error, Plugin, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::StreamRangeReply;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::{CancellationToken, DropGuard};

pub use codec::{KEY_PREFIX, key, sequence, stream_id};

/// Error id of this plugin.
pub(crate) const ID: &str = "go.micro.events.redis";
/// Entries fetched per `XRANGE` by [`Events::read`].
const READ_BATCH: usize = 256;
/// Longest a blocking read waits before the consumer looks for expired entries again.
const MAX_BLOCK: Duration = Duration::from_secs(1);

/// Event streams on Redis. Clones share the connection; dropping the last clone stops every
/// consumer task (ending their streams).
#[derive(Clone)]
pub struct RedisEvents {
    inner: Arc<Inner>,
}

struct Inner {
    connector: Connector,
    logger: Logger,
    /// Topics this instance published on, consumed or read.
    topics: Mutex<BTreeSet<String>>,
    /// Numbers the consumers this instance makes, for unique names.
    consumers: AtomicU64,
    cancel: CancellationToken,
    _stop: DropGuard,
}

impl std::fmt::Debug for RedisEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEvents")
            .field("address", &self.inner.connector.address())
            .finish_non_exhaustive()
    }
}

impl RedisEvents {
    /// Events on the Redis server at the first of `addresses` (empty =
    /// `redis://127.0.0.1:6379`), connecting on first use.
    pub fn new(addresses: &[String]) -> Self {
        let cancel = CancellationToken::new();
        RedisEvents {
            inner: Arc::new(Inner {
                connector: Connector::new(addresses, "events"),
                logger: Logger::none(),
                topics: Mutex::new(BTreeSet::new()),
                consumers: AtomicU64::new(0),
                _stop: cancel.clone().drop_guard(),
                cancel,
            }),
        }
    }

    /// The same events logging to `logger` (skipped entries, dropped events, outages).
    /// Call it before cloning or consuming.
    pub fn with_logger(mut self, logger: Logger) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.logger = logger;
        }
        self
    }

    /// The topics this instance published on, consumed or read, sorted.
    pub fn known_topics(&self) -> Vec<String> {
        self.known().iter().cloned().collect()
    }

    fn known(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.inner.topics.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, topic: &str) {
        let mut known = self.known();
        if !known.contains(topic) {
            known.insert(topic.to_string());
        }
    }

    /// Deletes `topic`'s stream: its events and every consumer group of it.
    pub async fn delete_topic(&self, topic: &str) -> Result<()> {
        let mut conn = self.connection().await?;
        redis::cmd("DEL")
            .arg(codec::key(topic))
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.failed(&format!("cannot delete topic {topic:?}"), &e))
    }

    async fn connection(&self) -> Result<ConnectionManager> {
        self.inner.connector.connection().await
    }

    /// A 503 for a failed Redis call, saying what to check.
    fn failed(&self, what: &str, e: &redis::RedisError) -> Error {
        Error::unavailable(
            ID,
            format!(
                "{what}: {e}; is redis-server running at {}? set events.addresses \
                 (MICRO_EVENTS_ADDRESS) to where it is",
                self.inner.connector.address()
            ),
        )
    }

    /// A name no other consumer has: this process, this instance, a count, the time.
    fn unique_name(&self) -> String {
        let n = self.inner.consumers.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!(
            "{}-{:x}-{n}-{nanos:x}",
            std::process::id(),
            Arc::as_ptr(&self.inner) as usize
        )
    }
}

/// Makes `group` on `key` starting after `start` (and the stream when missing); a group
/// that exists already is kept as it is.
pub(crate) async fn create_group(
    conn: &mut ConnectionManager,
    key: &str,
    group: &str,
    start: &str,
) -> redis::RedisResult<()> {
    let made = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg(group)
        .arg(start)
        .arg("MKSTREAM")
        .query_async::<()>(conn)
        .await;
    match made {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}

/// The id a new group starts after, for `offset`.
fn start_id(offset: Offset) -> Result<String> {
    Ok(match offset {
        Offset::Latest => "$".to_string(),
        Offset::Earliest => "0".to_string(),
        Offset::Since(time) => codec::stream_id(codec::sequence_at(time)?.saturating_sub(1)),
        Offset::Sequence(n) => codec::stream_id(n.saturating_sub(1)),
        other => {
            return Err(Error::bad_request(
                ID,
                format!(
                    "offset {other:?} is not supported by redis: use latest, earliest, since \
                     or sequence"
                ),
            ));
        }
    })
}

#[async_trait]
impl Events for RedisEvents {
    fn name(&self) -> &str {
        "redis"
    }

    async fn publish(&self, topic: &str, payload: Bytes, options: PublishOptions) -> Result<()> {
        let event = Event::to_publish(topic, payload, options)?;
        let fields = codec::encode(&event)?;
        self.remember(topic);
        let mut conn = self.connection().await?;
        redis::cmd("XADD")
            .arg(codec::key(topic))
            .arg("*")
            .arg(&fields)
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(|e| {
                self.failed(
                    &format!(
                        "publish on topic {topic:?} failed: it may or may not be stored \
                         (event id {})",
                        event.id
                    ),
                    &e,
                )
            })
    }

    async fn consume(&self, topic: &str, options: ConsumeOptions) -> Result<Consumer> {
        micro_core::events::check_consume(ID, topic, &options)?;
        let start = start_id(options.offset)?;
        self.remember(topic);
        let key = codec::key(topic);
        let private = options.group.is_none();
        let group = match &options.group {
            Some(group) => group.clone(),
            None => format!("micro-private-{}", self.unique_name()),
        };
        let consumer = format!("micro-{}", self.unique_name());
        let ack_wait = if options.ack_wait.is_zero() {
            ConsumeOptions::default().ack_wait
        } else {
            options.ack_wait
        };
        let block = (ack_wait / 2).clamp(Duration::from_millis(20), MAX_BLOCK);
        let mut conn = self.connection().await?;
        create_group(&mut conn, &key, &group, &start)
            .await
            .map_err(|e| {
                self.failed(
                    &format!("cannot make consumer group {group:?} of topic {topic:?}"),
                    &e,
                )
            })?;
        // A blocking read holds its connection: the consumer reads on one of its own, whose
        // answers may take the block time.
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(block + Duration::from_secs(5)));
        let reader = ConnectionManager::new_with_config(self.inner.connector.client()?, config)
            .await
            .map_err(|e| self.inner.connector.unreachable(&e))?;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let feed = consumer::Feed {
            topic: topic.to_string(),
            key,
            group,
            consumer,
            start,
            private,
            auto_ack: options.auto_ack,
            ack_wait,
            max_deliver: options
                .retry_limit
                .map(|limit| u64::from(limit).saturating_add(1)),
            reader,
            conn,
            block,
            logger: self.inner.logger.clone(),
            cancel: self.inner.cancel.clone(),
            tx,
            last: None,
        };
        tokio::spawn(feed.run());
        Ok(Consumer::new(rx))
    }

    async fn read(&self, topic: &str, options: ReadOptions) -> Result<Vec<Event>> {
        if topic.is_empty() {
            return Err(micro_core::events::empty_topic());
        }
        self.remember(topic);
        let key = codec::key(topic);
        let mut start = match options.after {
            None => "-".to_string(),
            Some(u64::MAX) => return Ok(Vec::new()),
            Some(after) => codec::stream_id(after + 1),
        };
        let mut conn = self.connection().await?;
        let mut skip = options.offset;
        let mut out = Vec::new();
        loop {
            let page: StreamRangeReply = redis::cmd("XRANGE")
                .arg(&key)
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(READ_BATCH)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.failed(&format!("cannot read topic {topic:?}"), &e))?;
            let Some(last) = page.ids.last() else { break };
            start = format!("({}", last.id);
            let full = page.ids.len() == READ_BATCH;
            for entry in &page.ids {
                match codec::decode(topic, entry) {
                    Ok(_) if skip > 0 => skip -= 1,
                    Ok(event) => {
                        out.push(event);
                        if options.limit != 0 && out.len() >= options.limit {
                            return Ok(out);
                        }
                    }
                    Err(reason) => consumer::skipped(&self.inner.logger, &key, &entry.id, &reason),
                }
            }
            if !full {
                break;
            }
        }
        Ok(out)
    }
}

/// The plugin-table entry: `events: { plugin: redis, addresses: [redis://host:6379] }`.
pub fn plugin() -> Plugin {
    Plugin::events("redis", "redis", |ctx| {
        let config: EventsConfig = ctx.options()?;
        Ok(Arc::new(
            RedisEvents::new(&config.addresses).with_logger(ctx.logger.clone()),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_start_just_before_their_event() {
        assert_eq!(start_id(Offset::Latest).unwrap(), "$");
        assert_eq!(start_id(Offset::Earliest).unwrap(), "0");
        assert_eq!(start_id(Offset::Sequence(0)).unwrap(), "0-0");
        assert_eq!(start_id(Offset::Sequence(1)).unwrap(), "0-0");
        let n = sequence("1000-0").unwrap();
        assert_eq!(start_id(Offset::Sequence(n)).unwrap(), "999-1048575");
        let since = UNIX_EPOCH + Duration::from_micros(1_000_500);
        assert_eq!(start_id(Offset::Since(since)).unwrap(), "999-1048575");
    }
}
