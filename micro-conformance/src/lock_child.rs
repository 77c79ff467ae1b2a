//! Two processes contending for one lock, for plugin tests on a real server: the test binary
//! runs itself again as a child ([`start_lock_child`]), whose child test calls
//! [`lock_child`]; the child takes the lock without waiting, prints `SYNC_CHILD HELD` or
//! `SYNC_CHILD BUSY` (or `SYNC_CHILD FAILED <error>`), and, holding it, waits for its stdin
//! to close before unlocking.
//!
//! ```ignore
//! #[tokio::test]
//! async fn sync_child() {
//!     if let Some((id, ttl)) = micro_conformance::lock_child::requested() {
//!         micro_conformance::lock_child::lock_child(fresh(), &id, ttl).await;
//!     }
//! }
//! let (child, outcome) = micro_conformance::lock_child::start_lock_child("sync_child", &id, 60_000, &[]);
//! ```

use micro_core::sync::{LockOptions, Sync};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// The lock a child takes.
const CHILD: &str = "MICRO_SYNC_CHILD";
/// Its ttl in milliseconds.
const TTL_MS: &str = "MICRO_SYNC_CHILD_TTL_MS";

/// In a child: the lock id and ttl it was started for; `None` in a normal test run.
pub fn requested() -> Option<(String, Duration)> {
    let id = std::env::var(CHILD).ok()?;
    let ttl = std::env::var(TTL_MS)
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::from_secs(60), Duration::from_millis);
    Some((id, ttl))
}

/// The child's side: takes lock `id` on `sync` without waiting and reports (see above).
pub async fn lock_child(sync: Arc<dyn Sync>, id: &str, ttl: Duration) {
    let options = LockOptions::default().ttl(ttl).wait(Duration::ZERO);
    match sync.lock(id, options).await {
        Ok(()) => {
            println!("SYNC_CHILD HELD");
            let _ = std::io::stdout().flush();
            let _ = tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
            })
            .await;
            if let Err(e) = sync.unlock(id).await {
                println!("SYNC_CHILD UNLOCK FAILED {e}");
            }
        }
        Err(e) if e.code == 408 => println!("SYNC_CHILD BUSY"),
        Err(e) => println!("SYNC_CHILD FAILED {e}"),
    }
    let _ = std::io::stdout().flush();
}

/// Starts this test binary again running only `child_test`, contending for lock `id` with a
/// ttl of `ttl_ms`, with `env` added; returns the child (stdin open: it holds the lock until
/// stdin closes or it is killed) and its outcome (`HELD`, `BUSY`, `FAILED ...`).
pub fn start_lock_child(
    child_test: &str,
    id: &str,
    ttl_ms: u64,
    env: &[(&str, String)],
) -> (Child, String) {
    let mut child = Command::new(std::env::current_exe().expect("the test binary's path"))
        .args(["--exact", child_test, "--nocapture", "--test-threads=1"])
        .env(CHILD, id)
        .env(TTL_MS, ttl_ms.to_string())
        .envs(env.iter().map(|(k, v)| (k.to_string(), v.clone())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the test binary runs again as a child");
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    // libtest prints `test <name> ... ` first, on the same line.
    let outcome = lines
        .find_map(|l| l.split_once("SYNC_CHILD ").map(|(_, o)| o.to_string()))
        .unwrap_or_else(|| "no outcome".to_string());
    // Keep reading, so the child's last lines never meet a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, outcome)
}
