//! Locks and leader election on Redis, `sync: { plugin: redis }`.
//!
//! A lock `id` is the key `micro:lock:{id}`, taken with `SET key token NX PX ttl`; the token
//! is unique to the taking, kept by the [`RedisSync`] that took it, and `unlock` deletes the
//! key through a Lua script only while it still holds that token: a holder whose lock lapsed
//! and was taken by someone else cannot free the new holder's lock. A locker that finds the
//! lock taken polls it (every 20 ms, slowing to 200 ms) until it is free or the wait runs out.
//!
//! A leader of election `id` holds the key `micro:leader:{id}` the same way; a renewal task
//! extends its lease every `ttl / 3` with a token-checked `PEXPIRE`. Leadership is lost when
//! a renewal finds another token (or none), or when no renewal succeeded within the lease;
//! [`RedisLeader::lost`] resolves then. `resign` deletes the key (token-checked); dropping the
//! leader only stops the renewal, so the lease lapses after its ttl and a waiting candidate
//! takes over.

use crate::Connector;
use async_trait::async_trait;
use micro_core::config::SyncConfig;
use micro_core::sync::{self, Leader, LeaderOptions, LockOptions};
use micro_core::{Error, Plugin, Result};
use redis::Script;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Error id of this plugin.
const ID: &str = "go.micro.sync.redis";
/// Lifetime of a lock when [`LockOptions::ttl`] is `None`: a holder that dies without
/// unlocking blocks others at most this long.
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(60);
/// Lease of a leader when [`LeaderOptions::ttl`] is `None`.
pub const DEFAULT_LEADER_TTL: Duration = Duration::from_secs(10);
/// First and longest pause between two tries at a taken lock or lease.
const POLL_FIRST: Duration = Duration::from_millis(20);
const POLL_MAX: Duration = Duration::from_millis(200);

/// Deletes KEYS[1] if it holds the token ARGV[1]; 1 when deleted.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Extends KEYS[1] to ARGV[2] ms if it holds the token ARGV[1]; 1 when extended.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

struct Inner {
    connector: Connector,
    unlock: Script,
    renew: Script,
    /// Tokens of the locks this sync took, by lock id.
    held: Mutex<HashMap<String, String>>,
    /// Random per sync, so tokens of two processes (or two syncs) never meet.
    seed: u64,
    next: AtomicU64,
}

impl Inner {
    fn held(&self) -> MutexGuard<'_, HashMap<String, String>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A token no other taking of a lock or lease has.
    fn token(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{}-{:016x}-{n}", std::process::id(), self.seed)
    }

    fn failed(&self, what: &str, e: &redis::RedisError) -> Error {
        if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
            return self.connector.unreachable(e);
        }
        Error::internal(
            ID,
            format!(
                "sync: cannot {what} on Redis at {}: {e}",
                self.connector.address()
            ),
        )
    }

    /// `SET key token NX PX ttl`: whether it was taken.
    async fn take(&self, key: &str, token: &str, ttl: Duration, what: &str) -> Result<bool> {
        let mut con = self.connector.connection().await?;
        let set: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut con)
            .await
            .map_err(|e| self.failed(what, &e))?;
        Ok(set.is_some())
    }

    /// Deletes `key` if it holds `token`: whether it did.
    async fn release(&self, key: &str, token: &str, what: &str) -> Result<bool> {
        let mut con = self.connector.connection().await?;
        let deleted: i64 = self
            .unlock
            .key(key)
            .arg(token)
            .invoke_async(&mut con)
            .await
            .map_err(|e| self.failed(what, &e))?;
        Ok(deleted == 1)
    }
}

/// Whole milliseconds of `d`, at least 1 (Redis refuses a zero `PX`).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The key of lock `id`.
pub fn lock_key(id: &str) -> String {
    format!("micro:lock:{id}")
}

/// The key of election `id`.
pub fn leader_key(id: &str) -> String {
    format!("micro:leader:{id}")
}

/// Locks and leader election on a Redis server. Clones share the connection and the tokens
/// of the locks taken; two values made with [`RedisSync::new`] are two separate holders.
#[derive(Clone)]
pub struct RedisSync {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSync")
            .field("address", &self.inner.connector.address())
            .finish()
    }
}

impl RedisSync {
    /// A sync on `connector`'s server. Nothing is contacted until the first operation.
    pub fn new(connector: Connector) -> Self {
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        RedisSync {
            inner: Arc::new(Inner {
                connector,
                unlock: Script::new(UNLOCK),
                renew: Script::new(RENEW),
                held: Mutex::new(HashMap::new()),
                seed,
                next: AtomicU64::new(0),
            }),
        }
    }

    /// Becomes leader of election `id`, waiting until the current leader resigns or its
    /// lease lapses; the concrete [`RedisLeader`], which can signal the loss of leadership.
    pub async fn elect(&self, id: &str, options: LeaderOptions) -> Result<RedisLeader> {
        sync::check_id(ID, id, "election")?;
        sync::check_ttl(ID, options.ttl, "leader")?;
        let ttl = options.ttl.unwrap_or(DEFAULT_LEADER_TTL);
        let key = leader_key(id);
        let token = self.inner.token();
        let what = format!("take the lease of election {id:?}");
        let mut pause = POLL_FIRST;
        let valid_until = loop {
            let asked = Instant::now();
            if self.inner.take(&key, &token, ttl, &what).await? {
                break asked + ttl;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(POLL_MAX).min(ttl);
        };
        let (tx, rx) = watch::channel(true);
        let state = Arc::new(LeaseState {
            valid_until: Mutex::new(valid_until),
            leading: tx,
        });
        let renewal = tokio::spawn(renew(
            self.inner.clone(),
            key.clone(),
            token.clone(),
            ttl,
            state.clone(),
        ));
        Ok(RedisLeader {
            id: id.to_string(),
            key,
            token,
            inner: self.inner.clone(),
            state,
            watch: rx,
            renewal,
        })
    }
}

#[async_trait]
impl micro_core::sync::Sync for RedisSync {
    fn name(&self) -> &str {
        "redis"
    }

    async fn lock(&self, id: &str, options: LockOptions) -> Result<()> {
        sync::check_id(ID, id, "lock")?;
        sync::check_ttl(ID, options.ttl, "lock")?;
        let ttl = options.ttl.unwrap_or(DEFAULT_LOCK_TTL);
        let give_up = options.wait.and_then(|w| Instant::now().checked_add(w));
        let key = lock_key(id);
        let token = self.inner.token();
        let what = format!("take lock {id:?}");
        let mut pause = POLL_FIRST;
        loop {
            if self.inner.take(&key, &token, ttl, &what).await? {
                self.inner.held().insert(id.to_string(), token);
                return Ok(());
            }
            let now = Instant::now();
            if let Some(at) = give_up {
                if at <= now {
                    let waited = options.wait.unwrap_or_default();
                    return Err(Error::timeout(
                        ID,
                        format!(
                            "lock {id:?} is held by someone else: not freed within \
                             {waited:?}; wait longer or try again later"
                        ),
                    ));
                }
                tokio::time::sleep(pause.min(at - now)).await;
            } else {
                tokio::time::sleep(pause).await;
            }
            pause = (pause * 2).min(POLL_MAX);
        }
    }

    async fn unlock(&self, id: &str) -> Result<()> {
        // Taken out before the key is deleted: a locker of this sync that gets the lock
        // right after puts its own token in.
        let token = self.inner.held().remove(id);
        let Some(token) = token else {
            return Err(Error::not_found(
                ID,
                format!("lock {id:?} is not held here: only the sync that took it can unlock it"),
            ));
        };
        let what = format!("unlock {id:?}");
        if self.inner.release(&lock_key(id), &token, &what).await? {
            Ok(())
        } else {
            Err(Error::not_found(
                ID,
                format!(
                    "lock {id:?} is not held: its ttl ran out before unlock (and someone else \
                     may hold it now); give a longer ttl"
                ),
            ))
        }
    }

    async fn leader(&self, id: &str, options: LeaderOptions) -> Result<Box<dyn Leader>> {
        Ok(Box::new(self.elect(id, options).await?))
    }
}

/// What the renewal task and the leader share.
struct LeaseState {
    /// The lease is ours until then at least (counted from when it was last asked for).
    valid_until: Mutex<Instant>,
    /// `true` while leading; set to `false` once, when leadership is lost or given up.
    leading: watch::Sender<bool>,
}

impl LeaseState {
    fn valid_until(&self) -> MutexGuard<'_, Instant> {
        self.valid_until.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lose(&self) {
        self.leading.send_replace(false);
    }
}

/// Extends the lease every `ttl / 3` until it is lost.
async fn renew(
    inner: Arc<Inner>,
    key: String,
    token: String,
    ttl: Duration,
    state: Arc<LeaseState>,
) {
    let period = (ttl / 3).max(Duration::from_millis(1));
    loop {
        let deadline = *state.valid_until();
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = tokio::time::sleep_until(deadline) => {
                // No renewal made it within the lease: someone else may lead now.
                state.lose();
                return;
            }
        }
        let asked = Instant::now();
        let renewal = async {
            let mut con = match inner.connector.connection().await {
                Ok(con) => con,
                Err(_) => return Ok(-1),
            };
            inner
                .renew
                .key(&key)
                .arg(&token)
                .arg(millis(ttl))
                .invoke_async(&mut con)
                .await
        };
        // A server that stalls past the lease end cannot keep this leader believing it leads.
        let deadline = *state.valid_until();
        let Ok(renewed) = tokio::time::timeout_at(deadline, renewal).await else {
            state.lose();
            return;
        };
        let renewed: redis::RedisResult<i64> = renewed;
        match renewed {
            Ok(1) => *state.valid_until() = asked + ttl,
            Ok(0) => {
                // The key is gone or holds another token.
                state.lose();
                return;
            }
            // Not reachable: try again next period, while the lease lasts.
            _ => {}
        }
    }
}

/// Leadership of one election on Redis, kept alive by a renewal task while this value lives.
pub struct RedisLeader {
    id: String,
    key: String,
    token: String,
    inner: Arc<Inner>,
    state: Arc<LeaseState>,
    watch: watch::Receiver<bool>,
    renewal: JoinHandle<()>,
}

impl std::fmt::Debug for RedisLeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLeader")
            .field("id", &self.id)
            .field("leading", &self.is_leader())
            .finish()
    }
}

impl RedisLeader {
    /// A receiver that turns `false` when leadership is lost or given up.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.watch.clone()
    }
}

impl Drop for RedisLeader {
    fn drop(&mut self) {
        // Like a process dying: the lease is left to lapse.
        self.renewal.abort();
    }
}

#[async_trait]
impl Leader for RedisLeader {
    fn id(&self) -> &str {
        &self.id
    }

    fn is_leader(&self) -> bool {
        *self.watch.borrow() && Instant::now() < *self.state.valid_until()
    }

    async fn resign(&self) -> Result<()> {
        self.renewal.abort();
        self.state.lose();
        // Token-checked: a lease that lapsed and was taken by another is left alone.
        let what = format!("resign from election {:?}", self.id);
        self.inner.release(&self.key, &self.token, &what).await?;
        Ok(())
    }

    /// Resolves the moment the renewal loop finds the lease lapsed or taken over, or on
    /// resigning; at once if already so.
    async fn lost(&self) {
        let mut watch = self.watch.clone();
        // An error means the renewal task is gone, which only happens after losing.
        let _ = watch.wait_for(|leading| !leading).await;
    }
}

/// The plugin-table entry: `sync: { plugin: redis, addresses: [...] }`.
pub fn plugin() -> Plugin {
    Plugin::sync("redis", "redis", |ctx| {
        let config = ctx.options::<SyncConfig>()?;
        let connector = Connector::new(&config.addresses, "sync");
        connector.client()?;
        Ok(Arc::new(RedisSync::new(connector)))
    })
}
