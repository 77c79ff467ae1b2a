//! `micro new`: the generated crate builds against this checkout, runs, and answers
//! `micro call` (and `stream` and `publish`), with and without a .proto.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn micro(registry: &Path, dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_micro"))
        .args(args)
        .current_dir(dir)
        .env("MICRO_REGISTRY_DIR", registry)
        .env("MICRO_LOGGER_LEVEL", "error")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// This test binary's target directory (target/debug/deps/new-… → target), so the generated
/// crate reuses the compiled dependencies.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// Builds the generated crate against this checkout with this workspace's lock file.
fn build(project: &Path) -> PathBuf {
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock"),
        project.join("Cargo.lock"),
    )
    .unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--offline", "--quiet"])
        .current_dir(project)
        .env("CARGO_TARGET_DIR", target_dir())
        .status()
        .unwrap();
    assert!(status.success(), "the generated crate does not build");
    let name = project.file_name().unwrap();
    target_dir().join("debug").join(name)
}

/// Starts the built service in its directory and waits until the registry lists it.
fn run(
    binary: &Path,
    project: &Path,
    registry: &Path,
    name: &str,
) -> (Running, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(binary)
        .current_dir(project)
        .env("MICRO_REGISTRY_DIR", registry)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = micro(registry, project, &["list", "services"]);
        if String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l == name)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{name} did not register: {}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (running, stdout)
}

#[test]
fn a_new_service_builds_runs_and_answers() {
    let work = tempfile::tempdir().unwrap();
    let registry = tempfile::tempdir().unwrap();
    let out = micro(registry.path(), work.path(), &["new", "hello-world"]);
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    for file in [
        "Cargo.toml",
        "src/main.rs",
        "src/handler.rs",
        "src/subscriber.rs",
        "configs/hello-world.yaml",
        "Dockerfile",
        "README.md",
        ".gitignore",
    ] {
        assert!(said.contains(file), "lists {file}: {said}");
        assert!(
            work.path().join("hello-world").join(file).is_file(),
            "{file} written"
        );
    }
    assert!(
        said.trim_end()
            .ends_with("micro call hello-world HelloWorld.Call '{\"name\": \"John\"}'"),
        "{said}"
    );
    assert!(said.contains("&& cargo run"), "{said}");

    let project = work.path().join("hello-world");
    let binary = build(&project);
    let (_service, mut stdout) = run(&binary, &project, registry.path(), "hello-world");
    let out = micro(
        registry.path(),
        &project,
        &[
            "call",
            "hello-world",
            "HelloWorld.Call",
            r#"{"name": "John"}"#,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"msg\": \"Hello John\""),
        "{}",
        text(&out)
    );
    let out = micro(
        registry.path(),
        &project,
        &["stream", "hello-world", "HelloWorld.Stream", "3"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1\n2\n3\n",
        "{}",
        text(&out)
    );
    let out = micro(
        registry.path(),
        &project,
        &["publish", "hello-world", r#"{"say": "hi"}"#],
    );
    assert!(out.status.success(), "{}", text(&out));
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line.trim_end(), "hello-world received: hi");

    // The same name again: refused, nothing overwritten.
    let out = micro(registry.path(), work.path(), &["new", "hello-world"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exists"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_new_function_from_a_proto_builds_runs_and_answers() {
    let work = tempfile::tempdir().unwrap();
    let registry = tempfile::tempdir().unwrap();
    let args = [
        "new",
        "fn-one",
        "--type",
        "function",
        "--proto",
        "--plugin",
        "registry=local:store=file",
    ];
    let out = micro(registry.path(), work.path(), &args);
    assert!(out.status.success(), "{}", text(&out));
    let project = work.path().join("fn-one");
    assert!(project.join("proto/fn-one.proto").is_file());
    assert!(
        !project.join("src/subscriber.rs").exists(),
        "a function has no subscriber"
    );
    let config = std::fs::read_to_string(project.join("configs/fn-one.yaml")).unwrap();
    assert!(
        config.contains("registry:\n  plugin: local\nstore:\n  plugin: file\n"),
        "{config}"
    );
    let binary = build(&project);
    let (_service, _stdout) = run(&binary, &project, registry.path(), "fn-one");
    let out = micro(
        registry.path(),
        &project,
        &["call", "fn-one", "FnOne.Call", r#"{"name": "Proto"}"#],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"msg\": \"Hello Proto\""),
        "{}",
        text(&out)
    );

    let out = micro(registry.path(), work.path(), &["new", "Bad Name"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lowercase letters"),
        "{}",
        text(&out)
    );
    let out = micro(
        registry.path(),
        work.path(),
        &["new", "x", "--plugin", "registry=consul"],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("choose from"),
        "{}",
        text(&out)
    );
}
