//! The real `micro` binary against a running service (started by the test, on a `local`
//! registry of its own), for every command, with the layouts of the micro transcripts.

#[cfg(feature = "nats")]
#[path = "../../micro-plugins/nats/tests/common/server.rs"]
#[allow(dead_code)]
mod nats_server;

use micro::{Context, Error, Streaming};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Serialize, Deserialize, JsonSchema, Debug)]
struct HelloRequest {
    name: String,
}

#[derive(Serialize, Deserialize, JsonSchema, Debug)]
struct HelloReply {
    msg: String,
}

#[derive(Serialize, Deserialize, JsonSchema, Debug)]
struct Address {
    city: String,
}

#[derive(Serialize, Deserialize, JsonSchema, Debug)]
struct Person {
    name: String,
    address: Address,
}

#[micro::service]
trait Greeter {
    async fn hello(&self, ctx: &Context, req: HelloRequest) -> micro::Result<HelloReply>;
    async fn describe(&self, ctx: &Context, req: Person) -> micro::Result<String>;
    async fn count(&self, ctx: &Context, to: u32) -> micro::Result<Streaming<u32>>;
    async fn header(&self, ctx: &Context, name: String) -> micro::Result<String>;
    async fn slow(&self, ctx: &Context, req: ()) -> micro::Result<()>;
    async fn fail(&self, ctx: &Context, req: ()) -> micro::Result<()>;
}

#[derive(Clone, Default)]
struct MyGreeter {
    /// The stream of `count` goes past its first message only once this is notified.
    go_on: Arc<tokio::sync::Notify>,
}

impl Greeter for MyGreeter {
    async fn hello(&self, _: &Context, req: HelloRequest) -> micro::Result<HelloReply> {
        Ok(HelloReply {
            msg: format!("Hello {}", req.name),
        })
    }

    async fn describe(&self, _: &Context, req: Person) -> micro::Result<String> {
        Ok(format!("{} of {}", req.name, req.address.city))
    }

    async fn count(&self, _: &Context, to: u32) -> micro::Result<Streaming<u32>> {
        let go_on = self.go_on.clone();
        let numbers = futures_stream(to, go_on);
        Ok(Streaming::new(numbers))
    }

    async fn header(&self, ctx: &Context, name: String) -> micro::Result<String> {
        Ok(ctx.metadata.get(&name).unwrap_or("").to_string())
    }

    async fn slow(&self, _: &Context, _: ()) -> micro::Result<()> {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(())
    }

    async fn fail(&self, _: &Context, _: ()) -> micro::Result<()> {
        Err(Error::conflict("greeter", "always fails"))
    }
}

/// 1, then (after `go_on`) 2..=to.
fn futures_stream(
    to: u32,
    go_on: Arc<tokio::sync::Notify>,
) -> impl micro::__private::futures::Stream<Item = micro::Result<u32>> + Send + 'static {
    use micro::__private::futures::StreamExt;
    micro::__private::futures::stream::iter(1..=to).then(move |n| {
        let go_on = go_on.clone();
        async move {
            if n == 2 {
                go_on.notified().await;
            }
            Ok(n)
        }
    })
}

/// A running greeter and the environment that finds it.
struct Running {
    service: micro::Service,
    env: Vec<(String, String)>,
    greeter: MyGreeter,
    received: Arc<Mutex<Vec<serde_json::Value>>>,
    _dir: tempfile::TempDir,
}

async fn start_greeter(extra_env: &[(&str, String)]) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut env: Vec<(String, String)> = vec![
        (
            "MICRO_REGISTRY_DIR".into(),
            dir.path().display().to_string(),
        ),
        ("MICRO_LOGGER_LEVEL".into(), "error".into()),
    ];
    env.extend(extra_env.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let greeter = MyGreeter::default();
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    let subscriber = micro::server::Subscription::new(
        "orders",
        None,
        move |_: Context, message: serde_json::Value| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(message);
                Ok(())
            }
        },
    );
    let service = micro::Service::builder()
        .name("greeter")
        .version("1.0.0")
        .args(["greeter"])
        .env(env.clone())
        .handler(GreeterServer::new(greeter.clone()))
        .subscriber(subscriber)
        .build()
        .unwrap();
    service.start().await.unwrap();
    Running {
        service,
        env,
        greeter,
        received,
        _dir: dir,
    }
}

fn micro(env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_micro"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().cloned())
        .stdin(Stdio::null());
    cmd
}

/// Runs `micro args` to the end (off the test's runtime threads).
async fn run(env: &[(String, String)], args: &[&str]) -> Output {
    let mut cmd = micro(env);
    cmd.args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The services `list services` printed, without the http broker's own registration.
fn services(out: &Output) -> Vec<String> {
    stdout(out)
        .lines()
        .filter(|l| *l != "micro.http.broker")
        .map(str::to_string)
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// A failure: non-zero exit, one line on stderr, no panic or backtrace.
#[track_caller]
fn assert_one_line_error(out: &Output, mentions: &str) -> String {
    assert!(!out.status.success(), "should fail: {}", stdout(out));
    let err = stderr(out);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    assert!(
        err.contains(mentions),
        "{err:?} should mention {mentions:?}"
    );
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_get_service_have_the_transcript_layout() {
    let greeter = start_greeter(&[]).await;
    let out = run(&greeter.env, &["list", "services"]).await;
    assert_ok(&out);
    // Sorted, one per line; the http broker registers itself for the greeter's subscriber.
    assert_eq!(stdout(&out), "greeter\nmicro.http.broker\n");

    let out = run(&greeter.env, &["get", "service", "greeter"]).await;
    assert_ok(&out);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..5],
        [
            "service  greeter",
            "",
            "version 1.0.0",
            "",
            "ID\tAddress\tPort\tMetadata"
        ]
    );
    let row: Vec<&str> = lines[5].split('\t').collect();
    assert_eq!(row.len(), 4, "{:?}", lines[5]);
    assert!(row[0].starts_with("greeter-"), "{row:?}");
    assert_eq!(row[1], "127.0.0.1");
    assert!(row[2].parse::<u16>().is_ok(), "{row:?}");
    assert!(row[3].contains("server=mucp"), "{row:?}");
    let hello = text
        .find("Endpoint: Greeter.Hello\n")
        .expect("Greeter.Hello listed");
    assert!(
        text[hello..].starts_with(
            "Endpoint: Greeter.Hello\nMetadata: stream=false\n\nRequest: {\n\tname string\n}\n\nResponse: {\n\tmsg string\n}\n\n"
        ),
        "{}",
        &text[hello..]
    );
    let describe = text.find("Endpoint: Greeter.Describe\n").unwrap();
    assert!(
        text[describe..]
            .contains("Request: {\n\taddress Address {\n\t\tcity string\n\t}\n\tname string\n}\n"),
        "{}",
        &text[describe..]
    );
    greeter.service.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_prints_pretty_json_and_takes_options() {
    let greeter = start_greeter(&[]).await;
    let env = &greeter.env;
    let out = run(
        env,
        &["call", "greeter", "Greeter.Hello", r#"{"name": "John"}"#],
    )
    .await;
    assert_ok(&out);
    assert_eq!(stdout(&out), "{\n\t\"msg\": \"Hello John\"\n}\n");

    let out = run(
        env,
        &[
            "call",
            "greeter",
            "Greeter.Hello",
            r#"{"name":"J"}"#,
            "--output",
            "raw",
        ],
    )
    .await;
    assert_ok(&out);
    assert_eq!(stdout(&out), "{\"msg\":\"Hello J\"}\n");

    let args = [
        "call",
        "greeter",
        "Greeter.Header",
        r#""x-team""#,
        "--metadata",
        "x-team=blue",
        "--metadata=other=1",
    ];
    let out = run(env, &args).await;
    assert_ok(&out);
    assert_eq!(stdout(&out), "\"blue\"\n");

    // The address of the one node, given explicitly.
    let record = greeter.service.components().registry.clone().unwrap();
    let address = record.get_service("greeter").await.unwrap()[0].nodes[0]
        .address
        .clone();
    let out = run(
        env,
        &[
            "call",
            "--address",
            &address,
            "greeter",
            "Greeter.Hello",
            r#"{"name":"A"}"#,
        ],
    )
    .await;
    assert_ok(&out);
    assert!(stdout(&out).contains("Hello A"));

    // The request from stdin.
    let mut child = micro(env)
        .args(["call", "greeter", "Greeter.Hello"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"name": "Stdin"}"#)
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_ok(&out);
    assert!(stdout(&out).contains("Hello Stdin"), "{}", stdout(&out));

    // The deadline: a 408 micro error on stderr.
    let out = run(
        env,
        &[
            "call",
            "greeter",
            "Greeter.Slow",
            "null",
            "--timeout",
            "300ms",
        ],
    )
    .await;
    let err = assert_one_line_error(&out, "\"code\":408");
    assert!(err.starts_with('{'), "micro error JSON: {err}");
    // The service's own error, passed through.
    let out = run(env, &["call", "greeter", "Greeter.Fail", "null"]).await;
    assert_one_line_error(&out, "always fails");
    greeter.service.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_prints_each_message_as_it_arrives() {
    let greeter = start_greeter(&[]).await;
    let mut child = micro(&greeter.env)
        .args(["stream", "greeter", "Greeter.Count", "3"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(|l| l.ok());
        let _ = first_tx.send(first);
        lines.map_while(|l| l.ok()).collect::<Vec<_>>()
    });
    // The service holds message 2 back until the test has seen message 1 printed: a tool
    // that buffered until the end would never print it, and the test would fail here.
    let first = tokio::time::timeout(Duration::from_secs(30), first_rx)
        .await
        .expect("the first message is printed while the stream is still open")
        .unwrap();
    assert_eq!(first.as_deref(), Some("1"));
    greeter.greeter.go_on.notify_one();
    let rest = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    assert_eq!(rest, ["2", "3"]);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
    greeter.service.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_health_stats_register_and_deregister() {
    let greeter = start_greeter(&[]).await;
    let env = &greeter.env;
    let out = run(env, &["publish", "orders", r#"{"id": 7}"#]).await;
    assert_ok(&out);
    assert_eq!(stdout(&out), "ok\n");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while greeter.received.lock().unwrap().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the subscriber got nothing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        greeter.received.lock().unwrap()[0],
        serde_json::json!({"id": 7})
    );

    let out = run(env, &["health", "greeter"]).await;
    assert_ok(&out);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..5],
        [
            "service  greeter",
            "",
            "version 1.0.0",
            "",
            "node\t\taddress:port\t\tstatus"
        ]
    );
    assert!(
        lines[5].starts_with("greeter-") && lines[5].ends_with("\t\tok"),
        "{text}"
    );

    let out = run(env, &["stats", "greeter"]).await;
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("node\t\taddress:port\t\tstarted\tuptime\tmemory\tthreads\trequests\terrors"),
        "{text}"
    );
    let row = text.lines().last().unwrap();
    let cells: Vec<&str> = row.split('\t').filter(|c| !c.is_empty()).collect();
    assert_eq!(cells.len(), 8, "{row:?}");
    assert!(cells[4].ends_with("iB"), "memory: {row:?}");

    let record =
        r#"{"name":"fake","version":"2","nodes":[{"id":"fake-1","address":"127.0.0.1:1"}]}"#;
    assert_ok(&run(env, &["register", "service", record]).await);
    let out = run(env, &["list", "services"]).await;
    assert_eq!(services(&out), ["fake", "greeter"]);
    // A node that cannot be reached: its row carries the error and the exit is non-zero.
    let out = run(env, &["health", "fake", "--timeout", "2s"]).await;
    assert!(!out.status.success());
    assert!(
        stdout(&out).contains("fake-1\t\t127.0.0.1:1\t\t{"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("1 of 1 nodes of fake are not healthy"),
        "{}",
        stderr(&out)
    );
    assert_ok(&run(env, &["deregister", "service", record]).await);
    let out = run(env, &["list", "services"]).await;
    assert_eq!(services(&out), ["greeter"]);
    greeter.service.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_commands_call_endpoints_by_name() {
    let greeter = start_greeter(&[]).await;
    let env = &greeter.env;
    let out = run(env, &["greeter", "hello", "--name=John"]).await;
    assert_ok(&out);
    assert_eq!(stdout(&out), "{\n\t\"msg\": \"Hello John\"\n}\n");
    let out = run(
        env,
        &[
            "greeter",
            "describe",
            "--name",
            "Ann",
            "--address_city=Oslo",
        ],
    )
    .await;
    assert_ok(&out);
    assert_eq!(stdout(&out), "\"Ann of Oslo\"\n");
    // A streaming endpoint prints each message; the scalar request is one argument.
    let go_on = greeter.greeter.go_on.clone();
    let releaser = tokio::spawn(async move {
        loop {
            go_on.notify_one();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let out = run(env, &["greeter", "count", "3"]).await;
    releaser.abort();
    assert_ok(&out);
    assert_eq!(stdout(&out), "1\n2\n3\n");
    let out = run(env, &["greeter", "--help"]).await;
    assert_ok(&out);
    let help = stdout(&out);
    assert!(
        help.contains("hello  Greeter.Hello\n      --name  string"),
        "{help}"
    );
    assert!(help.contains("--address_city  string"), "{help}");
    let out = run(env, &["greeter", "hello", "--nmae=John"]).await;
    assert_one_line_error(&out, "no field --nmae");
    greeter.service.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_one_line_and_a_non_zero_exit() {
    let greeter = start_greeter(&[]).await;
    let env = &greeter.env;
    let out = run(env, &["call", "greeter", "Greeter.Hello", r#"{"name":"#]).await;
    assert_one_line_error(&out, "not valid JSON");
    let out = run(env, &["list", "services", "--bogus"]).await;
    assert_one_line_error(&out, "--bogus");
    let out = run(env, &["get", "service", "greter"]).await;
    assert_one_line_error(&out, "did you mean greeter?");
    let out = run(env, &["register", "service", r#"{"name": "x"}"#]).await;
    assert_one_line_error(&out, "has no nodes");
    let out = run(
        env,
        &["--registry_dir", "/dev/null/registry", "list", "services"],
    )
    .await;
    assert_one_line_error(&out, "/dev/null/registry");
    let out = run(env, &["--client_retries", "many", "list", "services"]).await;
    assert_one_line_error(&out, "--client_retries");
    greeter.service.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_flags_go_before_or_after_the_command() {
    let greeter = start_greeter(&[]).await;
    // The registry directory by flag, either side of the command, instead of by env.
    let dir = greeter
        .env
        .iter()
        .find(|(k, _)| k == "MICRO_REGISTRY_DIR")
        .map(|(_, v)| v.clone())
        .unwrap();
    let env: Vec<(String, String)> = Vec::new();
    for args in [
        vec!["--registry_dir", dir.as_str(), "list", "services"],
        vec!["list", "services", &format!("--registry_dir={dir}")],
        vec![
            "--registry=local",
            "list",
            "--registry_dir",
            dir.as_str(),
            "services",
        ],
    ] {
        let out = run(&env, &args).await;
        assert_ok(&out);
        assert_eq!(services(&out), ["greeter"], "{args:?}");
    }
    greeter.service.stop().await.unwrap();
}

/// `list` and `call` on the nats registry (a nats-server of the test's own), by flag and by env.
#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_call_on_nats() {
    let nats = nats_server::TestServer::start();
    let on_nats = [
        ("MICRO_REGISTRY", "nats".to_string()),
        ("MICRO_REGISTRY_ADDRESS", nats.address()),
    ];
    let greeter = start_greeter(&on_nats).await;
    let out = run(&greeter.env, &["list", "services"]).await;
    assert_ok(&out);
    assert_eq!(services(&out), ["greeter"]);
    let by_flag = ["--registry", "nats", "--registry_address", &nats.address()];
    let mut args: Vec<&str> = by_flag.to_vec();
    args.extend(["call", "greeter", "Greeter.Hello", r#"{"name":"Nats"}"#]);
    let out = run(&[], &args).await;
    assert_ok(&out);
    assert!(stdout(&out).contains("Hello Nats"));
    let unreachable = [
        "--registry=nats",
        "--registry_address=nats://127.0.0.1:1",
        "list",
        "services",
    ];
    let out = run(&[], &unreachable).await;
    assert_one_line_error(&out, "127.0.0.1:1");
    greeter.service.stop().await.unwrap();
}
