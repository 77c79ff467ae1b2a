//! Service builder: per-service logging without a global subscriber, the register_ttl
//! warning, --help/--version/--dump_config, plugin errors, and application config with hot
//! reload.

use micro::Built;
use micro::config::ConfigError;
use micro::logger::LogOutput;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const COMPONENTS: [&str; 9] = [
    "registry",
    "selector",
    "transport",
    "broker",
    "store",
    "events",
    "sync",
    "client",
    "server",
];

/// Env that switches every component off, so a service builds with no plugin at all.
fn all_off() -> Vec<(String, String)> {
    COMPONENTS
        .iter()
        .map(|c| {
            (
                format!("MICRO_{}_ENABLED", c.to_uppercase()),
                "false".to_string(),
            )
        })
        .collect()
}

fn with(mut env: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

fn text(buffer: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned()
}

fn built(result: Result<Built<micro::CompiledPlugins>, micro::BuildError>) -> micro::Service {
    match result {
        Ok(Built::Service(s)) => s,
        Ok(_) => panic!("expected a service, got help/version/dump"),
        Err(e) => panic!("build failed: {e}"),
    }
}

#[test]
fn two_services_in_one_process_log_at_their_own_levels() {
    let out_a = Arc::new(Mutex::new(Vec::new()));
    let out_b = Arc::new(Mutex::new(Vec::new()));
    let a = built(
        micro::Service::builder()
            .name("alpha")
            .args(["alpha"])
            .env(with(
                all_off(),
                &[
                    ("MICRO_LOGGER_LEVEL", "debug"),
                    ("MICRO_BROKER_LOGGER_FIELDS", "component=broker"),
                ],
            ))
            .log_output(LogOutput::buffer(out_a.clone()))
            .try_build(),
    );
    let b = built(
        micro::Service::builder()
            .name("beta")
            .args(["beta"])
            .env(with(all_off(), &[("MICRO_LOGGER_LEVEL", "warn")]))
            .log_output(LogOutput::buffer(out_b.clone()))
            .try_build(),
    );
    for (service, tag) in [(&a, "alpha"), (&b, "beta")] {
        service.logger("broker").in_scope(|| {
            tracing::debug!("{tag} debug line");
            tracing::warn!("{tag} warn line");
        });
    }
    let (a_text, b_text) = (text(&out_a), text(&out_b));
    assert!(a_text.contains("alpha debug line"), "{a_text}");
    assert!(a_text.contains("alpha warn line"), "{a_text}");
    assert!(
        a_text.contains("component=broker"),
        "static fields: {a_text}"
    );
    assert!(!a_text.contains("beta"), "{a_text}");
    assert!(b_text.contains("beta warn line"), "{b_text}");
    assert!(!b_text.contains("beta debug line"), "{b_text}");
    assert!(!b_text.contains("alpha"), "{b_text}");
    // Nothing is installed globally: outside a component's scope nothing reaches them.
    tracing::warn!("stray line");
    assert!(!text(&out_a).contains("stray") && !text(&out_b).contains("stray"));
}

#[test]
fn seed_defaults_warn_that_ttl_is_below_interval() {
    let out = Arc::new(Mutex::new(Vec::new()));
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/defaults.yaml");
    // The seed names the mdns registry. With the `mdns` feature, building it would start
    // mDNS on this host's real interfaces (tests never do: the mdns tests run in a private
    // network namespace), so the registry is switched to memory; without the feature,
    // starting fails with the compiled plugins and the feature to enable.
    let env: Vec<(String, String)> = if cfg!(feature = "mdns") {
        vec![("MICRO_REGISTRY".to_string(), "memory".to_string())]
    } else {
        Vec::new()
    };
    let result = micro::Service::builder()
        .name("greeter")
        .config_file(config)
        .args(["greeter"])
        .env(env)
        .log_output(LogOutput::buffer(out.clone()))
        .try_build();
    let log = text(&out);
    let line = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("register_ttl"))
        .unwrap_or_else(|| panic!("no warning in:\n{log}"));
    assert!(
        line.contains("30s") && line.contains("60s") && line.contains("register_interval"),
        "{line}"
    );
    match result {
        Err(micro::BuildError::Config(ConfigError::PluginNotCompiled {
            component,
            plugin,
            compiled,
            feature,
            planned,
        })) if !cfg!(feature = "mdns") => {
            assert_eq!((component.as_str(), plugin.as_str()), ("registry", "mdns"));
            assert_eq!(
                feature.as_deref(),
                Some("mdns"),
                "the feature that brings mdns"
            );
            assert!(!planned);
            assert!(compiled.contains(&"memory".to_string()), "{compiled:?}");
        }
        Err(other) => panic!("unexpected {other}"),
        Ok(_) if cfg!(feature = "mdns") => {}
        Ok(_) => panic!("expected PluginNotCompiled for registry mdns"),
    }
}

#[test]
fn a_plugin_not_compiled_in_lists_the_compiled_ones_and_the_feature() {
    let err = match micro::Service::builder()
        .args(["svc", "--auth", "jwt"])
        .env(with(all_off(), &[("MICRO_AUTH_ENABLED", "true")]))
        .try_build()
    {
        Err(e) => e,
        Ok(_) => panic!("expected an error"),
    };
    let text = err.to_string();
    assert!(
        text.contains("\"jwt\"") && text.contains("not available yet"),
        "{text}"
    );
    assert!(
        !text.contains("Cargo feature"),
        "no feature brings jwt yet: {text}"
    );
    let err: micro::Error = err.into();
    assert_eq!(err.code, 400);
    // A plugin micro has, in a build without it: the error names its Cargo feature.
    let err = match micro::service::Service::<micro::NoPlugins>::builder()
        .args(["svc", "--registry", "local"])
        .env(with(all_off(), &[("MICRO_REGISTRY_ENABLED", "true")]))
        .try_build()
    {
        Err(e) => e,
        Ok(_) => panic!("expected an error"),
    };
    let text = err.to_string();
    assert!(
        text.contains("enable the Cargo feature \"local\""),
        "{text}"
    );
}

#[test]
fn help_version_and_dump_are_answers_not_services() {
    let help = micro::Service::builder()
        .args(["svc", "--help"])
        .env(all_off())
        .try_build();
    assert!(matches!(help, Ok(Built::Help(ref t)) if t.contains("--registry_address")));
    let version = micro::Service::builder()
        .version("1.2.3")
        .args(["svc", "--version"])
        .env(all_off())
        .try_build();
    assert!(matches!(version, Ok(Built::Version(ref t)) if t.contains("1.2.3")));
    let dump = micro::Service::builder()
        .args(["svc", "--dump_config", "--register_ttl", "45s"])
        .env(all_off())
        .try_build();
    match dump {
        Ok(Built::DumpConfig(yaml)) => {
            assert!(yaml.contains("register_ttl: 45s"), "{yaml}");
            let parsed: serde_json::Value = serde_yaml_check(&yaml);
            assert_eq!(parsed["registry"]["enabled"], false);
        }
        _ => panic!("expected a dump"),
    }
    let yaml = micro::Service::builder()
        .args(["svc", "--client_pool_size", "9"])
        .env(all_off())
        .effective_config()
        .unwrap();
    assert!(yaml.contains("pool_size: 9"), "{yaml}");
}

fn serde_yaml_check(yaml: &str) -> serde_json::Value {
    // The dump must itself be loadable config.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dump.yaml");
    std::fs::write(&path, yaml).unwrap();
    let loaded = match micro::config::load(
        micro::plugins().schema(),
        &micro::config::Sources {
            config_file: Some(path),
            no_flags: true,
            ..Default::default()
        },
    ) {
        Ok(micro::config::Outcome::Loaded(l)) => l,
        other => panic!("dump does not load back: {other:?}"),
    };
    loaded.tree()
}

/// Runs in a child process: `build()` must print help and exit with status 0.
#[test]
fn child_prints_help_and_exits() {
    if std::env::var("MICRO_TEST_CHILD").as_deref() != Ok("help") {
        return;
    }
    let _ = micro::Service::builder()
        .args(["svc", "--help"])
        .env(all_off())
        .build();
    panic!("build() returned after --help");
}

#[test]
fn help_exits_zero() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_prints_help_and_exits", "--nocapture"])
        .env("MICRO_TEST_CHILD", "help")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "status {:?}: {stdout}", out.status);
    assert!(
        stdout.contains("--registry_address") && stdout.contains("$MICRO_REGISTRY_ADDRESS"),
        "{stdout}"
    );
}

#[test]
fn handlers_need_a_server() {
    let handler = micro::server::Handler {
        endpoint: micro::registry::Endpoint {
            name: "Greeter.Hello".into(),
            ..Default::default()
        },
        kind: micro::server::HandlerKind::Unary(Arc::new(|_req| {
            Box::pin(async { Ok(micro::client::Response::default()) })
        })),
    };
    let err = match micro::Service::builder()
        .args(["svc"])
        .env(all_off())
        .handler(handler)
        .try_build()
    {
        Err(e) => e,
        Ok(_) => panic!("expected an error"),
    };
    assert!(
        matches!(err, micro::BuildError::Config(ConfigError::Invalid { ref key, .. }) if key == "server.enabled"),
        "{err}"
    );
}

#[tokio::test]
async fn app_config_get_and_hot_reload_keeping_the_last_good_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.yaml");
    std::fs::write(
        &path,
        "greeter:\n  greeting: hello\n  limits:\n    max: 3\n",
    )
    .unwrap();
    let out = Arc::new(Mutex::new(Vec::new()));
    let service = built(
        micro::Service::builder()
            .args(["svc"])
            .env(all_off())
            .config_file(&path)
            .log_output(LogOutput::buffer(out.clone()))
            .try_build(),
    );
    #[derive(serde::Deserialize, PartialEq, Clone, Debug)]
    struct Limits {
        max: u32,
    }
    let config = service.config();
    assert_eq!(config.get::<String>("greeter.greeting").unwrap(), "hello");
    assert_eq!(
        config.get::<Limits>("greeter.limits").unwrap(),
        Limits { max: 3 }
    );
    assert!(config.get::<u32>("greeter.greeting").is_err());
    let mut greeting = config.watch::<String>("greeter.greeting").unwrap();
    assert_eq!(greeting.get(), "hello");

    std::fs::write(&path, "greeter:\n  greeting: hi\n  limits:\n    max: 3\n").unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), greeting.changed()).await;
    assert_eq!(
        next.expect("change seen within 10s"),
        Some("hi".to_string())
    );

    // An invalid file keeps the last good value and says why in the log.
    std::fs::write(&path, "greeter: [broken\n").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !text(&out).contains("keeping the last good config") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no warning logged: {}",
            text(&out)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(greeting.get(), "hi");
    assert_eq!(config.get::<String>("greeter.greeting").unwrap(), "hi");

    std::fs::write(&path, "greeter:\n  greeting: hey\n").unwrap();
    let next = tokio::time::timeout(Duration::from_secs(10), greeting.changed()).await;
    assert_eq!(
        next.expect("change seen within 10s"),
        Some("hey".to_string())
    );
}

/// Issue 18, item 7: limits of zero that would make a service useless are refused at build,
/// naming the key.
#[test]
fn zero_limits_are_config_errors_naming_the_key() {
    /// Arguments, extra environment, and the key the error must name.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 3] = [
        (
            &[
                "svc",
                "--transport",
                "http",
                "--transport_max_body_size",
                "0",
            ],
            &[("MICRO_TRANSPORT_ENABLED", "true")],
            "transport.max_body_size",
        ),
        (
            &["svc", "--broker", "http", "--broker_max_body_size", "0"],
            &[
                ("MICRO_BROKER_ENABLED", "true"),
                ("MICRO_REGISTRY_ENABLED", "true"),
            ],
            "broker.max_body_size",
        ),
        (
            &["svc", "--register_interval", "0s"],
            &[
                ("MICRO_TRANSPORT_ENABLED", "true"),
                ("MICRO_SERVER_ENABLED", "true"),
            ],
            "server.register_interval",
        ),
    ];
    for (args, env, key) in cases {
        let err = match micro::Service::builder()
            .args(args.iter().copied())
            .env(with(all_off(), env))
            .try_build()
        {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{key} = 0 was accepted"),
        };
        assert!(err.contains(key), "{key}: {err}");
    }
}
