//! Leader election on etcd's Election API: the campaign and the [`EtcdLeader`] it gives.

use super::{ID, Inner};
use crate::lease::{self, KeptAlive};
use async_trait::async_trait;
use etcd_client::{LeaderKey, ResignOptions};
use micro_core::sync::Leader;
use micro_core::{Error, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
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
            return Ok(EtcdLeader {
                id: id.to_string(),
                key,
                lease: granted.id,
                inner,
                kept,
            });
        }
        kept.stop();
        let _ = lease::revoke(connector, granted.id, &what).await;
    }
}

/// Leadership of one election on etcd, its lease kept alive while this value lives.
pub struct EtcdLeader {
    id: String,
    key: LeaderKey,
    lease: i64,
    inner: Arc<Inner>,
    kept: KeptAlive,
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
    /// kept alive) or given up; at once if it already is.
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
