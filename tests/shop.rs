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
        .args(features())
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

/// The `--features` of the example build: the plugins this test binary was built with.
fn features() -> Option<String> {
    let on = [
        ("nats", cfg!(feature = "nats")),
        ("redis", cfg!(feature = "redis")),
        ("postgres", cfg!(feature = "postgres")),
    ];
    let names: Vec<&str> = on.iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect();
    (!names.is_empty()).then(|| format!("--features={}", names.join(",")))
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
/// Returns the id of the order it placed.
async fn suite(env: &[(String, String)], via: &str) -> String {
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
    order.id
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

/// The three services as three processes, then the suite; returns the order's id.
async fn split(env: &[(String, String)]) -> String {
    let _procs: Vec<Running> = ["inventory", "notifications", "orders"]
        .iter()
        .map(|s| start(env, Some(s)))
        .collect();
    suite(env, "network").await
}

/// A store database (redis key prefix, postgres schema) of this test run alone.
#[cfg(any(feature = "redis", feature = "postgres"))]
fn fresh_database() -> String {
    format!("shop_{}", uuid::Uuid::new_v4().simple())
}

/// Runs `program args` and returns its standard output, failing the test on an error.
#[cfg(any(feature = "redis", feature = "postgres"))]
fn output_of(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} must be installed for this test: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Split with `store: redis` (and the local registry): the stock and the order are in redis
/// under `<database>:inventory:apple` and `<database>:orders:<id>`, as redis-cli shows.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_as_split_services_with_the_redis_store() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database();
    let mut env = on_local(dir.path());
    env.push(("MICRO_STORE".into(), "redis".into()));
    env.push((
        "MICRO_STORE_ADDRESS".into(),
        "redis://127.0.0.1:6379".into(),
    ));
    env.push(("MICRO_STORE_DATABASE".into(), database.clone()));
    let id = split(&env).await;
    let cli = |args: &[&str]| {
        let mut all = vec!["-h", "127.0.0.1", "-p", "6379", "--raw"];
        all.extend_from_slice(args);
        output_of("redis-cli", &all)
    };
    // The value is the store's record layout ("MKV" 0x01, expiry, metadata, then the value).
    let stock = cli(&["GET", &format!("{database}:inventory:apple")]);
    assert!(stock.trim_end().ends_with("{}7"), "apple: {stock:?}");
    let order = cli(&["GET", &format!("{database}:orders:{id}")]);
    assert!(
        order.contains("\"item\":\"apple\",\"qty\":3"),
        "order: {order:?}"
    );
    let keys = cli(&["--scan", "--pattern", &format!("{database}:*")]);
    let mut keys: Vec<&str> = keys.lines().collect();
    keys.sort();
    let expected_order = format!("{database}:orders:{id}");
    let expected_stock = format!("{database}:inventory:apple");
    assert_eq!(keys, [expected_stock.as_str(), expected_order.as_str()]);
    cli(&["DEL", &expected_stock, &expected_order]);
}

/// Split with `store: postgres`: the stock and the order are rows of the tables
/// `<database>.inventory` and `<database>.orders` (database = schema), as psql shows.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_as_split_services_with_the_postgres_store() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database();
    let url = "postgres://postgres@127.0.0.1:5432/test";
    let mut env = on_local(dir.path());
    env.push(("MICRO_STORE".into(), "postgres".into()));
    env.push(("MICRO_STORE_ADDRESS".into(), url.into()));
    env.push(("MICRO_STORE_DATABASE".into(), database.clone()));
    let id = split(&env).await;
    let psql = |sql: &str| output_of("psql", &[url, "-X", "-A", "-t", "-c", sql]);
    let stock = psql(&format!(
        "SELECT key, convert_from(value, 'UTF8') FROM {database}.inventory ORDER BY key"
    ));
    assert_eq!(stock.trim(), "apple|7");
    let order = psql(&format!(
        "SELECT convert_from(value, 'UTF8')::jsonb ->> 'item', \
         (convert_from(value, 'UTF8')::jsonb ->> 'qty') FROM {database}.orders WHERE key = '{id}'"
    ));
    assert_eq!(order.trim(), "apple|3");
    psql(&format!("DROP SCHEMA {database} CASCADE"));
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
