//! What a stopping server tells its requests: new ones are refused, and those still running
//! when the grace period is over are answered with an error and dropped.

use micro_core::Error;
use micro_core::transport::Drain;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const ID: &str = "go.micro.server";

/// A task aborted when dropped: a stop abandoned half-way (e.g. a second signal) still
/// closes the listener and its connections.
pub(crate) struct Task(pub(crate) JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a stop tells the requests of one run of the server.
pub(crate) struct Gate {
    /// Started when the server stops: the listener accepts no connection, and new requests
    /// on open ones are refused.
    pub(crate) drain: Drain,
    /// Set to true when the grace period is over: requests still running are answered with
    /// an error and dropped.
    pub(crate) expired: watch::Sender<bool>,
    /// The grace period, for the error.
    pub(crate) grace: Duration,
}

impl Gate {
    pub(crate) fn new(grace: Duration) -> Self {
        Gate {
            drain: Drain::new(),
            expired: watch::Sender::new(false),
            grace,
        }
    }

    /// `work`, or the grace-period error once a stopping server's grace period is over (the
    /// work is dropped then).
    pub(crate) async fn until_grace_over<T>(
        &self,
        work: impl std::future::Future<Output = micro_core::Result<T>>,
    ) -> micro_core::Result<T> {
        tokio::select! {
            biased;
            result = work => result,
            _ = self.expired() => Err(grace_over(self.grace)),
        }
    }

    /// Completes once the grace period is over.
    pub(crate) async fn expired(&self) {
        let mut expired = self.expired.subscribe();
        if expired.wait_for(|e| *e).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The answer to a request that arrives while the server stops: no handler ran it.
pub(crate) fn shutting_down() -> Error {
    Error::unavailable(
        ID,
        "the server is shutting down and did not run the request; retry on another node",
    )
    .retryable()
}

/// The answer to a request still running when the server's grace period is over.
pub(crate) fn grace_over(grace: Duration) -> Error {
    Error::unavailable(
        ID,
        format!(
            "the server stopped: its grace period ({grace:?}) ran out before the handler \
             finished, so the request was cut short and may have run in part; retry only if \
             it is safe to run twice, or give the server a longer server.grace_period"
        ),
    )
}
