//! A service process stopped by a signal while calls are in flight over tcp: after one
//! SIGTERM the calls finish and the process exits cleanly; a second SIGTERM during a long
//! drain makes it exit at once.
//!
//! Child processes are this test binary run again with `MICRO_TEST_ROLE` set; they serve
//! with `Service::run`, so they stop the way a real service does.

use micro::client::{self, CallOptions};
use micro::config::ClientConfig;
use micro::logger::Logger;
use micro::middleware::Middleware;
use micro::mucp::{ClientParts, MucpClient};
use micro::server::Handler;
use micro::tcp::TcpTransport;
use micro::{Built, Context};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A functional bound on what should happen, far above the time it takes.
const WAIT: Duration = Duration::from_secs(60);

/// Child mode: serve `Slow.Wait` (sleeps `MICRO_TEST_DELAY_MS`, prints `STARTED` first) with
/// `Service::run`, print `READY <address>`, and `STOPPED ok` or `STOPPED <error>` at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_child() {
    let Ok(grace) = std::env::var("MICRO_TEST_GRACE") else {
        return;
    };
    let start_delay: u64 = std::env::var("MICRO_TEST_START_DELAY_MS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0);
    let delay: u64 = std::env::var("MICRO_TEST_DELAY_MS")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or(1000);
    let env: Vec<(String, String)> = [
        ("MICRO_REGISTRY", "memory"),
        ("MICRO_TRANSPORT", "tcp"),
        ("MICRO_BROKER", "memory"),
        ("MICRO_SERVER_ADDRESS", "127.0.0.1:0"),
        ("MICRO_SERVER_GRACE_PERIOD", grace.as_str()),
        ("MICRO_LOGGER_LEVEL", "error"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let handler = Handler::unary("Slow.Wait", move |_: Context, n: u64| async move {
        println!("STARTED {n}");
        tokio::time::sleep(Duration::from_millis(delay)).await;
        Ok::<u64, micro::Error>(n + 1)
    });
    let builder = micro::Service::builder()
        .name("drainer")
        .args(["drainer"])
        .env(env)
        .handler(vec![handler])
        .after_start(move || async move {
            tokio::time::sleep(Duration::from_millis(start_delay)).await;
            Ok(())
        });
    let service = match builder.try_build() {
        Ok(Built::Service(s)) => s,
        Ok(_) => panic!("expected a service"),
        Err(e) => panic!("build: {e}"),
    };
    let running = {
        let service = service.clone();
        tokio::spawn(async move { service.run().await })
    };
    let server = service.components().server.clone().expect("a server");
    let deadline = Instant::now() + WAIT;
    let address = loop {
        if let Some(address) = server.address() {
            break address;
        }
        assert!(Instant::now() < deadline, "the service did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    println!("READY {address}");
    match running.await.expect("run") {
        Ok(()) => println!("STOPPED ok"),
        Err(e) => println!("STOPPED {e}"),
    }
}

struct Kid {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Kid {
    /// A child with `grace`, handlers taking `delay_ms`, and an `after_start` hook taking
    /// `start_delay_ms` (the server answers meanwhile).
    fn spawn(grace: &str, delay_ms: u64, start_delay_ms: u64) -> Kid {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "drain_child", "--nocapture", "--test-threads=1"])
            .env("MICRO_TEST_GRACE", grace)
            .env("MICRO_TEST_DELAY_MS", delay_ms.to_string())
            .env("MICRO_TEST_START_DELAY_MS", start_delay_ms.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Kid { child, lines }
    }

    /// The text after `prefix` on the next line holding it (libtest may print in front).
    fn wait_for(&self, prefix: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(at) = line.find(prefix) {
                        return line[at + prefix.len()..].trim().to_string();
                    }
                }
                Err(e) => panic!("the child never said {prefix:?}: {e}"),
            }
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// The exit status, waiting up to `limit`.
    fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> MucpClient {
    MucpClient::new(
        ClientConfig::default(),
        ClientParts {
            selector: None,
            transport: Arc::new(TcpTransport::default()),
            broker: None,
            middleware: Middleware::default(),
            logger: Logger::none(),
        },
    )
}

/// Starts `count` calls of `Slow.Wait` at `address` and waits until each reached the handler.
fn calls_in_flight(
    kid: &Kid,
    client: &MucpClient,
    address: &str,
    count: u64,
) -> Vec<tokio::task::JoinHandle<micro::Result<u64>>> {
    let calls = (0..count)
        .map(|n| {
            let client = client.clone();
            let options = CallOptions::default()
                .address(address)
                .request_timeout(Duration::from_secs(300))
                .retries(0);
            tokio::spawn(async move {
                client::call::<u64, u64>(
                    &client,
                    &Context::new(),
                    "drainer",
                    "Slow.Wait",
                    &n,
                    options,
                )
                .await
            })
        })
        .collect();
    for _ in 0..count {
        kid.wait_for("STARTED");
    }
    calls
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_calls_in_flight_finish() {
    // The signal comes while the service is still starting (a slow start hook): it must
    // drain, not kill the process as SIGTERM's default action would.
    let mut kid = Kid::spawn("60s", 1500, 1000);
    let address = kid.wait_for("READY");
    let client = client();
    let calls = tokio::task::block_in_place(|| calls_in_flight(&kid, &client, &address, 10));
    kid.signal("TERM");
    for (n, call) in calls.into_iter().enumerate() {
        let answer = tokio::time::timeout(WAIT, call)
            .await
            .unwrap_or_else(|_| panic!("call {n} hangs"))
            .unwrap();
        assert_eq!(
            answer.unwrap_or_else(|e| panic!("call {n} was cut by SIGTERM: {e}")),
            n as u64 + 1
        );
    }
    let stopped = tokio::task::block_in_place(|| kid.wait_for("STOPPED"));
    assert_eq!(stopped, "ok");
    let status = tokio::task::block_in_place(|| kid.exit_within(WAIT)).expect("the child exits");
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_during_the_drain_exits_at_once() {
    // The handler and the grace period both far outlast the check's bound.
    let mut kid = Kid::spawn("1h", 3_600_000, 0);
    let address = kid.wait_for("READY");
    let client = client();
    let calls = tokio::task::block_in_place(|| calls_in_flight(&kid, &client, &address, 3));
    kid.signal("TERM");
    // The first signal starts a drain that would last an hour.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        kid.child.try_wait().unwrap().is_none(),
        "the first SIGTERM must drain, not exit"
    );
    kid.signal("TERM");
    let stopped = tokio::task::block_in_place(|| kid.wait_for("STOPPED"));
    assert!(stopped.contains("second signal"), "{stopped}");
    tokio::task::block_in_place(|| kid.exit_within(WAIT)).expect("the child exits at once");
    for (n, call) in calls.into_iter().enumerate() {
        let outcome = tokio::time::timeout(WAIT, call)
            .await
            .unwrap_or_else(|_| panic!("call {n} hangs after the process exited"))
            .unwrap();
        assert!(outcome.is_err(), "call {n}: {outcome:?}");
    }
}
