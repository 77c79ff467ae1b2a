//! Interop with a standard gRPC client: the proto greeter (`examples/proto-greeter`, built
//! from `greeter.proto` by micro-build) runs with `server.plugin: grpc`, and a Python
//! grpcio client (`tests/python/greeter_client.py`) calls it: unary, server streaming, an
//! error status with details, a deadline, health, and reflection.
//!
//! The Python comes from `MICRO_PYTHON` (scripts/test.sh makes a venv with grpcio and sets
//! it). Without it the test is skipped with a message, except in CI (`CI=true`), where it
//! fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds the proto greeter (a no-op when up to date) and returns its path.
fn proto_greeter() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-p", "proto-greeter", "--offline", "--quiet"])
        .current_dir(workspace())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build -p proto-greeter failed");
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().and_then(|d| d.parent()).unwrap();
    target.join("proto-greeter")
}

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the greeter with the grpc server and returns it with the address it logged.
fn start_greeter(dir: &Path) -> (Server, String) {
    let config = dir.join("grpc.yaml");
    std::fs::write(
        &config,
        "server:\n  plugin: grpc\n  address: 127.0.0.1:0\nclient:\n  plugin: grpc\n",
    )
    .unwrap();
    let mut child = Command::new(proto_greeter())
        .arg("--server")
        .arg("--config")
        .arg(&config)
        .env("MICRO_REGISTRY_DIR", dir.join("registry"))
        .env("MICRO_LOGGER_LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the proto greeter starts");
    let stderr = child.stderr.take().unwrap();
    let server = Server(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("grpc server listening")
                && let Some(address) = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("address="))
            {
                let _ = tx.send(address.to_string());
            }
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the greeter logs `grpc server listening ... address=...`");
    (server, address)
}

#[test]
fn python_grpcio_calls_the_proto_greeter() {
    let Some(python) = std::env::var_os("MICRO_PYTHON") else {
        assert!(
            std::env::var("CI").is_err(),
            "MICRO_PYTHON is not set: run scripts/test.sh, which makes a venv with grpcio"
        );
        eprintln!("skipped: set MICRO_PYTHON to a python with grpcio (scripts/test.sh does)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_server, address) = start_greeter(dir.path());
    let started = Instant::now();
    let out = Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/greeter_client.py"))
        .arg(&address)
        .arg(workspace().join("examples/proto-greeter/proto"))
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the Python client failed after {:?}:\n{stdout}\n{stderr}",
        started.elapsed()
    );
    assert!(stdout.contains("all checks passed"), "{stdout}\n{stderr}");
}
