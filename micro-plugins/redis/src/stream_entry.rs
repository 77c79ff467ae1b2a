//! One entry of a Redis stream held by a consumer of a consumer group: what the broker's
//! queue groups and the events' consumer groups settle with `XACK` and hand back with
//! `XCLAIM ... IDLE`.

use redis::aio::ConnectionManager;

/// The idle time a nack gives an entry: older than any `ack_wait`, so the next claim of any
/// member takes it at once.
pub(crate) const NACK_IDLE_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

/// Where one delivery lives: the stream, the group, the consumer holding it, its id.
pub(crate) struct StreamEntry {
    pub conn: ConnectionManager,
    pub key: String,
    pub group: String,
    pub consumer: String,
    pub id: String,
}

impl StreamEntry {
    /// Settles the entry (`XACK`).
    pub async fn xack(&self) -> redis::RedisResult<()> {
        redis::cmd("XACK")
            .arg(&self.key)
            .arg(&self.group)
            .arg(&self.id)
            .query_async::<()>(&mut self.conn.clone())
            .await
    }

    /// Sets the entry's idle time (0 = counts from now) without counting a delivery.
    pub async fn set_idle(&self, idle_ms: u64) -> redis::RedisResult<()> {
        redis::cmd("XCLAIM")
            .arg(&self.key)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(0)
            .arg(&self.id)
            .arg("IDLE")
            .arg(idle_ms)
            .arg("JUSTID")
            .query_async::<redis::Value>(&mut self.conn.clone())
            .await
            .map(drop)
    }

    /// Makes the entry claimable by any member of the group now (a nack).
    pub async fn give_back(&self) -> redis::RedisResult<()> {
        self.set_idle(NACK_IDLE_MS).await
    }
}
