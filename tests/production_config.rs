//! Seed 003's production config as written (`configs/production.yaml`: nats registry and
//! broker on localhost:4222, grpc client and server, quic transport, zap logging) runs the
//! greeter against the local nats-server: in one process, and as a server and a client.
//! Needs the nats, grpc, quic and zap features (scripts/test.sh turns them on).
#![cfg(all(feature = "nats", feature = "grpc", feature = "quic", feature = "zap"))]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/production.yaml");

/// Builds the greeter with the four features and copies it to `dir` (another test may build
/// the example with other features meanwhile).
fn greeter(dir: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--example", "greeter", "--offline", "--quiet"])
        .args(["--features", "nats,grpc,quic,zap"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build --example greeter failed");
    let target = std::env::current_exe().unwrap();
    let built = target
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("examples/greeter");
    let copy = dir.join("greeter");
    std::fs::copy(&built, &copy).unwrap();
    copy
}

/// Every stderr line is one zap JSON object with the section's `component` field.
fn assert_zap_lines(stderr: &str) {
    assert!(!stderr.trim().is_empty(), "the greeter logs");
    for line in stderr.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a zap line ({e}): {line}"));
        assert!(value["level"].is_string() && value["ts"].is_f64(), "{line}");
        assert!(value["component"].is_string(), "component field: {line}");
    }
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_production_config_runs_the_greeter_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let greeter = greeter(dir.path());
    let out = Command::new(&greeter)
        .args(["--config", CONFIG])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Hello John");
    assert_zap_lines(&stderr);
    assert!(
        stderr.contains("\"msg\":\"grpc server listening\""),
        "the grpc server ran: {stderr}"
    );

    // A server and a client: grpc (JSON for the serde greeter) over the network, found
    // through the nats registry.
    let _server = Running(
        Command::new(&greeter)
            .args(["--server", "--config", CONFIG])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new(&greeter)
            .args(["--client", "--config", CONFIG])
            .output()
            .unwrap();
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Hello John");
            assert_zap_lines(&String::from_utf8_lossy(&out.stderr));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the client never reached the server: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
