//! Load benchmark of the API gateway (`micro api`, issue 17): the same echo reached three
//! ways, in one run.
//!
//! ```sh
//! cargo build --release -p micro-bench-peers --bin gateway-load
//! target/release/gateway-load [--concurrency 16,64] [--secs 5] [--warmup 1] [--rounds 1]
//! ```
//!
//! - `direct`: micro's client calls the echo service (`Echo.Echo`, mucp over tcp);
//! - `gateway`: HTTP/1.1 keep-alive `POST /bench/echo/echo` with a JSON body to the gateway
//!   (rpc handler), which calls the same service through its own micro client;
//! - `axum`: the same HTTP client against a bare axum JSON echo (the HTTP floor).
//!
//! The echo service, the gateway and the axum echo run in this process on 127.0.0.1 (port
//! 0), with the load generator; target: the gateway keeps ≥ 70% of the direct call's rps.

use micro::server::Handler;
use micro::{Context, Service};
use micro_bench_peers::axum_echo::{self, AxumCaller};
use micro_bench_peers::load::{self, Point};
use micro_bench_peers::micro_echo::Echo;
use micro_bench_peers::{BoxError, Caller, PAYLOAD, check_echo};
use micro_cli::api::{ApiOptions, Gateway, HandlerKind};
use micro_cli::commands::{CallSpec, Commands};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

const USAGE: &str =
    "usage: gateway-load [--concurrency 16,64] [--secs 5] [--warmup 1] [--rounds 1]";

struct Options {
    concurrency: Vec<usize>,
    secs: Duration,
    warmup: Duration,
    rounds: usize,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        concurrency: vec![16, 64],
        secs: Duration::from_secs(5),
        warmup: Duration::from_secs(1),
        rounds: 1,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |text: &str, max: u64| {
            text.parse::<u64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or(format!(
                    "bad {flag} {text:?}: give a number from 1 to {max}"
                ))
        };
        match flag.as_str() {
            "--concurrency" => {
                options.concurrency = value()?
                    .split(',')
                    .map(|c| number(c, 4096).map(|c| c as usize))
                    .collect::<Result<_, _>>()?
            }
            "--secs" => options.secs = Duration::from_secs(number(value()?, 3600)?),
            "--warmup" => options.warmup = Duration::from_secs(number(value()?, 3600)?),
            "--rounds" => options.rounds = number(value()?, 100)? as usize,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(options)
}

/// The environment of the benchmark's services: a local registry of its own, no broker.
fn env(registry: &std::path::Path, server: bool) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "MICRO_REGISTRY_DIR".to_string(),
            registry.display().to_string(),
        ),
        ("MICRO_BROKER_ENABLED".into(), "false".into()),
        ("MICRO_SERVER_ADDRESS".into(), "127.0.0.1:0".into()),
        ("MICRO_LOGGER_LEVEL".into(), "warn".into()),
    ];
    if !server {
        env.push(("MICRO_SERVER_ENABLED".into(), "false".into()));
    }
    env
}

/// micro's client through the same call path the gateway uses ([`Commands::call`]).
struct DirectCaller {
    commands: Commands,
    request: serde_json::Value,
}

impl Caller for DirectCaller {
    async fn call(&self) -> Result<(), String> {
        let spec = CallSpec::new("bench", "Echo.Echo");
        let response = self
            .commands
            .call(&spec, &self.request)
            .await
            .map_err(|e| e.to_string())?;
        let reply: Echo = serde_json::from_slice(&response.body).map_err(|e| e.to_string())?;
        check_echo(reply.data.as_bytes())
    }
}

async fn run(options: &Options) -> Result<(), BoxError> {
    let registry = tempfile::tempdir()?;
    let echo = Service::builder()
        .name("bench")
        .args(["bench"])
        .env(env(registry.path(), true))
        .handler(Handler::unary(
            "Echo.Echo",
            |_ctx: Context, req: Echo| async move { Ok(req) },
        ))
        .build()?;
    echo.start().await?;
    let client = |name: &str| -> Result<Service, BoxError> {
        Ok(Service::builder()
            .name(name)
            .args([name])
            .env(env(registry.path(), false))
            .build()?)
    };
    // The gateway and the direct caller each have their own client service.
    let gateway_service = client("gateway")?;
    let gateway = Gateway::new(
        Commands::from_components(gateway_service.components())?,
        ApiOptions {
            handler: HandlerKind::Rpc,
            ..ApiOptions::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gateway_address = listener.local_addr()?.to_string();
    tokio::spawn(async move { gateway.serve(listener, std::future::pending()).await });
    let axum_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let axum_address = axum_listener.local_addr()?.to_string();
    tokio::spawn(axum_echo::serve(axum_listener));
    let direct_service = client("direct")?;
    let direct = Arc::new(DirectCaller {
        commands: Commands::from_components(direct_service.components())?,
        request: serde_json::json!({ "data": PAYLOAD }),
    });
    let through_gateway =
        Arc::new(AxumCaller::connect_path(&gateway_address, "/bench/echo/echo").await?);
    let axum = Arc::new(AxumCaller::connect(&axum_address).await?);
    // Each system answers once before anything is measured.
    for (name, result) in [
        ("direct", direct.call().await),
        ("gateway", through_gateway.call().await),
        ("axum", axum.call().await),
    ] {
        result.map_err(|e| format!("{name}: {e}"))?;
    }
    let mut rounds: Vec<Vec<Point>> = Vec::new();
    for _ in 0..options.rounds {
        let mut points = Vec::new();
        for &c in &options.concurrency {
            points.push(load::measure("direct", &direct, c, options.warmup, options.secs).await);
            points.push(
                load::measure("gateway", &through_gateway, c, options.warmup, options.secs).await,
            );
            points.push(load::measure("axum", &axum, c, options.warmup, options.secs).await);
        }
        rounds.push(points);
    }
    let points = load::pool(rounds);
    println!("{}", load::table(&points));
    println!("| ratio | c | value |\n| --- | ---: | ---: |");
    for &c in &options.concurrency {
        let rps = |system: &str| {
            points
                .iter()
                .find(|p| p.system == system && p.concurrency == c)
                .map(Point::rps)
                .unwrap_or(0.0)
        };
        let direct = rps("direct").max(1e-9);
        println!(
            "| gateway / direct (target ≥ 0.70) | {c} | {:.2} |",
            rps("gateway") / direct
        );
        println!(
            "| gateway / axum | {c} | {:.2} |",
            rps("gateway") / rps("axum").max(1e-9)
        );
    }
    echo.stop().await?;
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match parse_args(&args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("gateway-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway-load: {e}");
            ExitCode::FAILURE
        }
    }
}
