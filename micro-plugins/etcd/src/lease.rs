//! Leases of the sync: granting, revoking, one keep-alive, and [`KeptAlive`], the task that
//! keeps a lease alive while a lock is waited for or an election is led.

use crate::connection::Connector;
use micro_core::Result;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Whole seconds of `ttl`, rounded up, at least 1 (etcd leases count in seconds).
pub(crate) fn seconds(ttl: Duration) -> i64 {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
}

/// A granted lease: its id and the TTL etcd chose (at least etcd's minimum).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Granted {
    pub id: i64,
    pub ttl: Duration,
}

/// Grants a lease of `ttl`.
pub(crate) async fn grant(connector: &Connector, ttl: Duration, what: &str) -> Result<Granted> {
    let secs = seconds(ttl);
    let granted = connector
        .call(what, |mut c| async move { c.lease_grant(secs, None).await })
        .await?;
    let ttl = Duration::from_secs(u64::try_from(granted.ttl()).unwrap_or(1).max(1));
    Ok(Granted {
        id: granted.id(),
        ttl,
    })
}

/// Revokes `lease` (its keys go with it); a lease that is gone already is not an error.
pub(crate) async fn revoke(connector: &Connector, lease: i64, what: &str) -> Result<()> {
    connector
        .call(what, |mut c| async move {
            match c.lease_revoke(lease).await {
                // gRPC NotFound: "requested lease not found".
                Err(etcd_client::Error::GRpcStatus(s)) if s.code() as i32 == 5 => Ok(()),
                other => other.map(drop),
            }
        })
        .await
}

/// Sends one keep-alive for `lease`: whether it is still alive (its TTL starts again).
pub(crate) async fn refresh(connector: &Connector, lease: i64, what: &str) -> Result<bool> {
    connector
        .call(what, |mut c| async move {
            match c.lease_keep_alive(lease).await {
                Ok(_) => Ok(true),
                Err(etcd_client::Error::LeaseKeepAliveError(_)) => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await
}

/// What the keep-alive task and its owner share.
struct State {
    /// The lease is alive until then at least (counted from the last keep-alive sent).
    valid_until: Mutex<Instant>,
    /// `true` while the lease is kept; set to `false` once, when it is lost or given up.
    alive: watch::Sender<bool>,
}

impl State {
    fn valid_until(&self) -> MutexGuard<'_, Instant> {
        self.valid_until.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lose(&self) {
        self.alive.send_replace(false);
    }
}

/// A lease kept alive by a background task (a keep-alive every third of its TTL) until
/// [`KeptAlive::stop`] or drop. Losing it (etcd says it is gone, or no keep-alive got an
/// answer before it would have lapsed) is signalled once and stops the task.
pub(crate) struct KeptAlive {
    state: Arc<State>,
    watch: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl KeptAlive {
    /// Starts keeping `lease` alive; it is known alive until `valid_until`.
    pub(crate) fn start(
        client: etcd_client::Client,
        lease: Granted,
        valid_until: Instant,
        timeout: Duration,
    ) -> Self {
        let (tx, rx) = watch::channel(true);
        let state = Arc::new(State {
            valid_until: Mutex::new(valid_until),
            alive: tx,
        });
        let task = tokio::spawn(keep(client, lease, timeout, state.clone()));
        KeptAlive {
            state,
            watch: rx,
            task,
        }
    }

    /// Whether the lease is still alive as far as this process knows.
    pub(crate) fn is_alive(&self) -> bool {
        *self.watch.borrow() && Instant::now() < *self.state.valid_until()
    }

    /// Moves the known end of the lease (after a keep-alive sent by someone else).
    pub(crate) fn alive_until(&self, at: Instant) {
        *self.state.valid_until() = at;
    }

    /// Resolves once the lease is lost or given up; at once if it already is.
    pub(crate) async fn lost(&self) {
        let mut watch = self.watch.clone();
        // An error means the task is gone, which only happens after losing.
        let _ = watch.wait_for(|alive| !alive).await;
    }

    /// A receiver that turns `false` when the lease is lost or given up.
    pub(crate) fn watch(&self) -> watch::Receiver<bool> {
        self.watch.clone()
    }

    /// Stops the keep-alives; the lease lapses after its TTL unless revoked. Marks it lost.
    pub(crate) fn stop(&self) {
        self.task.abort();
        self.state.lose();
    }

    /// A handle that does [`KeptAlive::stop`] from elsewhere (a task that finds what the
    /// lease was for gone).
    pub(crate) fn stopper(&self) -> Stopper {
        Stopper {
            state: self.state.clone(),
            task: self.task.abort_handle(),
        }
    }
}

/// Stops a [`KeptAlive`] and marks its lease lost, from another task.
pub(crate) struct Stopper {
    state: Arc<State>,
    task: tokio::task::AbortHandle,
}

impl Stopper {
    /// As [`KeptAlive::stop`].
    pub(crate) fn stop(&self) {
        self.task.abort();
        self.state.lose();
    }

    /// Whether the lease is lost or given up already.
    pub(crate) fn stopped(&self) -> bool {
        !*self.state.alive.borrow()
    }
}

impl Drop for KeptAlive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Keeps `lease` alive every `ttl / 3` on one keep-alive stream (made again when it breaks)
/// until it is lost.
async fn keep(
    mut client: etcd_client::Client,
    lease: Granted,
    timeout: Duration,
    state: Arc<State>,
) {
    let period = (lease.ttl / 3).max(Duration::from_millis(100));
    let mut channel: Option<(etcd_client::LeaseKeeper, etcd_client::LeaseKeepAliveStream)> = None;
    loop {
        let deadline = *state.valid_until();
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = tokio::time::sleep_until(deadline) => {
                // No keep-alive got through within the lease: it may be gone.
                state.lose();
                return;
            }
        }
        let asked = Instant::now();
        let attempt = async {
            match channel.as_mut() {
                None => match client.lease_keep_alive(lease.id).await {
                    // Making the stream sent one keep-alive and read a live answer.
                    Ok(made) => {
                        channel = Some(made);
                        Ok(Some(lease.ttl))
                    }
                    Err(etcd_client::Error::LeaseKeepAliveError(_)) => Ok(None),
                    Err(e) => Err(e),
                },
                Some((keeper, stream)) => {
                    keeper.keep_alive().await?;
                    match stream.message().await? {
                        Some(answer) if answer.ttl() > 0 => Ok(Some(Duration::from_secs(
                            u64::try_from(answer.ttl()).unwrap_or(1),
                        ))),
                        Some(_) => Ok(None),
                        None => Err(etcd_client::Error::LeaseKeepAliveError(
                            "keep-alive stream closed".to_string(),
                        )),
                    }
                }
            }
        };
        // A server that stalls cannot keep this lease believed alive past its end.
        let limit = deadline.min(asked + timeout);
        let result = tokio::time::timeout_at(limit, attempt).await;
        match result {
            Ok(Ok(Some(ttl))) => *state.valid_until() = asked + ttl,
            Ok(Ok(None)) => {
                // etcd says the lease is gone (expired or revoked).
                state.lose();
                return;
            }
            // Not reachable now: a new stream next period, while the lease lasts.
            Ok(Err(_)) | Err(_) => channel = None,
        }
    }
}
