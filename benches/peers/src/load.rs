//! The load generator: `concurrency` tasks call in a closed loop until a deadline, every
//! latency goes into an HDR histogram; then the Markdown report.

use crate::Caller;
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A call that takes longer than this counts as an error (and the loop moves on).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The result of one (system, concurrency) point.
pub struct Point {
    /// System name.
    pub system: String,
    /// Concurrent callers.
    pub concurrency: usize,
    /// Successful calls.
    pub calls: u64,
    /// Failed or timed-out calls.
    pub errors: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
    /// From the start until the last caller stopped.
    pub elapsed: Duration,
    /// Latencies of successful calls, in nanoseconds.
    pub latency: Histogram<u64>,
}

impl Point {
    /// Successful calls per second.
    pub fn rps(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency at `quantile` (0..=1), in microseconds.
    pub fn micros(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }
}

fn histogram() -> Histogram<u64> {
    // 1 ns .. 60 s at 3 significant digits; bounds are valid constants.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

struct TaskResult {
    calls: u64,
    errors: u64,
    first_error: Option<String>,
    latency: Histogram<u64>,
}

async fn caller_loop<C: Caller>(caller: Arc<C>, deadline: Instant) -> TaskResult {
    let mut result = TaskResult {
        calls: 0,
        errors: 0,
        first_error: None,
        latency: histogram(),
    };
    while Instant::now() < deadline {
        let start = Instant::now();
        let outcome = match tokio::time::timeout(CALL_TIMEOUT, caller.call()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("timed out after {CALL_TIMEOUT:?}")),
        };
        match outcome {
            Ok(()) => {
                result.calls += 1;
                result
                    .latency
                    .saturating_record(start.elapsed().as_nanos() as u64);
            }
            Err(error) => {
                result.errors += 1;
                result.first_error.get_or_insert(error);
            }
        }
    }
    result
}

/// Runs `concurrency` callers for `duration` and merges what they saw.
pub async fn drive<C: Caller>(
    system: &str,
    caller: &Arc<C>,
    concurrency: usize,
    duration: Duration,
) -> Point {
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| tokio::spawn(caller_loop(caller.clone(), deadline)))
        .collect();
    let mut point = Point {
        system: system.to_string(),
        concurrency,
        calls: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        latency: histogram(),
    };
    // Every loop ends by its deadline plus one call timeout; the extra second is slack.
    let join_by = deadline + CALL_TIMEOUT + Duration::from_secs(1);
    for task in tasks {
        let abort = task.abort_handle();
        match tokio::time::timeout_at(join_by.into(), task).await {
            Ok(Ok(result)) => {
                point.calls += result.calls;
                point.errors += result.errors;
                if point.first_error.is_none() {
                    point.first_error = result.first_error;
                }
                // Same bounds on both sides: adding cannot fail.
                let _ = point.latency.add(&result.latency);
            }
            Ok(Err(join_error)) => {
                point.errors += 1;
                point.first_error.get_or_insert(join_error.to_string());
            }
            Err(_) => {
                abort.abort();
                point.errors += 1;
                point
                    .first_error
                    .get_or_insert("caller did not stop".into());
            }
        }
    }
    point.elapsed = start.elapsed();
    point
}

/// A warm-up of `warmup` (results dropped), then `duration` measured.
pub async fn measure<C: Caller>(
    system: &str,
    caller: &Arc<C>,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
) -> Point {
    if !warmup.is_zero() {
        drive(system, caller, concurrency, warmup).await;
    }
    drive(system, caller, concurrency, duration).await
}

/// The results table in Markdown.
pub fn table(points: &[Point]) -> String {
    let mut out = String::from(
        "| system | c | rps | p50 µs | p99 µs | errors |\n| --- | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for p in points {
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.1} | {:.1} | {} |\n",
            p.system,
            p.concurrency,
            p.rps(),
            p.micros(0.50),
            p.micros(0.99),
            p.errors
        ));
    }
    out
}

/// The points of several rounds pooled per (system, concurrency): calls, errors and time
/// added up and latencies merged, so rps is the mean over the rounds and p99 is that of all
/// their calls. Order: as first seen.
pub fn pool(rounds: Vec<Vec<Point>>) -> Vec<Point> {
    let mut pooled: Vec<Point> = Vec::new();
    for point in rounds.into_iter().flatten() {
        let same = pooled
            .iter_mut()
            .find(|p| p.system == point.system && p.concurrency == point.concurrency);
        match same {
            Some(p) => {
                p.calls += point.calls;
                p.errors += point.errors;
                p.elapsed += point.elapsed;
                p.first_error = p.first_error.take().or(point.first_error);
                // Every histogram has the same bounds, so adding cannot fail.
                let _ = p.latency.add(&point.latency);
            }
            None => pooled.push(point),
        }
    }
    pooled
}

fn find<'a>(points: &'a [Point], system: &str, concurrency: usize) -> Option<&'a Point> {
    points
        .iter()
        .find(|p| p.system == system && p.concurrency == concurrency)
}

/// The ratios the acceptance targets name, as a Markdown table (rows whose systems or
/// concurrency were not run are left out).
pub fn ratios(points: &[Point]) -> String {
    struct Target {
        name: &'static str,
        a: (&'static str, usize),
        b: (&'static str, usize),
        p99: bool,
        at_least: bool,
        bound: f64,
    }
    let targets = [
        Target {
            name: "rps mucp-tcp / tonic, c=64",
            a: ("mucp-tcp", 64),
            b: ("tonic", 64),
            p99: false,
            at_least: true,
            bound: 3.0,
        },
        Target {
            name: "rps mucp-tcp / raw-tcp, c=64",
            a: ("mucp-tcp", 64),
            b: ("raw-tcp", 64),
            p99: false,
            at_least: true,
            bound: 0.70,
        },
        Target {
            name: "p99 mucp-tcp / raw-tcp, c=16",
            a: ("mucp-tcp", 16),
            b: ("raw-tcp", 16),
            p99: true,
            at_least: false,
            bound: 1.5,
        },
        Target {
            name: "rps mucp-http / axum, c=64",
            a: ("mucp-http", 64),
            b: ("axum", 64),
            p99: false,
            at_least: true,
            bound: 1.0,
        },
        Target {
            name: "rps mucp-nats / raw-nats, c=16",
            a: ("mucp-nats", 16),
            b: ("raw-nats", 16),
            p99: false,
            at_least: true,
            bound: 0.9,
        },
        Target {
            name: "rps mucp-nats / raw-nats, c=64",
            a: ("mucp-nats", 64),
            b: ("raw-nats", 64),
            p99: false,
            at_least: true,
            bound: 0.9,
        },
    ];
    let mut out = String::from("| ratio | measured | target | |\n| --- | ---: | ---: | --- |\n");
    for t in targets {
        let (Some(a), Some(b)) = (find(points, t.a.0, t.a.1), find(points, t.b.0, t.b.1)) else {
            continue;
        };
        let measured = if t.p99 {
            a.micros(0.99) / b.micros(0.99).max(1e-9)
        } else {
            a.rps() / b.rps().max(1e-9)
        };
        let met = if t.at_least {
            measured >= t.bound
        } else {
            measured <= t.bound
        };
        out.push_str(&format!(
            "| {} | {:.2} | {} {:.2} | {} |\n",
            t.name,
            measured,
            if t.at_least { "≥" } else { "≤" },
            t.bound,
            if met { "met" } else { "missed" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Instant0;

    impl Caller for Instant0 {
        async fn call(&self) -> Result<(), String> {
            tokio::task::yield_now().await;
            Ok(())
        }
    }

    #[tokio::test]
    async fn drive_stops_by_time_and_reports() {
        let point = drive("x", &Arc::new(Instant0), 4, Duration::from_millis(50)).await;
        assert!(point.calls > 0);
        assert_eq!(point.errors, 0);
        let text = table(&[point]);
        assert!(text.contains("| x | 4 |"));
    }

    fn point(system: &str, concurrency: usize, calls: u64, latency_ns: u64) -> Point {
        let mut latency = histogram();
        latency.record_n(latency_ns, calls).unwrap();
        Point {
            system: system.into(),
            concurrency,
            calls,
            errors: 0,
            first_error: None,
            elapsed: Duration::from_secs(1),
            latency,
        }
    }

    #[test]
    fn rounds_pool_per_system_and_concurrency() {
        let rounds = vec![
            vec![point("a", 1, 100, 1_000), point("b", 1, 50, 2_000)],
            vec![point("a", 1, 300, 3_000), point("b", 1, 50, 2_000)],
        ];
        let pooled = pool(rounds);
        assert_eq!(pooled.len(), 2);
        assert_eq!((pooled[0].system.as_str(), pooled[0].calls), ("a", 400));
        assert_eq!(pooled[0].rps(), 200.0, "the mean over two 1 s rounds");
        assert_eq!(pooled[0].latency.len(), 400, "latencies merged");
        assert!(
            pooled[0].micros(0.5) > 2.0,
            "three quarters of the calls took 3 µs"
        );
        assert_eq!(pooled[1].rps(), 50.0);
    }
}
