//! `rpc-load`: the RPC load benchmark. Runs each system's server in its own process
//! (`rpc-load --serve SYSTEM`, which prints `ADDR 127.0.0.1:PORT` and serves until its stdin
//! closes), drives it from this process at each concurrency and prints Markdown tables.
//!
//! ```sh
//! cargo run --release -p micro-bench-peers --bin rpc-load -- \
//!     [--systems raw-tcp,tonic,axum,mucp-tcp,mucp-http] [--concurrency 1,16,64] \
//!     [--secs 5] [--warmup 1] [--rounds 1] [--connect ADDR]
//! ```
//!
//! `--rounds N` runs every system N times, round-robin, and reports each round's ratios and
//! then all rounds pooled: on a VM whose speed drifts, interleaving keeps a slow spell from
//! landing on one system only.
//!
//! `--connect ADDR` drives a server started by hand (one system), e.g. under `perf record`.

use micro_bench_peers::axum_echo::{self, AxumCaller};
use micro_bench_peers::grpc_echo::{self, GrpcCaller};
use micro_bench_peers::load::{self, Point};
use micro_bench_peers::micro_echo::{self, MicroCaller};
use micro_bench_peers::raw_nats::{self, RawNatsCaller};
use micro_bench_peers::raw_tcp::{self, RawCaller};
use micro_bench_peers::tonic_echo::{self, TonicCaller};
use micro_bench_peers::{BoxError, Caller, System};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Every system in this binary (clients and servers alike) allocates with mimalloc: glibc's
/// malloc serialises threads that free each other's memory on its arena lock, which an RPC
/// stack does on every call (a reader task allocates what a caller task frees). This is the
/// binary's choice, as it is any service's; no library crate sets an allocator.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The allocator every system here runs on, for the report.
const ALLOCATOR_NAME: &str = if cfg!(feature = "mimalloc") {
    "allocator: mimalloc"
} else {
    "allocator: glibc malloc"
};

const USAGE: &str = "usage: rpc-load [--systems a,b,..] [--concurrency 1,16,64] [--secs 5] \
[--warmup 1] [--rounds 1] [--connect ADDR] | --serve SYSTEM
systems: raw-tcp, tonic, grpc, axum, mucp-tcp, mucp-http, mucp-quic, raw-nats, mucp-nats
(the nats systems use the NATS server at NATS_URL, default nats://127.0.0.1:4222)";

struct Options {
    systems: Vec<System>,
    concurrency: Vec<usize>,
    secs: Duration,
    warmup: Duration,
    rounds: usize,
    connect: Option<String>,
    serve: Option<System>,
}

fn parse_systems(list: &str) -> Result<Vec<System>, String> {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| System::parse(s).ok_or_else(|| format!("unknown system {s:?}")))
        .collect()
}

fn parse_secs(value: &str) -> Result<Duration, String> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 3600.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("bad seconds {value:?}"))
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        systems: System::ALL.to_vec(),
        concurrency: vec![1, 16, 64],
        secs: Duration::from_secs(5),
        warmup: Duration::from_secs(1),
        rounds: 1,
        connect: None,
        serve: None,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--systems" => options.systems = parse_systems(value()?)?,
            "--concurrency" => {
                options.concurrency = value()?
                    .split(',')
                    .map(|c| c.parse::<usize>().ok().filter(|c| (1..=4096).contains(c)))
                    .collect::<Option<_>>()
                    .ok_or("bad --concurrency")?
            }
            "--secs" => options.secs = parse_secs(value()?)?,
            "--warmup" => options.warmup = parse_secs(value()?)?,
            "--rounds" => {
                options.rounds = value()?
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or("bad --rounds: give a number from 1 to 100")?
            }
            "--connect" => options.connect = Some(value()?.clone()),
            "--serve" => {
                let name = value()?;
                options.serve = Some(System::parse(name).ok_or(format!("unknown system {name:?}"))?)
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if options.connect.is_some() && options.systems.len() != 1 {
        return Err("--connect needs exactly one system in --systems".into());
    }
    Ok(options)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse_args(&args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match options.serve {
        Some(system) => runtime.block_on(serve(system)),
        None => runtime.block_on(run(&options, &args)),
    };
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("rpc-load: {error}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------- the server process

fn announce(addr: &str) -> Result<(), BoxError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ADDR {addr}")?;
    out.flush()?;
    Ok(())
}

/// Resolves when stdin is closed: the parent is done (or gone).
async fn stdin_closed() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut buf = [0u8; 256];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
    })
    .await;
}

async fn serve(system: System) -> Result<(), BoxError> {
    if system == System::RawNats {
        let (subject, server) = raw_nats::serve().await?;
        announce(&subject)?;
        return tokio::select! {
            () = stdin_closed() => Ok(()),
            ended = server => Err(format!("server ended: {:?}", ended?.err()).into()),
        };
    }
    if system == System::Grpc {
        let (service, addr) = grpc_echo::serve().await?;
        announce(&addr)?;
        stdin_closed().await;
        tokio::time::timeout(Duration::from_secs(5), service.stop()).await??;
        return Ok(());
    }
    if let System::MucpTcp | System::MucpHttp | System::MucpQuic | System::MucpNats = system {
        let transport = match system {
            System::MucpTcp => "tcp",
            System::MucpHttp => "http",
            System::MucpQuic => "quic",
            _ => "nats",
        };
        let (service, addr) = micro_echo::serve(transport).await?;
        announce(&addr)?;
        stdin_closed().await;
        tokio::time::timeout(Duration::from_secs(5), service.stop()).await??;
        return Ok(());
    }
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let server = match system {
        System::RawTcp => tokio::spawn(raw_tcp::serve(listener)),
        System::Tonic => tokio::spawn(tonic_echo::serve(listener)),
        _ => tokio::spawn(axum_echo::serve(listener)),
    };
    announce(&addr)?;
    tokio::select! {
        () = stdin_closed() => Ok(()),
        ended = server => Err(format!("server ended: {:?}", ended?.err()).into()),
    }
}

// ---------------------------------------------------------------- the parent

/// A server child process; dropping it closes its stdin, then kills it if it lingers.
struct ServerProcess {
    child: Child,
    addr: String,
}

impl ServerProcess {
    fn spawn(system: System) -> Result<Self, BoxError> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args(["--serve", system.name()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the address, then drains stdout so the child never blocks on it.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("ADDR ") {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let mut process = ServerProcess {
            child,
            addr: String::new(),
        };
        process.addr = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| format!("{} server did not print its address", system.name()))?;
        Ok(process)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn points<C: Caller>(system: System, caller: C, options: &Options) -> Vec<Point> {
    let caller = Arc::new(caller);
    let mut points = Vec::new();
    for &c in &options.concurrency {
        let point = load::measure(system.name(), &caller, c, options.warmup, options.secs).await;
        eprintln!(
            "{:>9} c={:<3} {:>9.0} rps  p50 {:>8.1} µs  p99 {:>8.1} µs  errors {}{}",
            point.system,
            c,
            point.rps(),
            point.micros(0.5),
            point.micros(0.99),
            point.errors,
            point
                .first_error
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
        points.push(point);
    }
    points
}

async fn measure_system(
    system: System,
    addr: &str,
    options: &Options,
) -> Result<Vec<Point>, BoxError> {
    Ok(match system {
        System::RawTcp => points(system, RawCaller::connect(addr).await?, options).await,
        System::Tonic => points(system, TonicCaller::connect(addr).await?, options).await,
        System::Grpc => points(system, GrpcCaller::connect(addr).await?, options).await,
        System::Axum => points(system, AxumCaller::connect(addr).await?, options).await,
        System::MucpTcp => {
            let caller = MicroCaller::connect("tcp", addr).await?;
            points(system, caller, options).await
        }
        System::MucpHttp => {
            let caller = MicroCaller::connect("http", addr).await?;
            points(system, caller, options).await
        }
        System::MucpQuic => {
            let caller = MicroCaller::connect("quic", addr).await?;
            points(system, caller, options).await
        }
        System::RawNats => points(system, RawNatsCaller::connect(addr).await?, options).await,
        System::MucpNats => {
            let caller = MicroCaller::connect("nats", addr).await?;
            points(system, caller, options).await
        }
    })
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Busy and total CPU ticks of the whole machine (`/proc/stat`).
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|n| n.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7)?;
    Some((busy, busy + v.get(3)? + v.get(4)?))
}

/// User + system CPU ticks of a process (`/proc/PID/stat`; `self` for this one).
fn process_ticks(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the command name: state is 3rd overall, utime 14th, stime 15th.
            let rest = stat.rsplit_once(')')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// CPU use while one system ran: the benchmark's (this process + the server) and everything
/// else on the machine (which skews the numbers), in percent of all cores.
struct CpuShare {
    start: Option<(u64, u64)>,
    own_start: u64,
}

impl CpuShare {
    fn start() -> Self {
        CpuShare {
            start: machine_ticks(),
            own_start: process_ticks("self"),
        }
    }

    fn finish(&self, server_ticks: u64) -> String {
        let (Some((b0, t0)), Some((b1, t1))) = (self.start, machine_ticks()) else {
            return "?".into();
        };
        let total = (t1 - t0).max(1) as f64;
        let own = (process_ticks("self") - self.own_start + server_ticks) as f64;
        let other = ((b1 - b0) as f64 - own).max(0.0);
        format!(
            "bench {:.0}%, other {:.0}%",
            100.0 * own / total,
            100.0 * other / total
        )
    }
}

async fn run(options: &Options, args: &[String]) -> Result<(), BoxError> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("# rpc-load {}\n", args.join(" "));
    println!(
        "{cores} cores ({}); {:?} warm-up then {:?} per point; 64-byte payload; {ALLOCATOR_NAME}\n",
        cpu_model(),
        options.warmup,
        options.secs
    );
    let overrides = micro_echo::overrides();
    if !overrides.is_empty() {
        println!(
            "micro settings from the environment: {}\n",
            overrides.join(" ")
        );
    }
    let mut rounds = Vec::new();
    let mut loads = Vec::new();
    for round in 1..=options.rounds {
        if options.rounds > 1 {
            eprintln!("round {round} of {}", options.rounds);
        }
        let mut points = Vec::new();
        for &system in &options.systems {
            let cpu = CpuShare::start();
            let (result, server_ticks) = match &options.connect {
                Some(addr) => (measure_system(system, addr, options).await, 0),
                None => {
                    let server = ServerProcess::spawn(system)?;
                    let addr = server.addr.clone();
                    let result = measure_system(system, &addr, options).await;
                    let ticks = process_ticks(&server.child.id().to_string());
                    drop(server);
                    (result, ticks)
                }
            };
            let round = if options.rounds > 1 {
                format!("round {round} ")
            } else {
                String::new()
            };
            loads.push(format!(
                "{round}{} ({})",
                system.name(),
                cpu.finish(server_ticks)
            ));
            match result {
                Ok(found) => points.extend(found),
                Err(error) => eprintln!("{}: {error}", system.name()),
            }
        }
        rounds.push(points);
    }
    if rounds.len() > 1 {
        for (i, points) in rounds.iter().enumerate() {
            println!("Round {}:\n\n{}", i + 1, load::ratios(points));
        }
        println!(
            "All {} rounds pooled (calls and time added up, latencies merged):\n",
            rounds.len()
        );
    }
    let all = load::pool(rounds);
    println!("{}", load::table(&all));
    println!("{}", load::ratios(&all));
    println!("CPU use of all cores while each system ran (bench = rpc-load + its server):");
    println!("{}", loads.join("; "));
    Ok(())
}
