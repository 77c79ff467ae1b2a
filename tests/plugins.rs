//! The plugin table is a plain value: applications add their own plugins (with options
//! that get flags, env vars and validation like the built-in ones) and ready-made components.

use micro::config::{ConfigError, StoreConfig};
use micro::store::{DeleteOptions, ListOptions, ReadOptions, Record, Store, WriteOptions};
use micro::{Built, Plugin, Plugins};
use std::sync::Arc;

/// Options of the test's own store plugin.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, micro::Component)]
#[serde(default)]
#[component(section = "store", plugin = "fixed")]
struct FixedOptions {
    /// The value every read returns.
    #[component(default = "fixed value")]
    answer: String,
}

/// A store that answers every read with the same value.
struct FixedStore {
    answer: String,
    table: String,
}

#[async_trait::async_trait]
impl Store for FixedStore {
    fn name(&self) -> &str {
        "fixed"
    }
    async fn read(&self, key: &str, _: ReadOptions) -> micro::Result<Vec<Record>> {
        Ok(vec![Record::new(
            key,
            format!("{}@{}", self.answer, self.table),
        )])
    }
    async fn write(&self, _: Record, _: WriteOptions) -> micro::Result<()> {
        Ok(())
    }
    async fn delete(&self, _: &str, _: DeleteOptions) -> micro::Result<()> {
        Ok(())
    }
    async fn list(&self, _: ListOptions) -> micro::Result<Vec<String>> {
        Ok(vec![])
    }
}

fn fixed_plugin() -> Plugins {
    Plugins::new().with(
        Plugin::store("fixed", "my-app", |ctx| {
            let options: FixedOptions = ctx.options()?;
            let section: StoreConfig = ctx.options()?;
            Ok(Arc::new(FixedStore {
                answer: options.answer,
                table: section.table,
            }))
        })
        .with_options::<FixedOptions>(),
    )
}

fn others_off() -> Vec<(String, String)> {
    [
        "registry",
        "selector",
        "transport",
        "broker",
        "events",
        "sync",
        "client",
        "server",
    ]
    .iter()
    .map(|c| {
        (
            format!("MICRO_{}_ENABLED", c.to_uppercase()),
            "false".to_string(),
        )
    })
    .collect()
}

fn service(args: &[&str]) -> Result<micro::Service, micro::BuildError> {
    match micro::Service::builder()
        .args(args.iter().copied())
        .env(others_off())
        .plugins(fixed_plugin())
        .try_build()?
    {
        Built::Service(s) => Ok(s),
        _ => panic!("expected a service"),
    }
}

#[tokio::test]
async fn an_application_plugin_with_its_own_options() {
    let svc = service(&[
        "svc",
        "--store",
        "fixed",
        "--store_answer",
        "42",
        "--store_table",
        "t1",
    ])
    .unwrap();
    let store = svc.components().store.clone().expect("store built");
    assert_eq!(store.name(), "fixed");
    let got = store.read("k", ReadOptions::default()).await.unwrap();
    assert_eq!(got[0].value, "42@t1".as_bytes());
    // Its default applies when nothing is given.
    let svc = service(&["svc", "--store", "fixed"]).unwrap();
    let got = svc
        .components()
        .store
        .clone()
        .unwrap()
        .read("k", ReadOptions::default())
        .await
        .unwrap();
    assert_eq!(got[0].value, "fixed value@micro".as_bytes());
}

#[test]
fn plugin_options_appear_in_help_and_unknown_plugins_list_it() {
    let help = match micro::Service::builder()
        .args(["svc", "--help"])
        .env(others_off())
        .plugins(fixed_plugin())
        .try_build()
    {
        Ok(Built::Help(text)) => text,
        _ => panic!("expected help"),
    };
    let line = help
        .lines()
        .find(|l| l.contains("--store_answer"))
        .expect("flag listed");
    assert!(
        line.contains("The value every read returns")
            || help.contains("The value every read returns")
    );
    assert!(
        help.contains("$MICRO_STORE_ANSWER") && help.contains("(default: fixed value)"),
        "{help}"
    );
    match service(&["svc", "--store", "nope"]) {
        Err(micro::BuildError::Config(ConfigError::PluginNotCompiled { compiled, .. })) => {
            assert!(compiled.contains(&"fixed".to_string()), "{compiled:?}")
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("expected an error"),
    }
}

#[tokio::test]
async fn a_ready_made_component_replaces_the_plugin() {
    let mine: Arc<dyn Store> = Arc::new(FixedStore {
        answer: "ready".into(),
        table: "made".into(),
    });
    let svc = match micro::Service::builder()
        .args(["svc", "--store", "not-even-compiled"])
        .env(others_off())
        .store(mine)
        .try_build()
        .unwrap()
    {
        Built::Service(s) => s,
        _ => panic!("expected a service"),
    };
    let got = svc
        .components()
        .store
        .clone()
        .unwrap()
        .read("k", ReadOptions::default())
        .await
        .unwrap();
    assert_eq!(got[0].value, "ready@made".as_bytes());
}

#[tokio::test]
async fn hooks_run_in_order() {
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = |name: &'static str| {
        let calls = calls.clone();
        move || {
            let calls = calls.clone();
            async move {
                calls.lock().unwrap().push(name);
                Ok(())
            }
        }
    };
    let svc = match micro::Service::builder()
        .args(["svc"])
        .env(others_off())
        .before_start(record("before_start"))
        .after_start(record("after_start"))
        .before_stop(record("before_stop"))
        .after_stop(record("after_stop"))
        .try_build()
        .unwrap()
    {
        Built::Service(s) => s,
        _ => panic!("expected a service"),
    };
    let runner = svc.clone();
    let run = tokio::spawn(async move { runner.run().await });
    while calls.lock().unwrap().len() < 2 {
        tokio::task::yield_now().await;
    }
    svc.shutdown();
    run.await.unwrap().unwrap();
    assert_eq!(
        *calls.lock().unwrap(),
        ["before_start", "after_start", "before_stop", "after_stop"]
    );
}

/// The Cargo features declared in the facade's Cargo.toml `[features]` table.
fn declared_features() -> Vec<String> {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .expect("the facade's Cargo.toml");
    manifest
        .lines()
        .skip_while(|l| l.trim() != "[features]")
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .filter_map(|l| l.split_once('=').map(|(name, _)| name.trim().to_string()))
        .filter(|name| !name.is_empty() && !name.starts_with('#'))
        .collect()
}

#[test]
fn the_catalog_matches_the_cargo_features_and_the_compiled_plugins() {
    use micro::catalog::{self, Status};
    let declared = declared_features();
    assert!(declared.iter().any(|f| f == "tcp"), "{declared:?}");
    for plugin in catalog::PLUGINS {
        if plugin.feature.is_empty() {
            continue;
        }
        let exists = declared.iter().any(|f| f == plugin.feature);
        match plugin.status {
            Status::Available => {
                assert!(exists, "{plugin:?}: its feature is not in Cargo.toml");
                // Compiled in exactly when its feature is on (`nats` is not a default).
                let compiled = micro::plugins()
                    .find(plugin.kind.section(), plugin.name)
                    .is_ok();
                assert_eq!(
                    compiled,
                    micro::__private::feature_enabled(plugin.feature),
                    "{plugin:?}"
                );
            }
            // A planned component of a crate that already ships others (the grpc transport
            // of the grpc crate, whose client and server exist) shares their feature.
            _ => assert!(
                !exists
                    || catalog::PLUGINS
                        .iter()
                        .any(|p| p.feature == plugin.feature && p.status == Status::Available),
                "{plugin:?}: Cargo.toml has the feature; mark the plugin Available"
            ),
        }
    }
    // Every plugin of this build is in the catalog as available, under its feature.
    for plugin in micro::plugins().iter() {
        let known = catalog::find(plugin.factory.section(), &plugin.name)
            .unwrap_or_else(|| panic!("{plugin:?} is not in the catalog"));
        assert_eq!(known.status, Status::Available, "{plugin:?}");
        assert_eq!(known.feature, plugin.feature, "{plugin:?}");
    }
}

#[test]
fn every_feature_an_error_names_exists() {
    use micro::config::ConfigError;
    let declared = declared_features();
    let plugins = micro::plugins();
    for (section, name) in [
        ("auth", "jwt"),
        ("registry", "zookeeper"),
        ("broker", "kafka"),
    ] {
        let Err(err) = plugins.find(section, name) else {
            panic!("{section} {name} is compiled in");
        };
        let text = err.to_string();
        match &err {
            ConfigError::PluginNotCompiled {
                feature: Some(f), ..
            } => {
                assert!(declared.contains(f), "{text}")
            }
            ConfigError::PluginNotCompiled {
                feature: None,
                planned,
                ..
            } => {
                assert!(!text.contains("Cargo feature"), "{text}");
                let says = if *planned {
                    "not available yet"
                } else {
                    "has no"
                };
                assert!(text.contains(says), "{text}");
            }
            other => panic!("unexpected {other}"),
        }
    }
}
