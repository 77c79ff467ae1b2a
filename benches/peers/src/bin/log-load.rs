//! The cost per log call of the zap (JSON) format against text, both at level info, through
//! a service's component logger as a handler would log (issue 15).
//!
//! ```sh
//! cargo build --release -p micro-bench-peers --bin log-load
//! target/release/log-load [--events 1000000] [--rounds 3]
//! ```
//!
//! Each format formats every event and writes it to a sink (`io::sink`), so the figure is the
//! formatting cost without the I/O; a `debug` event (below the level) is measured too.

use micro::logger::LogOutput;
use std::process::ExitCode;
use std::time::Instant;

fn service(format: &str) -> Result<micro::Service, String> {
    let env: Vec<(String, String)> = [
        ("MICRO_LOGGER", format),
        ("MICRO_LOGGER_LEVEL", "info"),
        ("MICRO_LOGGER_FIELDS", "component=server"),
        ("MICRO_SERVER_ENABLED", "false"),
        ("MICRO_CLIENT_ENABLED", "false"),
        ("MICRO_REGISTRY_ENABLED", "false"),
        ("MICRO_SELECTOR_ENABLED", "false"),
        ("MICRO_TRANSPORT_ENABLED", "false"),
        ("MICRO_STORE_ENABLED", "false"),
        ("MICRO_EVENTS_ENABLED", "false"),
        ("MICRO_SYNC_ENABLED", "false"),
        ("MICRO_AUTH_ENABLED", "false"),
        ("MICRO_BROKER", "memory"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    match micro::Service::builder()
        .name("log-load")
        .args(["log-load"])
        .env(env)
        .log_output(LogOutput::new(|| Box::new(std::io::sink())))
        .try_build()
    {
        Ok(micro::Built::Service(service)) => Ok(service),
        Ok(_) => Err("help or version instead of a service".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Nanoseconds per call of `log`, `events` times, best of `rounds`.
fn measure(events: u64, rounds: usize, log: impl Fn(u64)) -> f64 {
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for i in 0..events {
                log(i);
            }
            start.elapsed().as_nanos() as f64 / events as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut events = 1_000_000u64;
    let mut rounds = 3usize;
    let mut iter = args.iter();
    while let Some(flag) = iter.next() {
        let value = iter
            .next()
            .and_then(|v| v.parse::<u64>().ok().filter(|n| *n > 0));
        match (flag.as_str(), value) {
            ("--events", Some(n)) => events = n,
            ("--rounds", Some(n)) => rounds = n as usize,
            _ => {
                eprintln!("usage: log-load [--events 1000000] [--rounds 3]");
                return ExitCode::from(2);
            }
        }
    }
    println!("| format | info event ns | debug event (filtered) ns |\n| --- | ---: | ---: |");
    let mut info = Vec::new();
    for format in ["text", "zap"] {
        let service = match service(format) {
            Ok(service) => service,
            Err(e) => {
                eprintln!("log-load: {format}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let logger = service.logger("server");
        let shown = measure(events, rounds, |i| {
            logger.in_scope(|| tracing::info!(endpoint = "Greeter.Hello", request = i, "served"))
        });
        let filtered = measure(events, rounds, |i| {
            logger.in_scope(|| tracing::debug!(endpoint = "Greeter.Hello", request = i, "served"))
        });
        println!("| {format} | {shown:.0} | {filtered:.1} |");
        info.push(shown);
    }
    println!("\nzap / text at info: {:.2}", info[1] / info[0]);
    ExitCode::SUCCESS
}
