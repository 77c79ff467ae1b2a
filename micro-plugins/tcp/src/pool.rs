//! Connections kept per address (`client.pool_size`, `client.pool_ttl`).
//!
//! - Up to `size` live connections per address, handed out round-robin; while fewer exist,
//!   each dial makes a new one (one connect at a time per address).
//! - Broken connections are dropped from the pool when next seen, and replaced.
//! - A connection closes itself after `ttl` without open streams (`ttl` 0: never).
//! - `size` 0 turns pooling off: each dial makes a connection of its own, closed once its
//!   handles are dropped and its streams ended.

use crate::client::{Shared, connect};
use crate::conn::Settings;
use micro_core::Result;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Addresses kept in the table before empty entries are swept.
const SWEEP_AT: usize = 64;

/// The connections of one address.
#[derive(Default)]
struct Slot {
    conns: Vec<Arc<Shared>>,
    next: usize,
    /// Held while connecting, so concurrent dials do not overshoot the pool size.
    connecting: Arc<tokio::sync::Mutex<()>>,
}

impl Slot {
    /// Drops closed connections; then a live one round-robin if the pool is full. `None`
    /// (dial another) when it is not, or when the chosen one's peer went away.
    fn pick(&mut self, size: usize) -> Option<Arc<Shared>> {
        self.conns.retain(|c| !c.is_closed());
        if self.conns.len() < size {
            return None;
        }
        self.next = self.next.wrapping_add(1);
        let index = self.next % self.conns.len();
        // Only the chosen connection is checked, and only when idle: the peek costs a system
        // call, and with calls waiting the reader sees a closed peer at once.
        let conn = &self.conns[index];
        if !conn.busy() && conn.peer_closed() {
            self.conns.swap_remove(index);
            return None;
        }
        Some(conn.clone())
    }
}

/// The pool of a transport.
pub(crate) struct Pool {
    size: usize,
    ttl: Duration,
    slots: Mutex<Slots>,
}

/// Every address's slot, and the table size at which closed connections are swept next.
struct Slots {
    by_address: HashMap<String, Slot>,
    sweep_at: usize,
}

impl Pool {
    /// A pool of `size` connections per address, idle ones closed after `ttl`.
    pub fn new(size: usize, ttl: Duration) -> Self {
        Pool {
            size,
            ttl,
            slots: Mutex::new(Slots {
                by_address: HashMap::new(),
                sweep_at: SWEEP_AT,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn idle(&self) -> Option<Duration> {
        (!self.ttl.is_zero()).then_some(self.ttl)
    }

    /// A connection to `address`.
    pub async fn get(
        &self,
        address: &str,
        timeout: Duration,
        settings: &Settings,
    ) -> Result<Arc<Shared>> {
        if self.size == 0 {
            return connect(address, timeout, None, settings).await;
        }
        let connecting = {
            let mut guard = self.lock();
            let table = &mut *guard;
            if table.by_address.len() > table.sweep_at {
                table.by_address.retain(|_, slot| {
                    slot.conns.retain(|c| !c.is_closed());
                    !slot.conns.is_empty() || Arc::strong_count(&slot.connecting) > 1
                });
                // Many live addresses: sweep again only once the table doubled, not per dial.
                table.sweep_at = (2 * table.by_address.len()).max(SWEEP_AT);
            }
            let slots = &mut table.by_address;
            if let Some(conn) = slots.get_mut(address).and_then(|slot| slot.pick(self.size)) {
                return Ok(conn);
            }
            slots
                .entry(address.to_string())
                .or_default()
                .connecting
                .clone()
        };
        let _connecting = connecting.lock().await;
        if let Some(conn) = self
            .lock()
            .by_address
            .get_mut(address)
            .and_then(|slot| slot.pick(self.size))
        {
            return Ok(conn);
        }
        let conn = connect(address, timeout, self.idle(), settings).await?;
        self.lock()
            .by_address
            .entry(address.to_string())
            .or_default()
            .conns
            .push(conn.clone());
        Ok(conn)
    }
}
