//! Helpers shared by the suites: deadlines, unique names, polling, and [`Fixture`], what a
//! suite's factory returns.
//!
//! Plugin tests may use them too, so their own checks wait as long as the suites do.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a check waits for something that should happen (delivery, expiry, event)
/// before failing. Generous on purpose: checks never assert on speed.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// How long a check waits to be reasonably sure something does NOT happen.
pub const GRACE: Duration = Duration::from_millis(300);

/// Pause between two polls of [`eventually`].
pub const POLL: Duration = Duration::from_millis(50);

/// A name no other check or concurrent run uses (lowercase hex after the prefix, valid as a
/// topic, key, table or lock name in any backend).
pub fn unique(prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(nanos);
    hasher.write_u32(std::process::id());
    format!("{prefix}_{:x}{:x}", hasher.finish(), nanos & 0xffff_ffff)
}

/// Polls `probe` until it returns `Some`, or panics with `what` after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("{what}: still not true after {DEADLINE:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Awaits `future`, or panics with `what` after [`DEADLINE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: nothing after {DEADLINE:?}"),
    }
}

/// What the factory given to a suite macro returns: the component under test, alone
/// (`Arc<dyn Registry>`) or paired with something that must outlive it, such as the
/// temporary directory a file-backed plugin writes to (`(Arc<dyn Store>, TempDir)`).
///
/// The generated test keeps the whole value until the case has finished, then drops it.
pub trait Fixture<C: ?Sized> {
    /// The component under test.
    fn component(&self) -> Arc<C>;
}

impl<C: ?Sized> Fixture<C> for Arc<C> {
    fn component(&self) -> Arc<C> {
        self.clone()
    }
}

impl<C: ?Sized, G> Fixture<C> for (Arc<C>, G) {
    fn component(&self) -> Arc<C> {
        self.0.clone()
    }
}
