//! Distributed coordination: locks with a TTL and a wait limit, and leader election.

use crate::{Error, Result};
use async_trait::async_trait;
use std::time::Duration;

option_struct! {
    /// Options of [`Sync::lock`].
    #[derive(Debug, Clone, Default)]
    pub struct LockOptions {
        /// The lock frees itself after this long if not unlocked; `None` = the backend default.
        pub ttl: Option<Duration>,
        /// How long to wait for a held lock; `None` = the backend default, zero = do not wait.
        pub wait: Option<Duration>,
    }
}

option_struct! {
    /// Options of [`Sync::leader`].
    #[derive(Debug, Clone, Default)]
    pub struct LeaderOptions {
        /// Leadership lapses after this long unless renewed by the holder (a dead leader is
        /// replaced within it); `None` = the backend default.
        pub ttl: Option<Duration>,
    }
}

/// Leadership held by this process. Dropping it without resigning leaves the lease to expire.
#[async_trait]
pub trait Leader: Send + std::marker::Sync {
    /// The election's id.
    fn id(&self) -> &str;
    /// Whether this process still leads (false after resigning or losing the lease).
    fn is_leader(&self) -> bool;
    /// Gives up leadership so another candidate can take it.
    async fn resign(&self) -> Result<()>;
    /// Resolves once this process no longer leads (it resigned, or its lease lapsed or was
    /// taken over), at once if it already does not: a leader awaits it to stop its
    /// leader-only work. The default checks [`is_leader`](Self::is_leader) every 100 ms;
    /// backends with a renewal loop signal the moment it fails.
    async fn lost(&self) {
        while self.is_leader() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A coordination backend.
#[async_trait]
pub trait Sync: Send + std::marker::Sync + 'static {
    /// Plugin name, e.g. `memory`.
    fn name(&self) -> &str;
    /// Takes the lock `id`, waiting up to the wait limit; a 408 error when it stays taken.
    async fn lock(&self, id: &str, options: LockOptions) -> Result<()>;
    /// Frees the lock `id`; a 404 error when it is not held.
    async fn unlock(&self, id: &str) -> Result<()>;
    /// Becomes leader of election `id`, waiting until the current leader resigns or dies.
    async fn leader(&self, id: &str, options: LeaderOptions) -> Result<Box<dyn Leader>>;
}

/// The 400 of a sync plugin (error id `error_id`) for an empty lock or election id (`what`:
/// `lock` or `election`).
pub fn check_id(error_id: &str, id: &str, what: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::bad_request(
            error_id,
            format!("{what} id is empty: give a name"),
        ));
    }
    Ok(())
}

/// The 400 of a sync plugin for a zero ttl (`what`: `lock` or `leader`).
pub fn check_ttl(error_id: &str, ttl: Option<Duration>, what: &str) -> Result<()> {
    if ttl.is_some_and(|t| t.is_zero()) {
        return Err(Error::bad_request(
            error_id,
            format!("{what} ttl must be longer than zero (or none for the default)"),
        ));
    }
    Ok(())
}
