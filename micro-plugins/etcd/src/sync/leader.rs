//! Leader election on etcd's Election API: the campaign and the [`EtcdLeader`] it gives.

use super::{ID, Inner};
use crate::lease::{self, KeptAlive, Stopper};
use async_trait::async_trait;
use etcd_client::{EventType, LeaderKey, ResignOptions, WatchOptions};
use micro_core::backoff::Backoff;
use micro_core::sync::Leader;
use micro_core::{Error, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Campaigns in election `id` with a lease of `ttl` until elected.
pub(super) async fn campaign(inner: Arc<Inner>, id: &str, ttl: Duration) -> Result<EtcdLeader> {
    let name = crate::key::election_name(&inner.prefix, id);
    let what = format!("campaign in election {id:?}");
    let connector = &inner.connector;
    let client = connector.client().await?;
    let value = format!("pid {}", std::process::id());
    loop {
        let granted = lease::grant(connector, ttl, &what).await?;
        let kept = KeptAlive::start(
            client.clone(),
            granted,
            Instant::now() + granted.ttl,
            connector.timeout(),
        );
        let campaign = async {
            let mut client = client.clone();
            client
                .campaign(name.as_str(), value.as_str(), granted.id)
                .await
        };
        let elected = tokio::select! {
            elected = campaign => Some(elected),
            // Lost while campaigning (etcd unreachable for the whole lease): start over.
            () = kept.lost() => None,
        };
        let key = match elected {
            Some(Ok(mut response)) => response.take_leader(),
            Some(Err(e)) => {
                kept.stop();
                let _ = lease::revoke(connector, granted.id, &what).await;
                return Err(connector.failed(&what, &e));
            }
            None => None,
        };
        // Elected with a lease that is still alive: leading from now.
        let asked = Instant::now();
        if let Some(key) = key
            && kept.is_alive()
            && lease::refresh(connector, granted.id, &what).await?
        {
            kept.alive_until(asked + granted.ttl);
            let guard = tokio::spawn(guard(
                client.clone(),
                key.key().to_vec(),
                key.rev(),
                kept.stopper(),
            ));
            return Ok(EtcdLeader {
                id: id.to_string(),
                key,
                lease: granted.id,
                inner,
                kept,
                guard,
            });
        }
        kept.stop();
        let _ = lease::revoke(connector, granted.id, &what).await;
    }
}

/// Stops leadership when the election key (made at revision `created`) is deleted or made
/// anew behind the leader's back while its lease lives on; that etcd is reachable at all is
/// the keep-alives' concern.
async fn guard(mut client: etcd_client::Client, key: Vec<u8>, created: i64, stopper: Stopper) {
    let mut from = created + 1;
    let mut backoff = Backoff::new();
    while !stopper.stopped() {
        let options = WatchOptions::new().with_start_revision(from);
        if let Ok(mut stream) = client.watch(key.clone(), Some(options)).await {
            // Until the watch breaks or is cancelled (its revision compacted away).
            while let Ok(Some(response)) = stream.message().await {
                if response.canceled() {
                    break;
                }
                backoff.succeeded();
                for event in response.events() {
                    if event.event_type() == EventType::Delete {
                        stopper.stop();
                        return;
                    }
                    if let Some(kv) = event.kv() {
                        from = kv.mod_revision() + 1;
                    }
                }
            }
        }
        // Look at the key itself before watching again.
        if let Ok(got) = client.get(key.clone(), None).await {
            match got.kvs().first() {
                Some(kv) if kv.create_revision() == created => {
                    from = got.header().map_or(from, |h| h.revision() + 1);
                }
                _ => {
                    stopper.stop();
                    return;
                }
            }
        }
        let (_, wait) = backoff.failed();
        tokio::time::sleep(wait).await;
    }
}

/// Leadership of one election on etcd, its lease kept alive while this value lives.
pub struct EtcdLeader {
    id: String,
    key: LeaderKey,
    lease: i64,
    inner: Arc<Inner>,
    kept: KeptAlive,
    /// Watches the election key (see [`guard`]).
    guard: JoinHandle<()>,
}

impl Drop for EtcdLeader {
    fn drop(&mut self) {
        // Like a process dying: the lease is left to lapse (the keep-alives stop with `kept`).
        self.guard.abort();
    }
}

impl std::fmt::Debug for EtcdLeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdLeader")
            .field("id", &self.id)
            .field("key", &self.key_str())
            .field("leading", &self.is_leader())
            .finish()
    }
}

impl EtcdLeader {
    /// Resolves once leadership is lost (the lease was revoked, expired, or could not be
    /// kept alive, or the election key was deleted) or given up; at once if it already is.
    pub async fn lost(&self) {
        self.kept.lost().await;
    }

    /// A receiver that turns `false` when leadership is lost or given up.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.kept.watch()
    }

    /// The lease the leadership is under.
    pub fn lease(&self) -> i64 {
        self.lease
    }

    /// The election key etcd made for this leader (`<name>/<lease in hex>`).
    pub fn key_str(&self) -> String {
        String::from_utf8_lossy(self.key.key()).into_owned()
    }
}

#[async_trait]
impl Leader for EtcdLeader {
    fn id(&self) -> &str {
        &self.id
    }

    fn is_leader(&self) -> bool {
        self.kept.is_alive()
    }

    async fn resign(&self) -> Result<()> {
        self.guard.abort();
        self.kept.stop();
        let what = format!("resign from election {:?}", self.id);
        let connector = &self.inner.connector;
        let options = ResignOptions::new().with_leader(self.key.clone());
        let resigned = connector
            .call(&what, |mut c| async move { c.resign(Some(options)).await })
            .await;
        // Revoking the lease removes the election key in any case; a lease gone already
        // (lost leadership) is not an error.
        let revoked = lease::revoke(connector, self.lease, &what).await;
        match (resigned, revoked) {
            (_, Ok(())) => Ok(()),
            (Err(e), Err(_)) | (Ok(_), Err(e)) => Err(Error::new(ID, e.code, e.detail)),
        }
    }
}
