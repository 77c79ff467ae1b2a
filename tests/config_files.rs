//! The seed's YAML documents load as they are, and bad config gets clear, typed errors.

use micro::config::{self, ComponentSections, ConfigError, Loaded, Outcome, Sources};
use micro::logger;
use std::path::PathBuf;
use std::time::Duration;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn load_file(path: PathBuf) -> Result<Loaded, ConfigError> {
    let sources = Sources {
        config_file: Some(path),
        no_flags: true,
        ..Default::default()
    };
    match config::load(micro::plugins().schema(), &sources)? {
        Outcome::Loaded(loaded) => Ok(*loaded),
        other => panic!("expected loaded config, got {other:?}"),
    }
}

fn load_yaml(yaml: &str) -> (tempfile::TempDir, PathBuf, Result<Loaded, ConfigError>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("service.yaml");
    std::fs::write(&path, yaml).unwrap();
    let result = load_file(path.clone());
    (dir, path, result)
}

#[test]
fn seed_defaults_yaml_resolves_every_component() {
    let loaded = load_file(repo("configs/defaults.yaml")).expect("defaults.yaml loads");
    let s = ComponentSections::from_loaded(&loaded).unwrap();
    assert_eq!(s.broker.plugin, "http");
    assert_eq!(s.registry.plugin, "mdns");
    assert_eq!(s.transport.plugin, "http");
    assert_eq!(s.client.plugin, "rpc");
    assert_eq!(s.client.content_type, "application/json");
    assert_eq!(s.client.pool_request_timeout, Duration::from_secs(5));
    assert_eq!(s.client.pool_retries, 1);
    assert_eq!(s.client.pool_size, 1);
    assert_eq!(s.client.pool_ttl, Duration::from_secs(60));
    assert_eq!(s.server.plugin, "rpc");
    assert_eq!(s.server.register_interval, Duration::from_secs(60));
    assert_eq!(s.server.register_ttl, Duration::from_secs(30));
    assert_eq!(s.logger.plugin, "default");
    assert_eq!(s.logger.level, "info");
    assert_eq!(s.logger.caller_skip_count, 2);
    assert!(s.logger.fields.is_empty());
    // Components without their own logger section inherit the top-level one.
    for section in ["broker", "client", "registry", "server", "transport"] {
        let cfg = micro::service::loggers::config_for(&loaded, section).unwrap();
        assert_eq!(cfg.level, "info", "{section}");
        assert_eq!(cfg.plugin, "default", "{section}");
    }
}

#[test]
fn seed_production_yaml_resolves_every_component() {
    let loaded = load_file(repo("configs/production.yaml")).expect("production.yaml loads");
    let s = ComponentSections::from_loaded(&loaded).unwrap();
    let nats = vec!["nats://localhost:4222".to_string()];
    assert_eq!(s.broker.plugin, "nats");
    assert_eq!(s.broker.addresses, nats);
    assert_eq!(s.registry.plugin, "nats");
    assert_eq!(s.registry.addresses, nats);
    assert_eq!(s.transport.plugin, "quic");
    assert_eq!(s.client.plugin, "grpc");
    assert!(s.client.enabled);
    assert_eq!(s.client.content_type, "application/protobuf");
    assert_eq!(s.client.pool_request_timeout, Duration::from_secs(10));
    assert_eq!(s.client.pool_retries, 5);
    assert_eq!(s.client.pool_size, 100);
    assert_eq!(s.client.pool_ttl, Duration::from_secs(300));
    assert_eq!(s.server.plugin, "grpc");
    assert!(s.server.enabled);
    assert_eq!(s.server.register_interval, Duration::from_secs(60));
    assert_eq!(s.server.register_ttl, Duration::from_secs(30));
    let top = micro::service::loggers::config_for(&loaded, "logger").unwrap();
    assert_eq!((top.plugin.as_str(), top.level.as_str()), ("zap", "trace"));
    assert_eq!(
        top.fields.get("component").map(String::as_str),
        Some("default")
    );
    for (section, level) in [
        ("broker", "trace"),
        ("client", "trace"),
        ("server", "info"),
        ("registry", "trace"),
        ("transport", "trace"),
    ] {
        let cfg = micro::service::loggers::config_for(&loaded, section).unwrap();
        assert!(cfg.enabled, "{section}");
        assert_eq!(cfg.plugin, "zap", "{section}");
        assert_eq!(cfg.level, level, "{section}");
        assert_eq!(
            cfg.fields.get("component").map(String::as_str),
            Some(section),
            "{section}"
        );
    }
    assert_eq!(
        micro::service::loggers::config_for(&loaded, "server")
            .unwrap()
            .caller_skip_count,
        2
    );
}

#[test]
fn a_misspelt_component_section_is_an_error_naming_the_component() {
    for (written, meant) in [
        ("registy", "registry"),
        ("regsitry", "registry"),
        ("brokr", "broker"),
        ("tranport", "transport"),
    ] {
        let (_dir, path, result) = load_yaml(&format!("{written}:\n  plugin: memory\n"));
        match result.unwrap_err() {
            ConfigError::MisspeltSection {
                file,
                key,
                suggestion,
            } => {
                assert_eq!(file, path.display().to_string());
                assert_eq!((key.as_str(), suggestion.as_str()), (written, meant));
            }
            other => panic!("{written}: expected MisspeltSection, got {other}"),
        }
    }
    let (_dir, _path, result) = load_yaml("registy:\n  plugin: memory\n");
    let text = result.unwrap_err().to_string();
    assert!(text.contains("did you mean \"registry\""), "{text}");
    // The application's own sections, far from any component name, are fine.
    let (_dir, _path, result) = load_yaml("greeter:\n  greeting: hi\nshop:\n  currency: EUR\n");
    result.unwrap();
}

#[test]
fn unknown_key_names_file_section_key_and_valid_keys() {
    let (_dir, path, result) = load_yaml("registry:\n  plugin: memory\n  adress: 127.0.0.1\n");
    let err = result.unwrap_err();
    match &err {
        ConfigError::UnknownKey {
            file,
            section,
            key,
            valid,
        } => {
            assert_eq!(file, &path.display().to_string());
            assert_eq!(section, "registry");
            assert_eq!(key, "adress");
            assert!(valid.contains(&"addresses".to_string()), "{valid:?}");
            // Options of compiled-in plugins are valid keys too (local's `dir`).
            assert!(valid.contains(&"dir".to_string()), "{valid:?}");
        }
        other => panic!("expected UnknownKey, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("service.yaml") && text.contains("adress") && text.contains("addresses"),
        "{text}"
    );
}

#[test]
fn unknown_key_in_a_logger_sub_section() {
    let (_dir, _path, result) = load_yaml("server:\n  logger:\n    levle: debug\n");
    match result.unwrap_err() {
        ConfigError::UnknownKey {
            section,
            key,
            valid,
            ..
        } => {
            assert_eq!(section, "server.logger");
            assert_eq!(key, "levle");
            assert!(valid.contains(&"level".to_string()));
        }
        other => panic!("expected UnknownKey, got {other:?}"),
    }
}

#[test]
fn application_sections_are_not_checked() {
    let (_dir, _path, result) = load_yaml("greeter:\n  greeting: hello\n  anything: [1, 2]\n");
    let loaded = result.unwrap();
    assert_eq!(loaded.get::<String>("greeter.greeting").unwrap(), "hello");
}

#[test]
fn wrong_type_names_key_and_expected_type() {
    let (_dir, path, result) = load_yaml("client:\n  pool_size: many\n");
    match result.unwrap_err() {
        ConfigError::WrongType {
            origin,
            key,
            expected,
            found,
        } => {
            assert_eq!(key, "client.pool_size");
            assert_eq!(expected, "a whole number");
            assert!(origin.contains(&path.display().to_string()), "{origin}");
            assert!(found.contains("many"), "{found}");
        }
        other => panic!("expected WrongType, got {other:?}"),
    }
    let (_dir, _path, result) = load_yaml("server:\n  register_ttl: soon\n");
    match result.unwrap_err() {
        ConfigError::WrongType { key, expected, .. } => {
            assert_eq!(key, "server.register_ttl");
            assert!(expected.contains("duration"), "{expected}");
        }
        other => panic!("expected WrongType, got {other:?}"),
    }
    let (_dir, _path, result) = load_yaml("registry: memory\n");
    assert!(matches!(
        result.unwrap_err(),
        ConfigError::WrongType { key, .. } if key == "registry"
    ));
}

#[test]
fn broken_yaml_and_missing_file_name_the_file() {
    let (_dir, path, result) = load_yaml("registry:\n  plugin: [unclosed\n");
    match result.unwrap_err() {
        ConfigError::Parse { file, .. } => assert_eq!(file, path.display().to_string()),
        other => panic!("expected Parse, got {other:?}"),
    }
    let missing = repo("configs/does-not-exist.yaml");
    match load_file(missing.clone()).unwrap_err() {
        ConfigError::Read { file, .. } => assert_eq!(file, missing.display().to_string()),
        other => panic!("expected Read, got {other:?}"),
    }
}

#[test]
fn durations_accept_units_and_bare_seconds() {
    let (_dir, _path, result) = load_yaml(
        "client:\n  pool_request_timeout: 250ms\n  pool_ttl: 1m\nserver:\n  register_ttl: 30\n  register_interval: 5s\n",
    );
    let s = ComponentSections::from_loaded(&result.unwrap()).unwrap();
    assert_eq!(s.client.pool_request_timeout, Duration::from_millis(250));
    assert_eq!(s.client.pool_ttl, Duration::from_secs(60));
    assert_eq!(s.server.register_ttl, Duration::from_secs(30));
    assert_eq!(s.server.register_interval, Duration::from_secs(5));
}

#[test]
fn bad_log_level_is_named() {
    let (_dir, _path, result) = load_yaml("broker:\n  logger:\n    level: loud\n");
    let loaded = result.unwrap();
    let cfg = micro::service::loggers::config_for(&loaded, "broker").unwrap();
    match logger::level_of(&cfg, "broker.logger.level").unwrap_err() {
        ConfigError::Invalid { key, reason } => {
            assert_eq!(key, "broker.logger.level");
            assert!(
                reason.contains("loud") && reason.contains("debug"),
                "{reason}"
            );
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}
