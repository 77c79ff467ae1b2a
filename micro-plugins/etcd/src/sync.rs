//! Locks and leader election on etcd's concurrency API, `sync: { plugin: etcd }`.
//!
//! A lock `id` is taken with etcd's Lock API on the name `<prefix>lock/<id>` under a lease
//! of the lock's TTL, granted for each taking. etcd puts the key `<name>/<lease in hex>`
//! and answers once it is the oldest key of the name: that key is the lock's token, kept
//! with the lease by the [`EtcdSync`] that took it. While the Lock call waits, the lease is
//! kept alive; once the lock is taken the keep-alives stop and one more keep-alive restarts
//! the TTL, so the lock frees itself `ttl` after it was taken (TTLs count in whole seconds,
//! rounded up, and etcd raises one below its minimum, 2 s by default, to that minimum).
//!
//! A wait limit ends the Lock call; its lease is then revoked, which removes the waiting key
//! whatever etcd was doing with it. A wait of zero does not wait at all: the key is put and
//! kept only if it is the oldest of the name, the same layout the Lock API uses.
//!
//! `unlock` deletes the key only while it still belongs to the lease of this taking (one
//! transaction), then revokes the lease: a holder whose lock lapsed gets a 404 and cannot
//! free the next holder's lock, whose key holds another lease.
//!
//! Leader election `id` uses etcd's Election API on `<prefix>leader/<id>`: `Campaign` with a
//! lease of the leader TTL, kept alive by a task from the start of the campaign for as long
//! as the [`EtcdLeader`] lives. Leadership is lost when etcd answers that the lease is gone
//! (revoked or expired), when no keep-alive got through within the lease, or when a watch
//! of the election key sees it deleted behind the leader's back;
//! [`EtcdLeader::lost`] resolves then and `is_leader` turns false. `resign` resigns through
//! the Election API and revokes the lease; dropping the leader only stops the keep-alives,
//! so the lease lapses after its TTL and a waiting candidate takes over.

mod leader;

pub use leader::EtcdLeader;

use crate::connection::Connector;
use crate::key::{holder_key, lock_name, normalize_prefix};
use crate::lease::{self, Granted, KeptAlive};
use crate::options::EtcdSyncOptions;
use async_trait::async_trait;
use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp};
use micro_core::config::SyncConfig;
use micro_core::sync::{self, Leader, LeaderOptions, LockOptions};
use micro_core::{Error, Plugin, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// Error id of this plugin.
const ID: &str = "go.micro.sync.etcd";
/// Lifetime of a lock when [`LockOptions::ttl`] is `None`: a holder that dies without
/// unlocking blocks others at most this long.
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(60);
/// Lease of a leader when [`LeaderOptions::ttl`] is `None`.
pub const DEFAULT_LEADER_TTL: Duration = Duration::from_secs(10);

/// A lock this sync holds: the key etcd made for it and the lease it is under.
#[derive(Debug, Clone)]
struct Held {
    key: String,
    lease: i64,
}

struct Inner {
    connector: Connector,
    prefix: String,
    /// The locks this sync took, by lock id.
    held: Mutex<HashMap<String, Held>>,
}

impl Inner {
    fn held(&self) -> MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How one try at a lock ended.
enum Taking {
    Taken(String),
    Busy,
    Failed(Error),
}

/// Locks and leader election on etcd. Clones share the client and the locks taken; two
/// values made with [`EtcdSync::new`] are two separate holders.
#[derive(Clone)]
pub struct EtcdSync {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EtcdSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdSync")
            .field("address", &self.inner.connector.address())
            .field("prefix", &self.inner.prefix)
            .finish()
    }
}

impl EtcdSync {
    /// A sync on `connector`'s etcd with its keys under `prefix` (a missing final `/` is
    /// added). Nothing is contacted until the first operation.
    pub fn new(connector: Connector, prefix: &str) -> Self {
        EtcdSync {
            inner: Arc::new(Inner {
                connector,
                prefix: normalize_prefix(prefix),
                held: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The name etcd's Lock API gets for lock `id`.
    pub fn lock_name(&self, id: &str) -> String {
        lock_name(&self.inner.prefix, id)
    }

    /// The name etcd's Election API gets for election `id`.
    pub fn election_name(&self, id: &str) -> String {
        crate::key::election_name(&self.inner.prefix, id)
    }

    /// The key (the token) of lock `id` while this sync holds it.
    pub fn held_key(&self, id: &str) -> Option<String> {
        self.inner.held().get(id).map(|h| h.key.clone())
    }

    /// Becomes leader of election `id`, waiting until the current leader resigns or its
    /// lease lapses; the concrete [`EtcdLeader`], which can signal the loss of leadership.
    pub async fn elect(&self, id: &str, options: LeaderOptions) -> Result<EtcdLeader> {
        sync::check_id(ID, id, "election")?;
        sync::check_ttl(ID, options.ttl, "leader")?;
        let ttl = options.ttl.unwrap_or(DEFAULT_LEADER_TTL);
        leader::campaign(self.inner.clone(), id, ttl).await
    }

    /// Puts the key of `lease` under `name` and keeps it only if it is the oldest (what the
    /// Lock API would wait for), without waiting.
    async fn try_take(&self, name: &str, lease: i64, what: &str) -> Result<Taking> {
        let connector = &self.inner.connector;
        let key = holder_key(name, lease);
        connector
            .call(what, |mut c| {
                let key = key.clone();
                async move {
                    c.put(key, "", Some(PutOptions::new().with_lease(lease)))
                        .await
                }
            })
            .await?;
        let owner = connector
            .call(what, |mut c| {
                let prefix = format!("{name}/");
                let first = GetOptions::new()
                    .with_prefix()
                    .with_sort(SortTarget::Create, SortOrder::Ascend)
                    .with_limit(1)
                    .with_keys_only();
                async move { c.get(prefix, Some(first)).await }
            })
            .await?;
        let oldest = owner.kvs().first().map(|kv| kv.key().to_vec());
        if oldest.as_deref() == Some(key.as_bytes()) {
            Ok(Taking::Taken(key))
        } else {
            // The lease's revocation (by the caller) deletes the key.
            Ok(Taking::Busy)
        }
    }

    /// One taking of lock `name` under `lease`: through the Lock API, waiting until
    /// `give_up` (if any), or without waiting.
    async fn take(
        &self,
        name: &str,
        lease: Granted,
        wait: Option<Duration>,
        give_up: Option<Instant>,
        what: &str,
    ) -> Taking {
        if wait == Some(Duration::ZERO) {
            return match self.try_take(name, lease.id, what).await {
                Ok(taking) => taking,
                Err(e) => Taking::Failed(e),
            };
        }
        let connector = &self.inner.connector;
        let client = match connector.client().await {
            Ok(client) => client,
            Err(e) => return Taking::Failed(e),
        };
        // The waiting key must not lapse while it waits.
        let kept = KeptAlive::start(
            client.clone(),
            lease,
            Instant::now() + lease.ttl,
            connector.timeout(),
        );
        let lock = async {
            let mut client = client;
            let options = etcd_client::LockOptions::new().with_lease(lease.id);
            tokio::select! {
                taken = client.lock(name, Some(options)) => Some(taken),
                () = kept.lost() => None,
            }
        };
        let outcome = match give_up {
            Some(at) => tokio::time::timeout_at(at, lock).await.ok(),
            None => Some(lock.await),
        };
        kept.stop();
        match outcome {
            None => Taking::Busy,
            // The waiting lease was lost (etcd unreachable for its whole TTL).
            Some(None) => Taking::Failed(connector.timed_out(what)),
            Some(Some(Ok(taken))) => {
                Taking::Taken(String::from_utf8_lossy(taken.key()).into_owned())
            }
            Some(Some(Err(e))) => Taking::Failed(connector.failed(what, &e)),
        }
    }
}

#[async_trait]
impl micro_core::sync::Sync for EtcdSync {
    fn name(&self) -> &str {
        "etcd"
    }

    async fn lock(&self, id: &str, options: LockOptions) -> Result<()> {
        sync::check_id(ID, id, "lock")?;
        sync::check_ttl(ID, options.ttl, "lock")?;
        let ttl = options.ttl.unwrap_or(DEFAULT_LOCK_TTL);
        let give_up = options.wait.and_then(|w| Instant::now().checked_add(w));
        let name = self.lock_name(id);
        let what = format!("take lock {id:?}");
        let connector = &self.inner.connector;
        loop {
            let lease = lease::grant(connector, ttl, &what).await?;
            let taking = self.take(&name, lease, options.wait, give_up, &what).await;
            let key = match taking {
                Taking::Taken(key) => key,
                Taking::Busy => {
                    let _ = lease::revoke(connector, lease.id, &what).await;
                    let waited = options.wait.unwrap_or_default();
                    return Err(Error::timeout(
                        ID,
                        format!(
                            "lock {id:?} is held by someone else: not freed within \
                             {waited:?}; wait longer or try again later"
                        ),
                    ));
                }
                Taking::Failed(e) => {
                    let _ = lease::revoke(connector, lease.id, &what).await;
                    return Err(e);
                }
            };
            // The ttl counts from the taking, not from the start of the wait.
            let alive = match lease::refresh(connector, lease.id, &what).await {
                Ok(alive) => alive,
                Err(e) => {
                    // Not known to be held: free it rather than leave it to lapse.
                    let _ = lease::revoke(connector, lease.id, &what).await;
                    return Err(e);
                }
            };
            if alive {
                self.inner.held().insert(
                    id.to_string(),
                    Held {
                        key,
                        lease: lease.id,
                    },
                );
                return Ok(());
            }
            // The lease lapsed just as the lock came: it is not held; try again.
        }
    }

    async fn unlock(&self, id: &str) -> Result<()> {
        // Taken out before the key is deleted: a locker of this sync that gets the lock
        // right after puts its own key in.
        let held = self.inner.held().remove(id);
        let Some(held) = held else {
            return Err(Error::not_found(
                ID,
                format!("lock {id:?} is not held here: only the sync that took it can unlock it"),
            ));
        };
        let what = format!("unlock {id:?}");
        let connector = &self.inner.connector;
        // Only the key of this taking, and only while its lease holds it.
        let txn = Txn::new()
            .when([Compare::lease(
                held.key.clone(),
                CompareOp::Equal,
                held.lease,
            )])
            .and_then([TxnOp::delete(held.key.clone(), None)]);
        let deleted = connector
            .call(&what, |mut c| async move { c.txn(txn).await })
            .await?
            .succeeded();
        // Best effort: the lease holds nothing now, and lapses by its ttl if this fails.
        let _ = lease::revoke(connector, held.lease, &what).await;
        if deleted {
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

/// The plugin-table entry: `sync: { plugin: etcd, addresses: [127.0.0.1:2379] }`.
pub fn plugin() -> Plugin {
    Plugin::sync("etcd", "etcd", |ctx| {
        let config: SyncConfig = ctx.options()?;
        let options: EtcdSyncOptions = ctx.options()?;
        let connector = Connector::new(options.settings(&config.addresses), "sync")?;
        Ok(Arc::new(EtcdSync::new(connector, &options.prefix)))
    })
    .with_options::<EtcdSyncOptions>()
}
