//! A subscriber in another process, through the `local` registry.
//!
//! The test re-runs this binary: `processes::child_subscriber` does nothing in a normal run
//! and plays the subscriber process when `MICRO_HTTP_BROKER_CHILD_DIR` is set.

use super::{all_messages, broker, collect, nodes_of, publish_n, text, unique};
use micro_core::broker::{Broker, Delivery, Message, SubscribeOptions, handler};
use micro_core::registry::Registry;
use micro_local::LocalRegistry;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const CHILD_DIR: &str = "MICRO_HTTP_BROKER_CHILD_DIR";
const CHILD_TOPIC: &str = "MICRO_HTTP_BROKER_CHILD_TOPIC";

/// The subscriber process of `subscriber_in_another_process`: subscribes to the topic as a
/// broadcast subscriber and as a member of queue group `q`, prints what it receives, and
/// disconnects when a message arrives on `<topic>.done`.
#[tokio::test(flavor = "multi_thread")]
async fn child_subscriber() {
    let (Ok(dir), Ok(topic)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_TOPIC)) else {
        return; // a normal test run: nothing to do
    };
    let registry: Arc<dyn Registry> = Arc::new(LocalRegistry::new(&dir).unwrap());
    let b = broker(&registry);
    let print = |tag: &'static str| {
        handler(move |d: Delivery| async move {
            println!("CHILD-{tag} {}", String::from_utf8_lossy(&d.message.body));
            Ok(())
        })
    };
    let _all = b
        .subscribe(&topic, print("ALL"), SubscribeOptions::default())
        .await
        .unwrap();
    let _queue = b
        .subscribe(
            &topic,
            print("QUEUE"),
            SubscribeOptions::default().queue("q"),
        )
        .await
        .unwrap();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<()>();
    let done = handler(move |_d: Delivery| {
        let _ = done_tx.send(());
        async { Ok(()) }
    });
    let done_topic = format!("{topic}.done");
    let _done = b
        .subscribe(&done_topic, done, SubscribeOptions::default())
        .await
        .unwrap();
    println!("CHILD-READY");
    tokio::time::timeout(Duration::from_secs(120), done_rx.recv())
        .await
        .expect("the parent said done");
    b.disconnect().await.unwrap();
    println!("CHILD-BYE");
}

/// The child process; killed when dropped (also when the test fails).
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (bounded) for a line containing `marker`; returns every line read on the way.
fn lines_until(lines: &std::sync::mpsc::Receiver<String>, marker: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            // libtest may print "test processes::child_subscriber ... " before it on the same line.
            Ok(line) if line.contains(marker) => {
                seen.push(line);
                return seen;
            }
            Ok(line) => seen.push(line),
            Err(err) => panic!("the child never printed {marker} ({err}); it printed {seen:?}"),
        }
    }
}

/// What follows `CHILD-<tag> ` in each line.
fn printed(lines: &[String], tag: &str) -> Vec<String> {
    let marker = format!("CHILD-{tag} ");
    lines
        .iter()
        .filter_map(|l| {
            l.split_once(&marker)
                .map(|(_, rest)| rest.trim_end().to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriber_in_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("processes");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "processes::child_subscriber",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .env(CHILD_TOPIC, &topic)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut child = ChildGuard(child);
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut output = tokio::task::block_in_place(|| lines_until(&lines, "CHILD-READY"));

    let registry: Arc<dyn Registry> = Arc::new(LocalRegistry::new(dir.path()).unwrap());
    let parent = broker(&registry);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let _queue = collect(
        &parent,
        &topic,
        SubscribeOptions::default().queue("q"),
        0,
        tx,
    )
    .await;
    publish_n(&parent, &topic, 10).await;
    parent
        .publish(&format!("{topic}.done"), Message::new("done"))
        .await
        .unwrap();
    output.extend(tokio::task::block_in_place(|| {
        lines_until(&lines, "CHILD-BYE")
    }));
    let status = tokio::task::block_in_place(|| child.0.wait()).unwrap();
    assert!(
        status.success(),
        "child failed: {status}; output {output:?}"
    );

    let expected: Vec<String> = (0..10).map(|i| format!("message {i}")).collect();
    assert_eq!(printed(&output, "ALL"), expected, "broadcast in the child");
    let mut queue = printed(&output, "QUEUE");
    while let Ok((_, d)) = rx.try_recv() {
        queue.push(text(&d));
    }
    assert_eq!(queue.len(), 10, "each queue message once: {queue:?}");
    assert_eq!(queue.into_iter().collect::<BTreeSet<_>>(), all_messages(10));

    // The child deregistered on disconnect; only the parent's subscriber is left.
    let left = nodes_of(&registry, &topic).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].id.starts_with(parent.id()));
    parent.disconnect().await.unwrap();
    assert!(nodes_of(&registry, &topic).await.is_empty());
}
