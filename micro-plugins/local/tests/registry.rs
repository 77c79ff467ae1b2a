//! Behaviour of the local registry through its public API: several registry values over one
//! directory stand in for several processes.

use futures::StreamExt;
use micro_core::registry::{
    Action, Node, RegisterOptions, Registry, Service, WatchEvent, WatchOptions, Watcher,
};
use micro_local::LocalRegistry;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(10);

fn service(name: &str, version: &str, ids: &[&str]) -> Service {
    Service {
        name: name.into(),
        version: version.into(),
        nodes: ids
            .iter()
            .map(|id| Node {
                id: (*id).into(),
                address: format!("127.0.0.1:{}", id.len()),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn ttl(d: Duration) -> RegisterOptions {
    RegisterOptions::default().ttl(d)
}

fn ids(service: &Service) -> Vec<&str> {
    service.nodes.iter().map(|n| n.id.as_str()).collect()
}

async fn next(watcher: &mut Watcher) -> WatchEvent {
    tokio::time::timeout(DEADLINE, watcher.next())
        .await
        .expect("a watch event in time")
        .expect("the watcher is open")
        .expect("no watch error")
}

/// Polls until `get_service(name)` satisfies `done` (bounded).
async fn until(reg: &LocalRegistry, name: &str, done: impl Fn(Option<&[Service]>) -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let found = reg.get_service(name).await.ok();
        if done(found.as_deref()) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name}: condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn registries_on_one_directory_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let a = LocalRegistry::new(dir.path()).unwrap();
    let b = LocalRegistry::new(dir.path()).unwrap();
    a.register(&service("greeter", "1.0.0", &["g-1"]), Default::default())
        .await
        .unwrap();
    b.register(&service("greeter", "1.0.0", &["g-2"]), Default::default())
        .await
        .unwrap();
    b.register(&service("greeter", "2.0.0", &["g-3"]), Default::default())
        .await
        .unwrap();

    let found = a.get_service("greeter").await.unwrap();
    assert_eq!(found.len(), 2, "one entry per version");
    assert_eq!(
        (found[0].version.as_str(), ids(&found[0])),
        ("1.0.0", vec!["g-1", "g-2"])
    );
    assert_eq!(
        (found[1].version.as_str(), ids(&found[1])),
        ("2.0.0", vec!["g-3"])
    );
    assert_eq!(b.list_services().await.unwrap().len(), 2);

    a.deregister(&service("greeter", "1.0.0", &["g-1", "g-2"]))
        .await
        .unwrap();
    let found = b.get_service("greeter").await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].version, "2.0.0");
    b.deregister(&service("greeter", "2.0.0", &["g-3"]))
        .await
        .unwrap();
    let err = a.get_service("greeter").await.unwrap_err();
    assert_eq!(err.code, 404);
    assert!(a.list_services().await.unwrap().is_empty());
}

#[tokio::test]
async fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let reg = LocalRegistry::new(dir.path()).unwrap();
    let err = reg
        .register(&service("", "1", &["n"]), Default::default())
        .await
        .unwrap_err();
    assert_eq!(err.code, 400);
    assert!(
        err.detail.contains("service name is empty"),
        "{}",
        err.detail
    );
    let err = reg
        .register(&service("s", "1", &[""]), Default::default())
        .await
        .unwrap_err();
    assert_eq!(err.code, 400);
    assert!(err.detail.contains("empty id"), "{}", err.detail);
    assert_eq!(reg.get_service("missing").await.unwrap_err().code, 404);
    // Deregistering what is not there is fine.
    reg.deregister(&service("missing", "1", &["n"]))
        .await
        .unwrap();
}

#[tokio::test]
async fn empty_version_is_latest_and_names_are_kept_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let reg = LocalRegistry::new(dir.path()).unwrap();
    let name = "go.micro.srv/Greeter ../x";
    reg.register(&service(name, "", &["Node/1"]), Default::default())
        .await
        .unwrap();
    let found = reg.get_service(name).await.unwrap();
    assert_eq!(found[0].name, name);
    assert_eq!(found[0].version, "latest");
    assert_eq!(ids(&found[0]), vec!["Node/1"]);
    assert_eq!(reg.get_service("go.micro.srv").await.unwrap_err().code, 404);
}

#[tokio::test]
async fn nodes_expire_after_their_ttl_unless_refreshed() {
    let dir = tempfile::tempdir().unwrap();
    let reg = LocalRegistry::new(dir.path()).unwrap();
    reg.register(
        &service("ttl", "1", &["short"]),
        ttl(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    reg.register(&service("ttl", "1", &["forever"]), Default::default())
        .await
        .unwrap();
    until(&reg, "ttl", |s| {
        s.is_some_and(|s| ids(&s[0]) == vec!["forever"])
    })
    .await;
    reg.deregister(&service("ttl", "1", &["forever"]))
        .await
        .unwrap();
    assert_eq!(reg.get_service("ttl").await.unwrap_err().code, 404);
}

#[tokio::test]
async fn watch_reports_create_update_delete() {
    let dir = tempfile::tempdir().unwrap();
    let reg = LocalRegistry::new(dir.path()).unwrap();
    let other = LocalRegistry::new(dir.path()).unwrap();
    let mut watcher = reg.watch(WatchOptions::default()).await.unwrap();

    other
        .register(&service("w", "1", &["a"]), Default::default())
        .await
        .unwrap();
    let event = next(&mut watcher).await;
    assert_eq!(
        (event.action, ids(&event.service)),
        (Action::Create, vec!["a"])
    );
    assert_eq!(event.service.name, "w");

    // A refresh with the same data is no event; a changed node is an update.
    other
        .register(&service("w", "1", &["a"]), Default::default())
        .await
        .unwrap();
    let mut moved = service("w", "1", &["a"]);
    moved.nodes[0].address = "127.0.0.1:9999".into();
    other.register(&moved, Default::default()).await.unwrap();
    let event = next(&mut watcher).await;
    assert_eq!(event.action, Action::Update);
    assert_eq!(event.service.nodes[0].address, "127.0.0.1:9999");

    other.deregister(&moved).await.unwrap();
    let event = next(&mut watcher).await;
    assert_eq!(
        (event.action, ids(&event.service)),
        (Action::Delete, vec!["a"])
    );
}

#[tokio::test]
async fn own_changes_are_never_missed_between_scans() {
    let dir = tempfile::tempdir().unwrap();
    // A long scan interval: only the registry's own change feed can report these in order.
    let reg = LocalRegistry::new(dir.path())
        .unwrap()
        .with_scan_interval(Duration::from_secs(3600));
    let mut watcher = reg.watch(WatchOptions::default()).await.unwrap();
    let s = service("blink", "1", &["b"]);
    reg.register(&s, Default::default()).await.unwrap();
    reg.register(&s, Default::default()).await.unwrap(); // a refresh: no event
    reg.deregister(&s).await.unwrap();
    let mut moved = s.clone();
    moved.nodes[0].address = "127.0.0.1:4321".into();
    reg.register(&s, Default::default()).await.unwrap();
    reg.register(&moved, Default::default()).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let Ok(Some(Ok(event))) = tokio::time::timeout(DEADLINE, watcher.next()).await else {
            panic!("only saw {seen:?}");
        };
        seen.push((event.action, ids(&event.service).join(",")));
    }
    let b = "b".to_string();
    assert_eq!(
        seen,
        vec![
            (Action::Create, b.clone()),
            (Action::Delete, b.clone()),
            (Action::Create, b.clone()),
            (Action::Update, b)
        ]
    );
}

#[tokio::test]
async fn watch_filters_by_service_and_reports_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let reg = LocalRegistry::new(dir.path()).unwrap();
    let mut watcher = reg
        .watch(WatchOptions::default().service("wanted"))
        .await
        .unwrap();
    reg.register(&service("unwanted", "1", &["u"]), Default::default())
        .await
        .unwrap();
    reg.register(
        &service("wanted", "1", &["w"]),
        ttl(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    let event = next(&mut watcher).await;
    assert_eq!(
        (event.action, event.service.name.as_str()),
        (Action::Create, "wanted")
    );
    // Nobody refreshes it: the TTL passes and the watcher reports the node gone.
    let event = next(&mut watcher).await;
    assert_eq!(
        (event.action, ids(&event.service)),
        (Action::Delete, vec!["w"])
    );
    assert_eq!(event.service.name, "wanted");
}

#[tokio::test]
async fn dropping_the_watcher_ends_its_task() {
    let dir = tempfile::tempdir().unwrap();
    let reg = LocalRegistry::new(dir.path()).unwrap();
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let watcher = reg.watch(WatchOptions::default()).await.unwrap();
    assert_eq!(metrics.num_alive_tasks(), before + 1);
    drop(watcher);
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while metrics.num_alive_tasks() > before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "watch task still alive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Builds a service with only the registry enabled, from `env`, and returns its registry.
fn build_plugin(env: &[(&str, &str)]) -> Arc<dyn Registry> {
    let others = [
        "selector",
        "transport",
        "broker",
        "store",
        "events",
        "sync",
        "auth",
        "client",
        "server",
    ];
    let mut vars: Vec<(String, String)> = others
        .iter()
        .map(|c| {
            (
                format!("MICRO_{}_ENABLED", c.to_uppercase()),
                "false".into(),
            )
        })
        .collect();
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let service: micro_core::Service = micro_core::Service::builder()
        .name("local-test")
        .no_flags()
        .env(vars)
        .plugins(micro_local::plugins())
        .build()
        .unwrap();
    service
        .components()
        .registry
        .clone()
        .expect("the registry is built")
}

fn is_private_dir(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o777 == 0o700)
}

#[tokio::test]
async fn plugin_uses_the_builders_environment() {
    let runtime = tempfile::tempdir().unwrap();
    let runtime_dir = runtime.path().to_str().unwrap();
    let reg = build_plugin(&[("XDG_RUNTIME_DIR", runtime_dir)]);
    assert_eq!(reg.name(), "local");
    reg.register(&service("via-xdg", "1", &["n"]), Default::default())
        .await
        .unwrap();
    let expected = runtime.path().join("micro").join("registry");
    assert!(is_private_dir(&expected));
    assert_eq!(
        LocalRegistry::new(&expected)
            .unwrap()
            .get_service("via-xdg")
            .await
            .unwrap()[0]
            .nodes
            .len(),
        1
    );

    // The `dir` option (here from its env var) wins.
    let chosen = tempfile::tempdir().unwrap();
    let chosen_dir = chosen.path().join("reg");
    let reg = build_plugin(&[
        ("XDG_RUNTIME_DIR", runtime_dir),
        ("MICRO_REGISTRY_DIR", chosen_dir.to_str().unwrap()),
    ]);
    reg.register(&service("via-dir", "1", &["n"]), Default::default())
        .await
        .unwrap();
    assert!(is_private_dir(&chosen_dir));
    assert!(
        LocalRegistry::new(&chosen_dir)
            .unwrap()
            .get_service("via-dir")
            .await
            .is_ok()
    );

    // Without XDG_RUNTIME_DIR: a private directory under TMPDIR.
    let tmp = tempfile::tempdir().unwrap();
    build_plugin(&[("TMPDIR", tmp.path().to_str().unwrap())]);
    let made: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(made.len(), 1);
    assert!(made[0].starts_with("micro-"), "{made:?}");
    assert!(is_private_dir(&tmp.path().join(&made[0]).join("registry")));
}

/// Issue 18, item 6: a FIFO, an oversized file or a link named like a record sits in the
/// directory; lookups skip it and answer at once instead of hanging on the FIFO.
#[tokio::test]
async fn special_and_oversized_files_are_skipped_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let reg = LocalRegistry::new(dir.path()).unwrap();
    reg.register(
        &service("greeter", "1.0.0", &["a"]),
        RegisterOptions::default(),
    )
    .await
    .unwrap();
    let version_dir = std::fs::read_dir(dir.path().join("greeter"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let fifo = version_dir.join("x.json");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo");
    std::fs::write(version_dir.join("big.json"), vec![b' '; (1 << 20) + 1]).unwrap();
    std::os::unix::fs::symlink("/dev/zero", version_dir.join("zero.json")).unwrap();
    for _ in 0..3 {
        let found = tokio::time::timeout(Duration::from_secs(5), reg.get_service("greeter"))
            .await
            .expect("a lookup answers although a FIFO sits in the directory")
            .unwrap();
        assert_eq!(ids(&found[0]), ["a"]);
        let all = tokio::time::timeout(Duration::from_secs(5), reg.list_services())
            .await
            .expect("a listing answers too")
            .unwrap();
        assert_eq!(all.len(), 1);
    }
}
