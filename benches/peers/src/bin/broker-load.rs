//! `broker-load`: publish→deliver throughput of micro's `nats` broker against a raw
//! async-nats publisher and subscriber, on a running nats-server (default the shared one at
//! 127.0.0.1:4222).
//!
//! ```sh
//! cargo run --release -p micro-bench-peers --bin broker-load -- \
//!     [--systems raw-nats,micro-nats] [--messages 200000] [--size 128] [--rounds 3] \
//!     [--nats nats://127.0.0.1:4222]
//! ```
//!
//! Each run: one subscriber connection and one publisher connection (as two services
//! would have), `--messages` messages of `--size` bytes published as fast as the publisher
//! goes, timed from the first publish until the subscriber has seen the last one (or until
//! nothing arrived for 5 s: core NATS drops messages for a subscriber that falls behind, and
//! the table then shows fewer delivered). Systems run round-robin, `--rounds` times; the
//! summary is the median rate of each system's complete rounds (every message delivered).

use bytes::Bytes;
use futures::StreamExt;
use micro::broker::{self, Broker, Message, SubscribeOptions};
use micro::logger::Logger;
use micro::nats::NatsBroker;
use micro::nats::broker::NatsBrokerOptions;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: broker-load [--systems raw-nats,micro-nats] [--messages N] \
[--size BYTES] [--rounds N] [--nats URL]";

/// How long the subscriber may see nothing before a run ends short.
const QUIET: Duration = Duration::from_secs(5);

struct Options {
    systems: Vec<String>,
    messages: u64,
    size: usize,
    rounds: usize,
    nats: String,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        systems: vec!["raw-nats".into(), "micro-nats".into()],
        messages: 200_000,
        size: 128,
        rounds: 3,
        nats: "nats://127.0.0.1:4222".into(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: bad number {v:?}"))
        };
        match flag.as_str() {
            "--systems" => options.systems = value()?.split(',').map(str::to_string).collect(),
            "--messages" => options.messages = number(value()?)?.max(1),
            "--size" => options.size = number(value()?)? as usize,
            "--rounds" => options.rounds = number(value()?)?.max(1) as usize,
            "--nats" => options.nats = value()?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if let Some(bad) = options
        .systems
        .iter()
        .find(|s| !["raw-nats", "micro-nats"].contains(&s.as_str()))
    {
        return Err(format!("unknown system {bad:?}: raw-nats, micro-nats"));
    }
    Ok(options)
}

/// Messages seen by the subscriber; `done` is notified at the last one.
#[derive(Default)]
struct Seen {
    count: AtomicU64,
    done: Notify,
}

impl Seen {
    fn one(&self, total: u64) {
        if self.count.fetch_add(1, Ordering::Relaxed) + 1 == total {
            self.done.notify_one();
        }
    }

    /// Waits for `total`, or until the count stops moving for [`QUIET`].
    async fn wait(&self, total: u64) -> u64 {
        loop {
            let before = self.count.load(Ordering::Relaxed);
            if before >= total {
                return before;
            }
            if tokio::time::timeout(QUIET, self.done.notified())
                .await
                .is_err()
                && self.count.load(Ordering::Relaxed) == before
            {
                return before;
            }
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One run: (delivered, elapsed).
async fn run(system: &str, options: &Options, round: usize) -> Result<(u64, Duration), BoxError> {
    let topic = format!("bench.broker.{}.{round}.{}", system, std::process::id());
    let payload = Bytes::from(vec![b'x'; options.size]);
    let total = options.messages;
    let seen = Arc::new(Seen::default());
    match system {
        "raw-nats" => {
            let subscriber = async_nats::connect(&options.nats).await?;
            let publisher = async_nats::connect(&options.nats).await?;
            let mut subscription = subscriber.subscribe(topic.clone()).await?;
            subscriber.flush().await?;
            let counter = seen.clone();
            let task = tokio::spawn(async move {
                while subscription.next().await.is_some() {
                    counter.one(total);
                }
            });
            let started = Instant::now();
            for _ in 0..total {
                publisher.publish(topic.clone(), payload.clone()).await?;
            }
            publisher.flush().await?;
            let delivered = seen.wait(total).await;
            let elapsed = started.elapsed();
            task.abort();
            Ok((delivered, elapsed))
        }
        _ => {
            let addresses = [options.nats.clone()];
            let subscriber =
                NatsBroker::new(&addresses, NatsBrokerOptions::default(), Logger::none());
            let publisher =
                NatsBroker::new(&addresses, NatsBrokerOptions::default(), Logger::none());
            let counter = seen.clone();
            let handler = broker::handler(move |_delivery| {
                counter.one(total);
                async { Ok(()) }
            });
            let subscription = subscriber
                .subscribe(&topic, handler, SubscribeOptions::default())
                .await?;
            publisher.connect().await?;
            let started = Instant::now();
            for _ in 0..total {
                publisher
                    .publish(&topic, Message::new(payload.clone()))
                    .await?;
            }
            let delivered = seen.wait(total).await;
            let elapsed = started.elapsed();
            subscription.unsubscribe().await?;
            Ok((delivered, elapsed))
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse_args(&args) {
        Ok(options) => options,
        Err(err) => {
            eprintln!("{err}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    println!(
        "broker-load: {} messages of {} bytes, {} rounds, {}",
        options.messages, options.size, options.rounds, options.nats
    );
    println!();
    println!("| round | system | delivered | seconds | msgs/s |");
    println!("| --- | --- | ---: | ---: | ---: |");
    // Per system: the rate of each round in which every message arrived.
    let mut rates: Vec<(String, Vec<f64>)> = options
        .systems
        .iter()
        .map(|s| (s.clone(), Vec::new()))
        .collect();
    for round in 1..=options.rounds {
        for (system, complete) in rates.iter_mut() {
            match run(system, &options, round).await {
                Ok((delivered, elapsed)) => {
                    let rate = delivered as f64 / elapsed.as_secs_f64().max(1e-9);
                    println!(
                        "| {round} | {system} | {delivered} | {:.3} | {rate:.0} |",
                        elapsed.as_secs_f64(),
                    );
                    if delivered == options.messages {
                        complete.push(rate);
                    }
                }
                Err(err) => {
                    eprintln!("{system}: {err}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    // Rounds that lost messages (a subscriber that fell behind) are left out of the median.
    println!();
    println!("| system | complete rounds | median msgs/s |");
    println!("| --- | ---: | ---: |");
    let medians: Vec<Option<f64>> = rates.iter().map(|(_, r)| median(r)).collect();
    for ((system, complete), median) in rates.iter().zip(&medians) {
        let shown = median.map_or("-".to_string(), |m| format!("{m:.0}"));
        println!("| {system} | {} | {shown} |", complete.len());
    }
    if let ([(a, _), (b, _)], [Some(ma), Some(mb)]) = (&rates[..], &medians[..]) {
        println!();
        println!("ratio {b} / {a} (medians): {:.2}", mb / ma);
    }
    ExitCode::SUCCESS
}

/// The median of `values`; `None` when empty.
fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}
