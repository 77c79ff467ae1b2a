//! One member of a queue group: a consumer of the Redis consumer group named after the
//! queue, on the topic's queue stream.
//!
//! The member reads one entry at a time (`XREADGROUP ... COUNT 1 BLOCK`, on a connection of
//! its own since a blocking read holds it), first taking over entries of the group left
//! unsettled for `ack_wait` (`XAUTOCLAIM`). A message is acked (`XACK`) when the handler
//! returns `Ok` (auto-ack) or refuses it (it is dropped, as for broadcast); by hand,
//! [`Delivery::ack`] is `XACK` and [`Delivery::nack`] makes the entry claimable by any member
//! at once. A member stopped with a message in hand gives it back the same way. Errors (the
//! server gone) are retried with a growing backoff; a group deleted meanwhile is made again.

use super::{ID, call, envelope, queue_key};
use crate::stream_entry::StreamEntry;
use micro_core::backoff::Backoff;
use micro_core::broker::{Acker, Delivery, Handler};
use micro_core::logger::Logger;
use micro_core::{Error, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// How long one blocking read waits.
const BLOCK: Duration = Duration::from_secs(1);

/// Settles one queue-group delivery.
struct QueueAcker(StreamEntry);

impl QueueAcker {
    fn error(&self, what: &str, e: &redis::RedisError) -> Error {
        Error::unavailable(
            ID,
            format!(
                "{what} of message {} of queue group {} ({}) did not reach Redis ({e}); it \
                 will be delivered again after ack_wait",
                self.0.id, self.0.group, self.0.key
            ),
        )
    }
}

#[async_trait::async_trait]
impl Acker for QueueAcker {
    async fn ack(&self) -> Result<()> {
        self.0.xack().await.map_err(|e| self.error("the ack", &e))
    }

    async fn nack(&self) -> Result<()> {
        self.0
            .give_back()
            .await
            .map_err(|e| self.error("the nack", &e))
    }
}

/// A member of a queue group, ready to run.
pub(super) struct Group {
    topic: String,
    key: String,
    group: String,
    consumer: String,
    ack_wait: Duration,
    auto_ack: bool,
    conn: ConnectionManager,
    reader: ConnectionManager,
    logger: Logger,
}

impl Group {
    /// A new member of `group` on `topic` (the group exists).
    pub async fn new(
        client: redis::Client,
        conn: ConnectionManager,
        topic: &str,
        group: String,
        ack_wait: Duration,
        auto_ack: bool,
        logger: Logger,
    ) -> redis::RedisResult<Self> {
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(BLOCK + Duration::from_secs(5)));
        let reader = ConnectionManager::new_with_config(client, config).await?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let consumer = format!(
            "micro-{}-{nanos:x}-{:x}",
            std::process::id(),
            &conn as *const _ as usize
        );
        Ok(Group {
            topic: topic.to_string(),
            key: queue_key(topic),
            group,
            consumer,
            ack_wait: if ack_wait.is_zero() {
                Duration::from_secs(30)
            } else {
                ack_wait
            },
            auto_ack,
            conn,
            reader,
            logger,
        })
    }

    fn acker(&self, id: &str) -> Arc<QueueAcker> {
        Arc::new(QueueAcker(StreamEntry {
            conn: self.conn.clone(),
            key: self.key.clone(),
            group: self.group.clone(),
            consumer: self.consumer.clone(),
            id: id.to_string(),
        }))
    }

    /// Delivers the group's messages to `handler` until `stop`.
    pub async fn run(mut self, handler: Handler, stop: Arc<CancellationToken>) {
        let mut backoff = Backoff::new();
        loop {
            let next = tokio::select! {
                biased;
                () = stop.cancelled() => break,
                next = self.next() => next,
            };
            let entry = match next {
                Ok(Some(entry)) => {
                    backoff.succeeded();
                    entry
                }
                Ok(None) => continue,
                Err(e) => {
                    let (first, wait) = backoff.failed();
                    if first {
                        self.logger.in_scope(|| {
                            tracing::warn!(topic = %self.topic, group = %self.group,
                                "reading the queue group failed ({e}); trying again")
                        });
                    }
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = stop.cancelled() => break,
                    }
                    let _ =
                        crate::events::create_group(&mut self.conn, &self.key, &self.group, "$")
                            .await;
                    continue;
                }
            };
            let acker = self.acker(&entry.id);
            if stop.is_cancelled() {
                let _ = acker.0.give_back().await;
                break;
            }
            let Some(payload) = entry.get::<Vec<u8>>("m") else {
                self.logger.in_scope(|| {
                    tracing::warn!(stream = %self.key, id = %entry.id,
                        "skipping entry {} of stream {}: it has no field m", entry.id, self.key)
                });
                let _ = acker.0.xack().await;
                continue;
            };
            let delivery = Delivery::new(
                self.topic.clone(),
                envelope::decode(&payload),
                acker.clone() as Arc<dyn Acker>,
            );
            match call(&handler, delivery, &stop, &self.logger).await {
                None => {
                    let _ = acker.0.give_back().await;
                    break;
                }
                Some(true) if !self.auto_ack => {}
                Some(_) => {
                    if let Err(e) = acker.0.xack().await {
                        self.logger.in_scope(|| {
                            tracing::warn!(topic = %self.topic, "ack of message {} failed: {e}", entry.id)
                        });
                    }
                }
            }
        }
        self.leave().await;
    }

    /// An entry left unsettled for `ack_wait`, else a new one; `None` when none came.
    async fn next(&mut self) -> redis::RedisResult<Option<StreamId>> {
        let claimed: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&self.key)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(self.ack_wait.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.conn)
            .await?;
        if let Some(entry) = claimed.claimed.into_iter().next() {
            return Ok(Some(entry));
        }
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(">")
            .query_async(&mut self.reader)
            .await?;
        Ok(reply
            .and_then(|r| r.keys.into_iter().next())
            .and_then(|k| k.ids.into_iter().next()))
    }

    /// Removes this member from the group when it holds no message.
    async fn leave(&mut self) {
        let pending: redis::RedisResult<redis::streams::StreamPendingCountReply> =
            redis::cmd("XPENDING")
                .arg(&self.key)
                .arg(&self.group)
                .arg("-")
                .arg("+")
                .arg(1)
                .arg(&self.consumer)
                .query_async(&mut self.conn)
                .await;
        if matches!(pending, Ok(ref p) if p.ids.is_empty()) {
            let _ = redis::cmd("XGROUP")
                .arg("DELCONSUMER")
                .arg(&self.key)
                .arg(&self.group)
                .arg(&self.consumer)
                .query_async::<redis::Value>(&mut self.conn)
                .await;
        }
    }
}
