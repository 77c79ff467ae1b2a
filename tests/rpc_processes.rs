//! RPC between OS processes that find each other through the `local` registry: two
//! processes call each other over tcp and http (unary and the three streaming shapes); a
//! SIGKILLed node is skipped after its first failure and leaves the registry within its TTL;
//! a non-idempotent call is not run again on another node when its server dies mid-request,
//! an idempotent one is.
//!
//! Child processes are this test binary run again with `MICRO_TEST_ROLE` set.

use futures::StreamExt;
use micro::client::{self, CallOptions};
use micro::middleware::RpcLayer;
use micro::server::Handler;
use micro::{Built, Context, Streaming};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Hello {
    name: String,
}

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Reply {
    msg: String,
    pid: u32,
}

fn env_for(transport: &str, dir: &Path, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("MICRO_REGISTRY", "local"),
        ("MICRO_TRANSPORT", transport),
        ("MICRO_BROKER", "memory"),
        ("MICRO_REGISTER_TTL", "2s"),
        ("MICRO_REGISTER_INTERVAL", "500ms"),
        ("MICRO_CLIENT_REQUEST_TIMEOUT", "10s"),
        ("MICRO_LOGGER_LEVEL", "warn"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.push(("MICRO_REGISTRY_DIR".into(), dir.display().to_string()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// The endpoints every child serves. `marks` gets a file per run of the slow endpoints.
fn handlers(service: &str, marks: PathBuf) -> Vec<Handler> {
    let pid = std::process::id();
    let slow = |endpoint: &'static str| {
        let marks = marks.clone();
        move |_: Context, _: Hello| {
            let path = marks.join(format!("{endpoint}-{pid}"));
            async move {
                let _ = std::fs::write(&path, b"ran");
                tokio::time::sleep(Duration::from_secs(3)).await;
                Ok(Reply {
                    msg: endpoint.into(),
                    pid,
                })
            }
        }
    };
    let name = service.to_string();
    vec![
        Handler::unary("Peer.Hello", move |_: Context, req: Hello| {
            let name = name.clone();
            async move {
                Ok(Reply {
                    msg: format!("Hello {} from {name}", req.name),
                    pid,
                })
            }
        }),
        Handler::server_stream("Peer.Count", |_: Context, n: u32| async move {
            Ok(Streaming::from_values(0..n))
        }),
        Handler::client_stream(
            "Peer.Sum",
            |_: Context, mut nums: Streaming<u32>| async move {
                let mut total = 0;
                while let Some(n) = nums.next().await {
                    total += n?;
                }
                Ok(total)
            },
        ),
        Handler::bidi_stream(
            "Peer.Echo",
            |_: Context, words: Streaming<String>| async move {
                Ok(Streaming::new(words.map(|w| w.map(|w| w.to_uppercase()))))
            },
        ),
        Handler::unary("Peer.Once", slow("once")),
        Handler::unary("Peer.Again", slow("again")).idempotent(),
    ]
}

/// Calls every shape on `peer`; `Ok` when all answered as expected.
async fn exercise(client: &dyn micro::client::Client, peer: &str) -> micro::Result<()> {
    let ctx = Context::new();
    let opts = CallOptions::default();
    let reply: Reply = client::call(
        client,
        &ctx,
        peer,
        "Peer.Hello",
        &Hello {
            name: "John".into(),
        },
        opts.clone(),
    )
    .await?;
    assert_eq!(reply.msg, format!("Hello John from {peer}"));
    let mut count =
        client::stream::<u32, u32>(client, &ctx, peer, "Peer.Count", opts.clone()).await?;
    count.send(&4).await?;
    count.close_send();
    let mut got = Vec::new();
    while let Some(n) = count.recv().await {
        got.push(n?);
    }
    assert_eq!(got, [0, 1, 2, 3]);
    let mut sum = client::stream::<u32, u32>(client, &ctx, peer, "Peer.Sum", opts.clone()).await?;
    for n in 1..=4 {
        sum.send(&n).await?;
    }
    sum.close_send();
    assert_eq!(sum.recv().await.transpose()?, Some(10));
    let mut echo = client::stream::<String, String>(client, &ctx, peer, "Peer.Echo", opts).await?;
    for word in ["x", "y"] {
        echo.send(&word.to_string()).await?;
        assert_eq!(echo.recv().await.transpose()?, Some(word.to_uppercase()));
    }
    echo.close_send();
    assert!(echo.recv().await.is_none());
    Ok(())
}

fn build(name: &str, env: Vec<(String, String)>, handlers: Vec<Handler>) -> micro::Service {
    let builder = micro::Service::builder()
        .name(name)
        .args([name])
        .env(env)
        .handler(handlers);
    match builder.try_build() {
        Ok(Built::Service(s)) => s,
        Ok(_) => panic!("expected a service"),
        Err(e) => panic!("build {name}: {e}"),
    }
}

/// Child mode: serve, optionally call the peer, print `READY`/`OK`/`FAIL`, serve until
/// stdin closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child() {
    let Ok(role) = std::env::var("MICRO_TEST_ROLE") else {
        return;
    };
    let get = |k: &str| std::env::var(k).unwrap_or_default();
    let (name, peer, transport) = (
        get("MICRO_TEST_NAME"),
        get("MICRO_TEST_PEER"),
        get("MICRO_TEST_TRANSPORT"),
    );
    let dir = PathBuf::from(get("MICRO_TEST_DIR"));
    let service = build(
        &name,
        env_for(&transport, &dir, &[]),
        handlers(&name, dir.clone()),
    );
    service.start().await.expect("start");
    println!("READY {}", std::process::id());
    if role == "caller" {
        let client = service.components().client.clone().expect("client");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        loop {
            match exercise(client.as_ref(), &peer).await {
                Ok(()) => {
                    println!("OK");
                    break;
                }
                Err(e) if Instant::now() < deadline => {
                    last = e.to_string();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    println!("FAIL {e} (last: {last})");
                    break;
                }
            }
        }
    }
    let _ = tokio::task::spawn_blocking(|| std::io::stdin().lines().count()).await;
    let _ = service.stop().await;
}

struct Kid {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Kid {
    fn spawn(role: &str, name: &str, peer: &str, transport: &str, dir: &Path) -> Kid {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child", "--nocapture", "--test-threads=1"])
            .env("MICRO_TEST_ROLE", role)
            .env("MICRO_TEST_NAME", name)
            .env("MICRO_TEST_PEER", peer)
            .env("MICRO_TEST_TRANSPORT", transport)
            .env("MICRO_TEST_DIR", dir)
            .stdin(Stdio::piped())
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

    /// The first line holding one of `prefixes` (libtest may print `test child ... ` in
    /// front), from the prefix on, within `limit`.
    fn wait_for(&self, prefixes: &[&str], limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(at) = prefixes.iter().filter_map(|p| line.find(p)).min() {
                        return line[at..].to_string();
                    }
                }
                Err(e) => panic!("child said none of {prefixes:?}: {e}"),
            }
        }
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn two_processes_call_each_other(transport: &str) {
    let dir = tempfile::tempdir().unwrap();
    let a = Kid::spawn("caller", "alpha", "beta", transport, dir.path());
    let b = Kid::spawn("caller", "beta", "alpha", transport, dir.path());
    for (kid, name) in [(&a, "alpha"), (&b, "beta")] {
        let line = kid.wait_for(&["OK", "FAIL"], Duration::from_secs(60));
        assert_eq!(line, "OK", "{name} over {transport}");
    }
}

#[test]
fn two_processes_call_each_other_over_tcp() {
    two_processes_call_each_other("tcp");
}

#[test]
fn two_processes_call_each_other_over_http() {
    two_processes_call_each_other("http");
}

/// A client in this process on the same registry, counting failed attempts.
fn parent_client(dir: &Path, failures: Arc<AtomicUsize>) -> micro::Service {
    let counter = tower::util::MapResultLayer::new(
        move |r: Result<micro::client::Response, micro::middleware::BoxError>| {
            if r.is_err() {
                failures.fetch_add(1, Ordering::SeqCst);
            }
            r
        },
    );
    let env = env_for(
        "tcp",
        dir,
        &[
            ("MICRO_SERVER_ENABLED", "false"),
            ("MICRO_SELECTOR_COOLDOWN", "1m"),
        ],
    );
    match micro::Service::builder()
        .name("parent")
        .args(["parent"])
        .env(env)
        .wrap_attempt(RpcLayer::new(counter))
        .try_build()
    {
        Ok(Built::Service(s)) => s,
        _ => panic!("parent client"),
    }
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_skipped_and_leaves_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let kids = [
        Kid::spawn("server", "twin", "", "tcp", dir.path()),
        Kid::spawn("server", "twin", "", "tcp", dir.path()),
    ];
    let pids: Vec<u32> = kids
        .iter()
        .map(|k| {
            k.wait_for(&["READY"], Duration::from_secs(60))[6..]
                .parse()
                .unwrap()
        })
        .collect();
    let failures = Arc::new(AtomicUsize::new(0));
    let parent = parent_client(dir.path(), failures.clone());
    let client = parent.components().client.clone().unwrap();
    let registry = parent.components().registry.clone().unwrap();
    let hello = Hello { name: "x".into() };
    let ctx = Context::new();
    let call = || {
        client::call::<Hello, Reply>(
            client.as_ref(),
            &ctx,
            "twin",
            "Peer.Hello",
            &hello,
            CallOptions::default(),
        )
    };
    // Both nodes answer.
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 2 && Instant::now() < deadline {
        if let Ok(reply) = call().await {
            seen.insert(reply.pid);
        }
    }
    assert_eq!(seen.len(), 2, "both nodes answered: {seen:?} of {pids:?}");
    failures.store(0, Ordering::SeqCst);
    let mut kids = kids;
    kids[0].child.kill().unwrap();
    let _ = kids[0].child.wait();
    for i in 0..50 {
        let reply = call()
            .await
            .unwrap_or_else(|e| panic!("call {i} after the kill: {e}"));
        assert_eq!(reply.pid, pids[1]);
    }
    assert!(
        failures.load(Ordering::SeqCst) <= 1,
        "attempts to the dead node after its first failure: {}",
        failures.load(Ordering::SeqCst)
    );
    // The dead node's registration expires (TTL 2s).
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let nodes: usize = registry
            .get_service("twin")
            .await
            .map(|s| s.iter().map(|v| v.nodes.len()).sum())
            .unwrap_or(0);
        if nodes == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dead node still registered ({nodes} nodes)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn marks(dir: &Path, endpoint: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("{endpoint}-")))
                .collect()
        })
        .unwrap_or_default()
}

/// Calls `endpoint` on a pair of servers, kills the one that starts running it, and returns
/// the call's outcome and the marks left by runs of the endpoint.
async fn kill_mid_request(endpoint: &str, idempotent: bool) -> (micro::Result<Reply>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let mut kids = vec![
        Kid::spawn("server", "twin", "", "tcp", dir.path()),
        Kid::spawn("server", "twin", "", "tcp", dir.path()),
    ];
    let pids: Vec<String> = kids
        .iter()
        .map(|k| k.wait_for(&["READY"], Duration::from_secs(60))[6..].to_string())
        .collect();
    let parent = parent_client(dir.path(), Arc::new(AtomicUsize::new(0)));
    let client = parent.components().client.clone().unwrap();
    // Wait until both nodes are registered.
    let registry = parent.components().registry.clone().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while registry
        .get_service("twin")
        .await
        .map(|s| s.iter().map(|v| v.nodes.len()).sum::<usize>())
        .unwrap_or(0)
        < 2
    {
        assert!(Instant::now() < deadline, "servers did not register");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let method = format!("Peer.{}{}", endpoint[..1].to_uppercase(), &endpoint[1..]);
    let options = CallOptions::default().idempotent(idempotent).retries(2);
    let call = tokio::spawn(async move {
        client::call::<Hello, Reply>(
            client.as_ref(),
            &Context::new(),
            "twin",
            &method,
            &Hello { name: "x".into() },
            options,
        )
        .await
    });
    let marks_dir = dir.path().to_path_buf();
    let endpoint_name = endpoint.to_string();
    let first = tokio::task::spawn_blocking(move || {
        wait_until(
            Duration::from_secs(20),
            || !marks(&marks_dir, &endpoint_name).is_empty(),
            "the first run",
        );
        marks(&marks_dir, &endpoint_name)[0].clone()
    })
    .await
    .unwrap();
    let victim = pids
        .iter()
        .position(|p| first.ends_with(&format!("-{p}")))
        .expect("a child ran it");
    kids[victim].child.kill().unwrap();
    let _ = kids[victim].child.wait();
    let outcome = call.await.unwrap();
    let ran = marks(dir.path(), endpoint);
    drop(kids);
    (outcome, ran)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_idempotent_call_is_not_run_again_when_its_server_dies() {
    let (outcome, ran) = kill_mid_request("once", false).await;
    assert!(outcome.is_err(), "the call fails: {outcome:?}");
    assert_eq!(ran.len(), 1, "ran once only: {ran:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_call_is_run_again_on_the_other_node() {
    let (outcome, ran) = kill_mid_request("again", true).await;
    let reply = outcome.expect("the retry on the other node answers");
    assert_eq!(reply.msg, "again");
    assert_eq!(ran.len(), 2, "ran on both nodes: {ran:?}");
}
