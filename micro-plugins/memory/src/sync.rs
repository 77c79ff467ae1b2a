//! In-process locks and leader election.
//!
//! A lock is an entry with an optional expiry; a waiting locker sleeps until the lock is
//! freed (woken by `unlock`) or its expiry passes. A leader holds a lease of `ttl` that a
//! renewal task extends every `ttl / 3` while the [`Leader`] value lives; `resign` removes
//! the lease at once, while dropping the value (the process "dying") only stops the renewal,
//! so the lease lapses after `ttl` and a waiting candidate takes over.

use async_trait::async_trait;
use micro_core::sync::{self, Leader, LeaderOptions, LockOptions};
use micro_core::{Error, Plugin, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Error id of this plugin.
const ID: &str = "go.micro.sync.memory";
/// Lease of a leader when [`LeaderOptions::ttl`] is `None`.
pub const DEFAULT_LEADER_TTL: Duration = Duration::from_secs(10);

/// One leader's lease.
#[derive(Debug, Clone, Copy)]
struct Lease {
    token: u64,
    expires: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    /// Held locks and when they free themselves (`None` = only by unlock).
    locks: Mutex<HashMap<String, Option<Instant>>>,
    /// Leases of the elections.
    leases: Mutex<HashMap<String, Lease>>,
    /// Woken whenever a lock or a lease is freed.
    freed: Notify,
    next_token: AtomicU64,
}

impl Inner {
    fn locks(&self) -> MutexGuard<'_, HashMap<String, Option<Instant>>> {
        self.locks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn leases(&self) -> MutexGuard<'_, HashMap<String, Lease>> {
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// In-process locks and leader election. Clones share the same locks; two values made with
/// [`MemorySync::new`] are independent.
#[derive(Debug, Clone, Default)]
pub struct MemorySync {
    inner: Arc<Inner>,
}

impl MemorySync {
    /// No locks held, no leaders.
    pub fn new() -> Self {
        Self::default()
    }
}

/// Sleeps until `at`, or forever when `None`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[async_trait]
impl micro_core::sync::Sync for MemorySync {
    fn name(&self) -> &str {
        "memory"
    }

    async fn lock(&self, id: &str, options: LockOptions) -> Result<()> {
        sync::check_id(ID, id, "lock")?;
        sync::check_ttl(ID, options.ttl, "lock")?;
        let give_up = options.wait.and_then(|w| Instant::now().checked_add(w));
        loop {
            let freed = self.inner.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let now = Instant::now();
            let held_until = {
                let mut locks = self.inner.locks();
                match locks.get(id) {
                    Some(expiry) if expiry.is_none_or(|at| at > now) => *expiry,
                    _ => {
                        let expiry = options.ttl.and_then(|ttl| now.checked_add(ttl));
                        locks.insert(id.to_string(), expiry);
                        return Ok(());
                    }
                }
            };
            if give_up.is_some_and(|at| at <= now) {
                let waited = options.wait.unwrap_or_default();
                return Err(Error::timeout(
                    ID,
                    format!("lock {id:?} is held: not freed within {waited:?}"),
                ));
            }
            let wake = match (held_until, give_up) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                () = freed.as_mut() => {}
                () = sleep_until(wake) => {}
            }
        }
    }

    async fn unlock(&self, id: &str) -> Result<()> {
        let now = Instant::now();
        let held = match self.inner.locks().remove(id) {
            Some(expiry) => expiry.is_none_or(|at| at > now),
            None => false,
        };
        if held {
            self.inner.freed.notify_waiters();
            Ok(())
        } else {
            Err(Error::not_found(ID, format!("lock {id:?} is not held")))
        }
    }

    async fn leader(&self, id: &str, options: LeaderOptions) -> Result<Box<dyn Leader>> {
        sync::check_id(ID, id, "election")?;
        sync::check_ttl(ID, options.ttl, "leader")?;
        let ttl = options.ttl.unwrap_or(DEFAULT_LEADER_TTL);
        let token = loop {
            let freed = self.inner.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let now = Instant::now();
            let current = {
                let mut leases = self.inner.leases();
                match leases.get(id) {
                    Some(lease) if lease.expires > now => lease.expires,
                    _ => {
                        let token = self.inner.next_token.fetch_add(1, Ordering::Relaxed);
                        let expires = now.checked_add(ttl).unwrap_or(now);
                        leases.insert(id.to_string(), Lease { token, expires });
                        break token;
                    }
                }
            };
            tokio::select! {
                () = freed.as_mut() => {}
                () = sleep_until(Some(current)) => {}
            }
        };
        let renewal = tokio::spawn(renew(
            Arc::downgrade(&self.inner),
            id.to_string(),
            token,
            ttl,
        ));
        Ok(Box::new(MemoryLeader {
            id: id.to_string(),
            token,
            inner: Arc::downgrade(&self.inner),
            renewal,
        }))
    }
}

/// Extends the lease `token` of election `id` every `ttl / 3` until it is lost or resigned,
/// or the [`MemorySync`] is gone.
async fn renew(inner: Weak<Inner>, id: String, token: u64, ttl: Duration) {
    let period = (ttl / 3).max(Duration::from_millis(1));
    loop {
        tokio::time::sleep(period).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let now = Instant::now();
        let mut leases = inner.leases();
        match leases.get_mut(&id) {
            Some(lease) if lease.token == token && lease.expires > now => {
                lease.expires = now.checked_add(ttl).unwrap_or(lease.expires);
            }
            _ => return,
        }
    }
}

/// Leadership of one election, kept alive by a renewal task while this value lives.
#[derive(Debug)]
pub struct MemoryLeader {
    id: String,
    token: u64,
    inner: Weak<Inner>,
    renewal: JoinHandle<()>,
}

impl Drop for MemoryLeader {
    fn drop(&mut self) {
        // Like a process dying: the lease is left to lapse.
        self.renewal.abort();
    }
}

#[async_trait]
impl Leader for MemoryLeader {
    fn id(&self) -> &str {
        &self.id
    }

    fn is_leader(&self) -> bool {
        let Some(inner) = self.inner.upgrade() else {
            return false;
        };
        let now = Instant::now();
        inner
            .leases()
            .get(&self.id)
            .is_some_and(|lease| lease.token == self.token && lease.expires > now)
    }

    async fn resign(&self) -> Result<()> {
        self.renewal.abort();
        let Some(inner) = self.inner.upgrade() else {
            return Ok(());
        };
        let removed = {
            let mut leases = inner.leases();
            let ours = leases.get(&self.id).is_some_and(|l| l.token == self.token);
            if ours {
                leases.remove(&self.id);
            }
            ours
        };
        if removed {
            inner.freed.notify_waiters();
        }
        Ok(())
    }
}

/// The plugin-table entry: `sync: { plugin: memory }`.
pub fn plugin() -> Plugin {
    Plugin::sync("memory", "memory", |_| Ok(Arc::new(MemorySync::new())))
}
