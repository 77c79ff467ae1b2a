//! One test suite for the shop, run against both deployments of the same code: a monolith
//! (one process, in-process calls) and split services (one process each, over the network).
//! The test process is a client on the same `local` registry, using the generated clients.
//! With the `nats` feature the split deployment also runs on NATS (registry and broker).

#[cfg(feature = "nats")]
#[path = "../micro-plugins/nats/tests/common/server.rs"]
#[allow(dead_code)]
mod nats_server;

#[path = "../examples/shop/api.rs"]
#[allow(dead_code)]
mod api;

use api::{
    Inventory, InventoryClient, Notifications, NotificationsClient, Orders, OrdersClient,
    PlaceOrder,
};
use micro::{Built, Context};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn shop_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--example", "shop", "--offline", "--quiet"])
        .args(cfg!(feature = "nats").then_some("--features=nats"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build --example shop failed");
    let deps = std::env::current_exe().unwrap();
    deps.parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("examples")
        .join("shop")
}

/// A running shop process, killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The environment of a deployment on the `local` registry in `registry`.
fn on_local(registry: &Path) -> Vec<(String, String)> {
    vec![
        (
            "MICRO_REGISTRY_DIR".to_string(),
            registry.display().to_string(),
        ),
        ("MICRO_LOGGER_LEVEL".to_string(), "warn".to_string()),
    ]
}

fn start(env: &[(String, String)], services: Option<&str>) -> Running {
    let mut cmd = Command::new(shop_binary());
    if let Some(list) = services {
        cmd.args(["--services", list]);
    }
    let mut child = cmd
        .envs(env.iter().cloned())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines.next().and_then(|l| l.ok()).unwrap_or_default();
    assert!(ready.starts_with("READY"), "shop said {ready:?}");
    Running(child)
}

fn client(env: &[(String, String)]) -> micro::Service {
    let mut env = env.to_vec();
    env.push(("MICRO_SERVER_ENABLED".to_string(), "false".to_string()));
    match micro::Service::builder()
        .name("shop-test")
        .args(["shop-test"])
        .env(env)
        .try_build()
    {
        Ok(Built::Service(s)) => s,
        _ => panic!("client service"),
    }
}

/// The suite, identical for both deployments; `via` is how orders reached inventory.
async fn suite(env: &[(String, String)], via: &str) {
    let service = client(env);
    let caller = service.caller();
    let (orders, inventory, notifications) = (
        OrdersClient::new(caller.clone(), "orders"),
        InventoryClient::new(caller.clone(), "inventory"),
        NotificationsClient::new(caller, "notifications"),
    );
    let ctx = Context::new().with_timeout(Duration::from_secs(10));
    // All three answer (their registrations may take a moment to be seen).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let up = inventory.stock(&ctx, "apple".into()).await.is_ok()
            && notifications.sent(&ctx, ()).await.is_ok();
        if up {
            break;
        }
        assert!(Instant::now() < deadline, "services did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        inventory.stock(&ctx, "apple".into()).await.unwrap().left,
        10
    );
    let order = orders
        .place(
            &ctx,
            PlaceOrder {
                item: "apple".into(),
                qty: 3,
            },
        )
        .await
        .unwrap();
    assert_eq!((order.item.as_str(), order.qty), ("apple", 3));
    assert_eq!(order.inventory_via, via);
    assert_eq!(inventory.stock(&ctx, "apple".into()).await.unwrap().left, 7);
    // Not enough stock: inventory's 409 comes back through orders unchanged.
    let err = orders
        .place(
            &ctx,
            PlaceOrder {
                item: "pear".into(),
                qty: 50,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code, 409, "{err}");
    assert!(err.detail.contains("only 5 pear left"), "{err}");
    // The notification for the order arrives through the broker.
    let expected = format!("order {}: 3 x apple", order.id);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let sent = notifications.sent(&ctx, ()).await.unwrap();
        if sent.messages.contains(&expected) {
            assert_eq!(
                sent.messages.len(),
                1,
                "exactly one notification: {:?}",
                sent.messages
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no notification: {:?}",
            sent.messages
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_as_a_monolith() {
    let dir = tempfile::tempdir().unwrap();
    let env = on_local(dir.path());
    let _shop = start(&env, None);
    suite(&env, "in-process").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_as_split_services() {
    let dir = tempfile::tempdir().unwrap();
    split(&on_local(dir.path())).await;
}

/// The three services as three processes, then the suite.
async fn split(env: &[(String, String)]) {
    let _procs: Vec<Running> = ["inventory", "notifications", "orders"]
        .iter()
        .map(|s| start(env, Some(s)))
        .collect();
    suite(env, "network").await;
}

/// Split on NATS: registry and broker on a nats-server of the test's own (a spare port,
/// never the shared one), the calls over tcp.
#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_as_split_services_on_nats() {
    let nats = nats_server::TestServer::start();
    let env: Vec<(String, String)> = [
        ("MICRO_REGISTRY", "nats".to_string()),
        ("MICRO_REGISTRY_ADDRESS", nats.address()),
        ("MICRO_BROKER", "nats".to_string()),
        ("MICRO_BROKER_ADDRESS", nats.address()),
        ("MICRO_LOGGER_LEVEL", "warn".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    split(&env).await;
}
