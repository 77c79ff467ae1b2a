//! The README's main job: `cargo run --example greeter` prints `Hello John`, and
//! `--server`/`--client` run as two processes that find each other through `local`, or
//! (with the `nats` feature) through the nats registry and broker.

#[cfg(feature = "nats")]
#[path = "../micro-plugins/nats/tests/common/server.rs"]
#[allow(dead_code)]
mod nats_server;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Builds the example (a no-op when it is up to date) and returns its path.
fn greeter() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--example", "greeter", "--offline", "--quiet"])
        // The features of this test build, so the example is not rebuilt without them.
        .args(cfg!(feature = "nats").then_some("--features=nats"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build --example greeter failed");
    let deps = std::env::current_exe().unwrap();
    let target = deps
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .to_path_buf();
    target.join("examples").join("greeter")
}

fn isolated<'a>(cmd: &'a mut Command, registry: &std::path::Path) -> &'a mut Command {
    cmd.env("MICRO_REGISTRY_DIR", registry)
        .env("MICRO_LOGGER_LEVEL", "warn")
}

#[test]
fn greeter_prints_hello_john_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let out = isolated(&mut Command::new(greeter()), dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Hello John");
}

#[test]
fn greeter_server_and_client_as_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    server_and_client(|cmd| isolated(cmd, dir.path()), || {});
}

/// The nats deployment of the README: `MICRO_REGISTRY=nats MICRO_BROKER=nats`, on a
/// nats-server of the test's own (a spare port, never the shared one).
#[cfg(feature = "nats")]
#[test]
fn greeter_server_and_client_on_nats() {
    let nats = nats_server::TestServer::start();
    let address = nats.address();
    server_and_client(
        |cmd| {
            cmd.env("MICRO_REGISTRY", "nats")
                .env("MICRO_REGISTRY_ADDRESS", &address)
                .env("MICRO_BROKER", "nats")
                .env("MICRO_BROKER_ADDRESS", &address)
                .env("MICRO_LOGGER_LEVEL", "warn")
        },
        || service_api_lists_the_greeter(&address),
    );
}

/// A plain NATS client (async-nats, not micro) asks the NATS service API for the running
/// greeter: `$SRV.PING.greeter` and `$SRV.INFO.greeter` answer in the `io.nats.micro.v1`
/// formats, and the info lists `Greeter.Hello`.
#[cfg(feature = "nats")]
fn service_api_lists_the_greeter(address: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(address).await.unwrap();
        let ask = |subject: &'static str| {
            let client = client.clone();
            async move {
                let reply = client.request(subject, "".into()).await.unwrap();
                serde_json::from_slice::<serde_json::Value>(&reply.payload).unwrap()
            }
        };
        let ping = ask("$SRV.PING.greeter").await;
        assert_eq!(ping["type"], "io.nats.micro.v1.ping_response", "{ping}");
        assert_eq!(ping["name"], "greeter", "{ping}");
        assert_eq!(ping["version"], "1.0.0", "{ping}");
        let info = ask("$SRV.INFO.greeter").await;
        assert_eq!(info["type"], "io.nats.micro.v1.info_response", "{info}");
        let endpoints: Vec<&str> = info["endpoints"]
            .as_array()
            .unwrap_or_else(|| panic!("no endpoints: {info}"))
            .iter()
            .filter_map(|e| e["name"].as_str())
            .collect();
        assert!(endpoints.contains(&"Greeter.Hello"), "{info}");
    });
}

/// Runs `greeter --server`, then `greeter --client` until it prints `Hello John`, both
/// set up by `setup`; then `while_serving`, before the server is stopped.
fn server_and_client(setup: impl Fn(&mut Command) -> &mut Command, while_serving: impl FnOnce()) {
    let bin = greeter();
    let mut server = setup(Command::new(&bin).arg("--server"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let result = loop {
        let out = setup(Command::new(&bin).arg("--client")).output().unwrap();
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if result.status.success() {
        while_serving();
    }
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&result.stdout).trim(), "Hello John");
}
