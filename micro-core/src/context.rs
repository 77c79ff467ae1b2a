//! Call context: metadata (case-insensitive headers) and the deadline of a call.

use crate::repeated_keys::{self, Spelling};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Case-insensitive string map carried with every call, like go-micro's `metadata.Metadata`.
///
/// Keys keep the spelling they were first inserted with; lookups ignore case. A call carries
/// a handful of entries, so they are kept in insertion order and searched in turn (no
/// lower-cased copy of a key per lookup, no tree).
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    entries: Vec<(String, String)>,
}

impl Metadata {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(key))
    }

    /// Sets `key` to `value`, replacing any value under the same key in another case.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        match self.position(&key) {
            Some(i) => self.entries[i].1 = value.into(),
            None => self.entries.push((key, value.into())),
        }
    }

    /// The value of `key`, whatever its case.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.position(key).map(|i| self.entries[i].1.as_str())
    }

    /// Removes `key` and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.position(key).map(|i| self.entries.remove(i).1)
    }

    /// Whether the map holds `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Entries as (key as first written, value), in the order they were first inserted.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Copies every entry of `other` into this map, overwriting equal keys.
    pub fn merge(&mut self, other: &Metadata) {
        self.extend(other.iter());
    }
}

/// Equal when both hold the same keys (whatever their case) with the same values, in any
/// order.
impl PartialEq for Metadata {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl Eq for Metadata {}

/// Adds every entry, as [`Metadata::insert`] would one by one, in linear time.
impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for Metadata {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        let before = self.entries.len();
        self.entries
            .extend(iter.into_iter().map(|(k, v)| (k.into(), v.into())));
        if self.entries.len() > before {
            repeated_keys::merge(&mut self.entries, Spelling::First);
        }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut md = Metadata::new();
        md.extend(iter);
        md
    }
}

/// What a handler or a caller knows about the call it is in.
///
/// Clones share the cancellation signal; a clone copies the metadata (see
/// [`Context::deadline_only`] for code that only waits on the deadline).
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Metadata sent with the call (headers other than micro's own).
    pub metadata: Metadata,
    /// When the call must be finished by, if anyone said.
    pub deadline: Option<Instant>,
    cancel: CancellationToken,
}

impl Context {
    /// A context with no metadata and no deadline.
    pub fn new() -> Self {
        Self::default()
    }

    /// A context with this one's deadline and cancellation signal and no metadata: what
    /// [`under_deadline`] needs, without copying the metadata.
    pub fn deadline_only(&self) -> Context {
        Context {
            metadata: Metadata::new(),
            deadline: self.deadline,
            cancel: self.cancel.clone(),
        }
    }

    /// The same context with a deadline `timeout` from now (the earlier one wins). A
    /// timeout too large for the clock to represent sets no deadline.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            return self;
        };
        self.deadline = Some(match self.deadline {
            Some(current) if current < deadline => current,
            _ => deadline,
        });
        self
    }

    /// The same context with one more metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key, value);
        self
    }

    /// Time left before the deadline: `None` when there is no deadline, zero when it passed.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Signals everyone holding a clone of this context that the call is abandoned.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// Whether the call was cancelled or its deadline passed.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled() || self.remaining() == Some(Duration::ZERO)
    }

    /// Completes when the call is cancelled or its deadline passes.
    pub async fn cancelled(&self) {
        match self.deadline {
            Some(deadline) => {
                tokio::select! {
                    _ = self.cancel.cancelled() => {}
                    _ = tokio::time::sleep_until(deadline.into()) => {}
                }
            }
            None => self.cancel.cancelled().await,
        }
    }

    /// A context for a child call: same metadata and deadline, its own cancel signal that
    /// also fires when this one is cancelled.
    pub fn child(&self) -> Context {
        Context {
            metadata: self.metadata.clone(),
            deadline: self.deadline,
            cancel: self.cancel.child_token(),
        }
    }
}

/// Runs `work` until it finishes or `ctx`'s deadline passes. Then the answer is a 408, `ctx` is
/// cancelled so the work can see it, and the work gets up to `grace` to notice before it is
/// dropped. Without a deadline the work simply runs.
pub async fn under_deadline<T>(
    ctx: &Context,
    work: impl std::future::Future<Output = crate::Result<T>>,
    grace: Duration,
) -> crate::Result<T> {
    if ctx.deadline.is_none() {
        return work.await;
    }
    let mut work = std::pin::pin!(work);
    tokio::select! {
        result = &mut work => result,
        _ = ctx.cancelled() => {
            ctx.cancel();
            if !grace.is_zero() {
                let _ = tokio::time::timeout(grace, &mut work).await;
            }
            Err(crate::Error::timeout(
                "go.micro",
                "deadline exceeded before the work finished: the caller's timeout ran out; \
                 give the call a longer timeout (Timeout header, client request_timeout) or \
                 make the handler faster",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_ignores_case() {
        let mut md = Metadata::new();
        md.insert("Micro-Service", "greeter");
        assert_eq!(md.get("micro-service"), Some("greeter"));
        md.insert("MICRO-SERVICE", "other");
        assert_eq!(md.len(), 1);
        assert_eq!(md.get("Micro-Service"), Some("other"));
        let keys: Vec<_> = md.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["Micro-Service"], "the first spelling stays");
        assert_eq!(md.remove("micro-SERVICE").as_deref(), Some("other"));
        assert!(md.is_empty());
        let a: Metadata = [("A", "1"), ("b", "2")].into_iter().collect();
        let b: Metadata = [("B", "2"), ("a", "1")].into_iter().collect();
        assert_eq!(a, b, "order and case of keys do not matter");
        assert_ne!(a, [("A", "1")].into_iter().collect::<Metadata>());
        // Many entries (the hashed path), keys repeated in other cases: first spelling and
        // place, last value.
        let mut many: Vec<(String, String)> = (0..1000)
            .map(|i| (format!("Key-{i}"), format!("v{i}")))
            .collect();
        many.extend((0..1000).map(|i| (format!("KEY-{i}"), format!("w{i}"))));
        let md: Metadata = many.into_iter().collect();
        assert_eq!(md.len(), 1000);
        assert_eq!(md.get("key-7"), Some("w7"));
        assert_eq!(md.iter().nth(7), Some(("Key-7", "w7")));
        let mut merged = Metadata::new();
        merged.insert("key-1", "old");
        merged.merge(&md);
        assert_eq!(merged.len(), 1000);
        assert_eq!(merged.iter().next(), Some(("key-1", "w1")));
    }

    #[tokio::test]
    async fn child_is_cancelled_with_parent() {
        let parent = Context::new();
        let child = parent.child();
        let waiter = tokio::spawn(async move { child.cancelled().await });
        tokio::task::yield_now().await;
        parent.cancel();
        waiter.await.expect("waiter finished");
    }

    #[test]
    fn a_timeout_beyond_the_clock_sets_no_deadline() {
        let ctx = Context::new().with_timeout(Duration::from_secs(u64::MAX));
        assert_eq!(ctx.deadline, None);
        let ctx = Context::new()
            .with_timeout(Duration::from_secs(5))
            .with_timeout(Duration::MAX);
        assert!(ctx.deadline.is_some(), "the earlier deadline stays");
    }

    #[tokio::test]
    async fn deadline_cancels() {
        let ctx = Context::new().with_timeout(Duration::from_millis(10));
        ctx.cancelled().await;
        assert!(ctx.is_cancelled());
    }
}
