//! `#[derive(micro::Wire)]`: only the declared components (and what they need) are built,
//! their flags alone are in `--help`, and the app gets them typed.

use micro::Built;

#[derive(micro::Wire)]
struct App {
    client: micro::Client,
    broker: micro::Broker,
    store: Option<micro::Store>,
}

fn memory_env() -> Vec<(String, String)> {
    [
        ("MICRO_TRANSPORT", "memory"),
        ("MICRO_REGISTRY", "memory"),
        ("MICRO_BROKER", "memory"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[test]
fn only_declared_components_and_their_needs_are_built() {
    let service = match App::builder().args(["app"]).env(memory_env()).try_build() {
        Ok(Built::Service(s)) => s,
        Ok(_) => panic!("expected a service"),
        Err(e) => panic!("build: {e}"),
    };
    let c = service.components();
    assert!(c.client.is_some() && c.broker.is_some() && c.store.is_some());
    // What the client needs comes along.
    assert!(c.selector.is_some() && c.transport.is_some() && c.registry.is_some());
    // The rest is not built.
    assert!(c.server.is_none() && c.events.is_none() && c.sync.is_none() && c.auth.is_none());
    let app = App::wire(&service).unwrap();
    assert_eq!(app.client.name(), "mucp");
    assert_eq!(app.broker.name(), "memory");
    assert!(app.store.is_some());
    assert_eq!(App::COMPONENTS, ["client", "broker", "store"]);
}

#[test]
fn flags_of_undeclared_components_are_not_offered() {
    let help = match App::builder()
        .args(["app", "--help"])
        .env(memory_env())
        .try_build()
    {
        Ok(Built::Help(text)) => text,
        _ => panic!("expected help"),
    };
    for present in [
        "--client_pool_size",
        "--broker",
        "--store",
        "--registry",
        "--transport",
        "--selector",
    ] {
        assert!(help.contains(present), "{present} missing:\n{help}");
    }
    for absent in [
        "--events",
        "--sync",
        "--register_ttl",
        "--server_name",
        "--auth",
    ] {
        assert!(!help.contains(absent), "{absent} offered:\n{help}");
    }
    // And they are not accepted either.
    let err = App::builder()
        .args(["app", "--events", "memory"])
        .env(memory_env())
        .try_build();
    assert!(matches!(
        err,
        Err(micro::BuildError::Config(
            micro::config::ConfigError::UnknownFlag { .. }
        ))
    ));
}
