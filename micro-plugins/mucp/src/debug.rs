//! The endpoints every service answers: `Debug.Health` and `Debug.Stats`, and the counters
//! behind them (also used to drain in-flight requests on stop).

use micro_core::Context;
use micro_core::server::Handler;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

/// Request counters of one server.
pub struct Stats {
    started: Mutex<(Instant, SystemTime)>,
    /// Requests received.
    pub requests: AtomicU64,
    /// Requests that ended in an error.
    pub errors: AtomicU64,
    /// Requests being served now.
    pub in_flight: AtomicUsize,
    idle: Notify,
}

/// Counts one request in flight until dropped.
pub struct InFlight<'a>(&'a Stats);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// Fresh counters, started now.
    pub fn new() -> Self {
        Stats {
            started: Mutex::new((Instant::now(), SystemTime::now())),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
        }
    }

    /// Marks the server (re)started now.
    pub fn restart(&self) {
        *self.started.lock().unwrap_or_else(|e| e.into_inner()) =
            (Instant::now(), SystemTime::now());
    }

    /// Counts a request until the guard drops.
    pub fn begin(&self) -> InFlight<'_> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self)
    }

    /// Completes when no request is in flight.
    pub async fn drained(&self) {
        loop {
            let idle = self.idle.notified();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// The `Debug.Stats` answer.
    pub fn snapshot(&self) -> Value {
        let (since, started) = *self.started.lock().unwrap_or_else(|e| e.into_inner());
        let (memory, threads) = process_usage();
        json!({
            "started": started.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
            "uptime": since.elapsed().as_secs(),
            "memory": memory,
            "threads": threads,
            "requests": self.requests.load(Ordering::Relaxed),
            "errors": self.errors.load(Ordering::Relaxed),
        })
    }
}

/// Resident memory in bytes and thread count, from /proc where there is one (else zeros).
fn process_usage() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:") * 1024, field("Threads:"))
}

/// `Debug.Health` (`{"status":"ok"}`) and `Debug.Stats`.
pub fn handlers(stats: Arc<Stats>) -> Vec<Handler> {
    vec![
        Handler::unary("Debug.Health", |_: Context, _: Value| async {
            Ok(json!({"status": "ok"}))
        }),
        Handler::unary("Debug.Stats", move |_: Context, _: Value| {
            let stats = stats.clone();
            async move { Ok(stats.snapshot()) }
        }),
    ]
}
