//! The task feeding one [`micro_core::events::Consumer`] from a Redis consumer group.
//!
//! The consumer's channel holds one event. The task waits for room in it (the previous event
//! was taken), then takes ONE entry for itself, so an event leaves the group only when a
//! consumer is ready and two consumers of a group split the events:
//! 1. the oldest pending entry of the group idle for `ack_wait` or more (`XPENDING ... IDLE`):
//!    delivered `1 + retry_limit` times already, it is dropped (`XACK` and a warning);
//!    otherwise claimed (`XCLAIM` with the same idle floor, so of two claimers one wins);
//! 2. else a new entry (`XREADGROUP ... COUNT 1 BLOCK`, on a connection of its own since a
//!    blocking read holds its connection).
//!
//! Settling: with auto-ack an event is acked (`XACK`) when the consumer takes it (the next
//! room in the channel) or goes away; the entry's idle time is reset while it waits. By hand, the event carries a [`RedisAcker`]: ack =
//! `XACK`; nack = `XCLAIM ... IDLE <10 years> JUSTID`, which makes the entry claimable at once
//! without counting a delivery. While an event waits in the channel (not taken yet) its
//! idle time is reset every half `ack_wait` (`XCLAIM ... JUSTID`), so `ack_wait` counts from
//! at most half an `ack_wait` before the consumer took it.
//!
//! Errors (server gone, group or stream deleted) never end the stream: the task waits with a
//! growing backoff, makes the group again when it is missing (starting after the last entry
//! it handed out, else where it was asked to start) and goes on. A private group is
//! destroyed when its consumer is dropped.

use super::{ID, codec};
use crate::stream_entry::StreamEntry;
use async_trait::async_trait;
use micro_core::backoff::Backoff;
use micro_core::events::{Event, EventAcker};
use micro_core::logger::Logger;
use micro_core::{Error, Result};
use redis::aio::ConnectionManager;
use redis::streams::{StreamClaimReply, StreamId, StreamPendingCountReply, StreamReadReply};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Logs an entry that is not a micro event and is skipped.
pub(super) fn skipped(logger: &Logger, stream: &str, id: &str, reason: &str) {
    logger.in_scope(|| {
        tracing::warn!(
            stream,
            id,
            "skipping entry {id} of stream {stream}: it is not a micro event ({reason})"
        )
    });
}

/// Where one delivery lives: the stream, the group and the consumer holding it.
pub(super) struct RedisAcker {
    pub entry: StreamEntry,
    /// Deliveries so far, this one included.
    pub delivered: u64,
    /// Deliveries allowed (`None` = no limit).
    pub max_deliver: Option<u64>,
    pub logger: Logger,
}

impl RedisAcker {
    fn error(&self, what: &str, e: &redis::RedisError) -> Error {
        Error::unavailable(
            ID,
            format!(
                "{what} of entry {} of stream {} did not reach Redis ({e}); it will be \
                 delivered again after its ack_wait",
                self.entry.id, self.entry.key
            ),
        )
    }
}

#[async_trait]
impl EventAcker for RedisAcker {
    async fn ack(&self) -> Result<()> {
        self.entry
            .xack()
            .await
            .map_err(|e| self.error("the ack", &e))
    }

    async fn nack(&self) -> Result<()> {
        self.entry
            .give_back()
            .await
            .map_err(|e| self.error("the nack", &e))?;
        if self.max_deliver.is_some_and(|max| self.delivered >= max) {
            self.logger.in_scope(|| {
                tracing::warn!(
                    stream = %self.entry.key,
                    id = %self.entry.id,
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
    acker: Arc<RedisAcker>,
    since: Instant,
}

/// Everything the task of one consumer needs.
pub(super) struct Feed {
    pub topic: String,
    pub key: String,
    pub group: String,
    pub consumer: String,
    /// Where the group starts when it must be made again and nothing was handed out.
    pub start: String,
    pub private: bool,
    pub auto_ack: bool,
    pub ack_wait: Duration,
    pub max_deliver: Option<u64>,
    /// For blocking reads only.
    pub reader: ConnectionManager,
    /// For everything else (claims, acks).
    pub conn: ConnectionManager,
    pub block: Duration,
    pub logger: Logger,
    pub cancel: CancellationToken,
    pub tx: mpsc::Sender<Event>,
    /// Id of the last entry handed out.
    pub last: Option<String>,
}

/// One entry taken for this consumer, with its delivery count.
type Taken = (StreamId, u64);

impl Feed {
    /// Feeds the consumer until it or the events are dropped.
    pub async fn run(mut self) {
        let tx = self.tx.clone();
        let cancel = self.cancel.clone();
        let mut buffered: Option<Buffered> = None;
        let mut backoff = Backoff::new();
        let refresh = (self.ack_wait / 2).max(Duration::from_millis(50));
        'run: loop {
            let permit = loop {
                let due = async {
                    match &buffered {
                        Some(b) => tokio::time::sleep_until(b.since + refresh).await,
                        _ => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => break 'run,
                    permit = tx.reserve() => match permit {
                        Ok(permit) => break permit,
                        Err(_) => break 'run,
                    },
                    () = due => {
                        if let Some(b) = &mut buffered {
                            let _ = b.acker.entry.set_idle(0).await;
                            b.since = Instant::now();
                        }
                    }
                }
            };
            // Room in the channel: the consumer took the event that was in it.
            if let Some(b) = buffered.take() {
                // By hand the consumer may have acked or nacked it already: leave it be (a
                // reset of its idle time now could undo a nack).
                if self.auto_ack
                    && let Err(e) = b.acker.entry.xack().await
                {
                    self.warn(&format!(
                        "auto-ack of entry {} failed: {e}",
                        b.acker.entry.id
                    ));
                }
            }
            let taken = tokio::select! {
                biased;
                () = cancel.cancelled() => break 'run,
                taken = self.take() => taken,
            };
            let (entry, delivered) = match taken {
                Ok(Some(taken)) => taken,
                Ok(None) => continue,
                Err(e) => {
                    drop(permit);
                    let (first, wait) = backoff.failed();
                    if first {
                        self.warn(&format!("reading events failed ({e}); trying again"));
                    } else {
                        self.logger.in_scope(
                            || tracing::debug!(topic = %self.topic, "reading failed again: {e}"),
                        );
                    }
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = cancel.cancelled() => break 'run,
                        () = tx.closed() => break 'run,
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
                    .in_scope(|| tracing::info!(topic = %self.topic, "reading events works again"));
            }
            let acker = Arc::new(RedisAcker {
                entry: StreamEntry {
                    conn: self.conn.clone(),
                    key: self.key.clone(),
                    group: self.group.clone(),
                    consumer: self.consumer.clone(),
                    id: entry.id.clone(),
                },
                delivered,
                max_deliver: self.max_deliver,
                logger: self.logger.clone(),
            });
            let event = match codec::decode(&self.topic, &entry) {
                Ok(event) => event,
                Err(reason) => {
                    skipped(&self.logger, &self.key, &entry.id, &reason);
                    let _ = acker.entry.xack().await;
                    continue;
                }
            };
            if tx.is_closed() {
                // Dropped while reading: give it back to the group at once.
                let _ = acker.entry.give_back().await;
                break 'run;
            }
            self.last = Some(entry.id.clone());
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
            // Whether the consumer took it before going away cannot be told: count it as
            // delivered, like every backend.
            let _ = b.acker.entry.xack().await;
        }
        if self.private {
            let destroyed = redis::cmd("XGROUP")
                .arg("DESTROY")
                .arg(&self.key)
                .arg(&self.group)
                .query_async::<redis::Value>(&mut self.conn)
                .await;
            if let Err(e) = destroyed {
                self.logger.in_scope(|| {
                    tracing::debug!(topic = %self.topic, group = %self.group,
                        "private group not destroyed ({e}); delete it with XGROUP DESTROY")
                });
            }
        }
    }

    fn warn(&self, what: &str) {
        self.logger.in_scope(
            || tracing::warn!(topic = %self.topic, stream = %self.key, group = %self.group, "{what}"),
        );
    }

    /// The next entry for this consumer: an expired pending one, else a new one; `None`
    /// when there was none within the block time (or one was dropped).
    async fn take(&mut self) -> redis::RedisResult<Option<Taken>> {
        if let Some(taken) = self.claim().await? {
            return Ok(taken);
        }
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(self.block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(">")
            .query_async(&mut self.reader)
            .await?;
        Ok(reply
            .and_then(|r| r.keys.into_iter().next())
            .and_then(|k| k.ids.into_iter().next())
            .map(|entry| (entry, 1)))
    }

    /// The oldest pending entry idle for `ack_wait`: `Some(None)` when it was dropped for
    /// its retry limit or taken by another consumer, `None` when there is none.
    async fn claim(&mut self) -> redis::RedisResult<Option<Option<Taken>>> {
        let idle = self.ack_wait.as_millis() as u64;
        let pending: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&self.key)
            .arg(&self.group)
            .arg("IDLE")
            .arg(idle)
            .arg("-")
            .arg("+")
            .arg(1)
            .query_async(&mut self.conn)
            .await?;
        let Some(p) = pending.ids.into_iter().next() else {
            return Ok(None);
        };
        let delivered = p.times_delivered as u64;
        if self.max_deliver.is_some_and(|max| delivered >= max) {
            redis::cmd("XACK")
                .arg(&self.key)
                .arg(&self.group)
                .arg(&p.id)
                .query_async::<()>(&mut self.conn)
                .await?;
            self.warn(&format!(
                "event {} dropped: not acknowledged within its retry limit ({delivered} \
                 deliveries)",
                p.id
            ));
            return Ok(Some(None));
        }
        let claimed: StreamClaimReply = redis::cmd("XCLAIM")
            .arg(&self.key)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(idle)
            .arg(&p.id)
            .query_async(&mut self.conn)
            .await?;
        Ok(Some(
            claimed
                .ids
                .into_iter()
                .next()
                .map(|entry| (entry, delivered + 1)),
        ))
    }

    /// Makes the group again when it is gone.
    async fn recover(&mut self) -> redis::RedisResult<()> {
        let start = self.last.clone().unwrap_or_else(|| self.start.clone());
        super::create_group(&mut self.conn, &self.key, &self.group, &start).await
    }
}
