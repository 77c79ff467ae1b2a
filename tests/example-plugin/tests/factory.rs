//! The plugin's factory as a host calls it: through a `PluginContext` whose configuration is
//! any `Settings` (here a JSON tree, as a test or a non-micro host would give it), without
//! the service builder or its config loader.

use micro_core::config::{ConfigError, Settings};
use micro_core::plugin::{Components, PluginContext, PluginFactory, ServiceInfo};
use micro_core::store::{Record, WriteOptions};
use micro_example_plugin::plugin;
use serde_json::{Value, json};

/// Configuration from a JSON tree.
struct Tree(Value);

impl Settings for Tree {
    fn value(&self, path: &str) -> Option<Value> {
        path.split('.')
            .try_fold(&self.0, |node, part| node.get(part))
            .cloned()
    }

    fn env_var(&self, _name: &str) -> Option<&str> {
        None
    }

    fn origin(&self) -> String {
        "test tree".into()
    }
}

fn build(tree: Value) -> micro_core::Result<std::sync::Arc<dyn micro_core::store::Store>> {
    let config = Tree(tree);
    let plugin = plugin();
    let PluginFactory::Store(factory) = &plugin.factory else {
        panic!("the example plugin is a store");
    };
    factory(&PluginContext {
        section: "store",
        config: &config,
        logger: micro_core::logger::Logger::none(),
        components: &Components::default(),
        service: &ServiceInfo::default(),
        middleware: &Default::default(),
    })
}

#[tokio::test]
async fn the_factory_reads_its_options_through_settings() {
    let store = build(json!({
        "store": { "plugin": "example", "database": "shop", "table": "orders", "max_value_size": 3 }
    }))
    .unwrap();
    store
        .write(Record::new("k", "abc"), WriteOptions::default())
        .await
        .unwrap();
    let err = store
        .write(Record::new("k", "abcd"), WriteOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code, 413, "the option from the tree is in force: {err}");
}

#[test]
fn a_wrong_option_type_is_a_config_error_naming_the_section_and_origin() {
    let Err(err) = build(json!({ "store": { "max_value_size": "big" } })) else {
        panic!("a text where a number belongs is an error");
    };
    let text = err.to_string();
    assert!(
        text.contains("store") && text.contains("test tree"),
        "the error names the section and where the config came from: {text}"
    );
    // The same error as a ConfigError, as the contract reads it.
    let config = Tree(json!({ "store": { "max_value_size": "big" } }));
    match micro_core::config::read_section::<micro_example_plugin::ExampleStoreOptions>(&config) {
        Err(ConfigError::Invalid { key, reason }) => {
            assert_eq!(key, "store");
            assert!(reason.contains("test tree"), "{reason}");
        }
        other => panic!("expected an invalid-config error, got {other:?}"),
    }
}
