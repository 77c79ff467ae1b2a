//! Property tests of the config loader (`micro_core::config::load` with a config file): any
//! text is a config or a [`ConfigError`] naming the file, never a panic; nested mappings and
//! lists under application sections load as written; random values for typed keys give the
//! value or a `WrongType` naming the key.

use micro_core::config::{
    ClientConfig, ConfigError, Loaded, Outcome, Schema, ServerConfig, Sources, load,
};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const CASES: u32 = 128;

/// Writes `text` as the config file in `dir` and loads it with the core schema.
fn load_text(dir: &Path, text: &str) -> (PathBuf, Result<Loaded, ConfigError>) {
    let path = dir.join("service.yaml");
    std::fs::write(&path, text).unwrap();
    let sources = Sources {
        config_file: Some(path.clone()),
        no_flags: true,
        ..Sources::default()
    };
    let result = load(Schema::core(), &sources).map(|outcome| match outcome {
        Outcome::Loaded(loaded) => *loaded,
        other => panic!("no flags were given, yet the outcome is {other:?}"),
    });
    (path, result)
}

/// Errors about the file's content name the file; the others name a key.
fn names_its_place(err: &ConfigError, file: &str) -> Result<(), TestCaseError> {
    let text = err.to_string();
    match err {
        ConfigError::Invalid { key, .. } => prop_assert!(text.contains(key.as_str()), "{}", text),
        ConfigError::PluginNotCompiled { component, .. } => {
            prop_assert!(text.contains(component.as_str()), "{}", text)
        }
        _ => prop_assert!(text.contains(file), "{} does not name {}", text, file),
    }
    Ok(())
}

/// YAML-looking text: keys (some of them sections micro knows), indentation, flow brackets,
/// quotes, list dashes and comments, in any order.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("server".to_string()),
        Just("client".to_string()),
        Just("registry".to_string()),
        Just("transport".to_string()),
        Just("plugin".to_string()),
        Just("pool_size".to_string()),
        Just("register_ttl".to_string()),
        Just(": ".to_string()),
        Just(":".to_string()),
        Just("\n".to_string()),
        Just("\n  ".to_string()),
        Just("- ".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just(", ".to_string()),
        Just("\"".to_string()),
        Just("'".to_string()),
        Just(" # ".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("!!str ".to_string()),
        "[a-z0-9_.]{1,6}",
    ];
    vec(token, 0..40).prop_map(|tokens| tokens.concat())
}

/// A value of an application section: scalars, mappings and lists, a few levels deep.
fn any_tree() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        "[a-zA-Z0-9 _.:#-]{0,12}".prop_map(Value::from),
        Just(Value::Null),
    ];
    leaf.prop_recursive(5, 48, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            btree_map("k_[a-z0-9_]{0,6}", inner, 0..5)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Block-style YAML for `value` at `indent` (strings double-quoted, as JSON writes them).
fn block(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                out.push_str(&format!("{pad}{key}:"));
                nested(child, indent, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for child in items {
                out.push_str(&format!("{pad}-"));
                nested(child, indent, out);
            }
        }
        other => out.push_str(&format!("{pad}{other}\n")),
    }
}

fn nested(child: &Value, indent: usize, out: &mut String) {
    match child {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            block(child, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            block(child, indent + 2, out);
        }
        // `{}`, `[]`, `null`, numbers, booleans and quoted strings read the same in YAML.
        scalar => out.push_str(&format!(" {scalar}\n")),
    }
}

/// A YAML scalar or small collection for a typed key, and what it should read as.
fn any_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        "[0-9]{20,30}",
        any::<f64>().prop_map(|f| format!("{f:?}")),
        (0u32..100_000, "(ms|s|m|h|d|x|)").prop_map(|(n, unit)| format!("{n}{unit}")),
        "\"[a-z0-9 ]{0,10}\"",
        "[a-z]{1,10}",
        Just("~".to_string()),
        Just("true".to_string()),
        Just("[1, 2]".to_string()),
        Just("{a: 1}".to_string()),
        Just("-5s".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_text_loads_or_names_the_file(text in any::<String>()) {
        let dir = tempfile::tempdir().unwrap();
        let (path, result) = load_text(dir.path(), &text);
        if let Err(err) = result {
            names_its_place(&err, &path.display().to_string())?;
        }
    }

    #[test]
    fn yaml_looking_text_loads_or_names_the_file(text in yamlish()) {
        let dir = tempfile::tempdir().unwrap();
        let (path, result) = load_text(dir.path(), &text);
        if let Err(err) = result {
            names_its_place(&err, &path.display().to_string())?;
        }
    }

    #[test]
    fn nested_application_sections_load_as_written(tree in btree_map("zz_app_[a-z]{1,6}", any_tree(), 1..4)) {
        let mut text = String::new();
        for (section, value) in &tree {
            text.push_str(&format!("{section}:"));
            nested(value, 0, &mut text);
        }
        let dir = tempfile::tempdir().unwrap();
        let (_path, result) = load_text(dir.path(), &text);
        let loaded = match result {
            Ok(loaded) => loaded,
            Err(err) => return Err(TestCaseError::fail(format!("{err}\n---\n{text}"))),
        };
        for (section, value) in &tree {
            prop_assert_eq!(loaded.raw(section), Some(value.clone()), "{}", text);
        }
    }

    #[test]
    fn nested_component_sections_load_or_name_the_file(
        section in "(server|client|registry|transport|broker)",
        tree in any_tree(),
    ) {
        let mut text = format!("{section}:");
        nested(&tree, 0, &mut text);
        let dir = tempfile::tempdir().unwrap();
        let (path, result) = load_text(dir.path(), &text);
        if let Err(err) = result {
            names_its_place(&err, &path.display().to_string())?;
        }
    }

    #[test]
    fn pool_size_is_the_number_or_wrong_type(value in any_value()) {
        let dir = tempfile::tempdir().unwrap();
        let (path, result) = load_text(dir.path(), &format!("client:\n  pool_size: {value}\n"));
        match result {
            Ok(loaded) => {
                let client: ClientConfig = loaded.section().unwrap();
                if let Ok(n) = value.parse::<usize>() {
                    prop_assert_eq!(client.pool_size, n);
                }
            }
            Err(ConfigError::WrongType { key, origin, .. }) => {
                prop_assert_eq!(key, "client.pool_size");
                prop_assert!(origin.contains(&path.display().to_string()), "{}", origin);
            }
            Err(ConfigError::Invalid { key, .. }) => prop_assert_eq!(key, "client.pool_size"),
            Err(other) => return Err(TestCaseError::fail(format!("{value}: {other}"))),
        }
    }

    #[test]
    fn register_ttl_is_the_duration_or_wrong_type(value in any_value()) {
        let dir = tempfile::tempdir().unwrap();
        let (path, result) = load_text(dir.path(), &format!("server:\n  register_ttl: {value}\n"));
        match result {
            Ok(loaded) => {
                let server: ServerConfig = loaded.section().unwrap();
                if let Ok(secs) = value.parse::<u64>() {
                    prop_assert_eq!(server.register_ttl, Duration::from_secs(secs));
                }
                if let Some(ms) = value.strip_suffix("ms").and_then(|n| n.parse::<u64>().ok()) {
                    prop_assert_eq!(server.register_ttl, Duration::from_millis(ms));
                }
            }
            Err(ConfigError::WrongType { key, origin, .. }) => {
                prop_assert_eq!(key, "server.register_ttl");
                prop_assert!(origin.contains(&path.display().to_string()), "{}", origin);
            }
            Err(ConfigError::Invalid { key, .. }) => prop_assert_eq!(key, "server.register_ttl"),
            Err(other) => return Err(TestCaseError::fail(format!("{value}: {other}"))),
        }
    }
}
