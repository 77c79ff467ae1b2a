//! The README's main job: `cargo run --example greeter` prints `Hello John`, and
//! `--server`/`--client` run as two processes that find each other through `local`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Builds the example (a no-op when it is up to date) and returns its path.
fn greeter() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--example", "greeter", "--offline", "--quiet"])
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
    let bin = greeter();
    let mut server = isolated(Command::new(&bin).arg("--server"), dir.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let result = loop {
        let out = isolated(Command::new(&bin).arg("--client"), dir.path())
            .output()
            .unwrap();
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&result.stdout).trim(), "Hello John");
}
