//! Layer precedence (defaults < file < env < flags) for every pair of layers, with the three
//! forms of `arg_prefix` and `no_flags`; the go-micro global flags and env vars.

use micro::config::{self, ComponentSections, ConfigError, Loaded, Outcome, Sources};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A naming form: the `arg_prefix` given, and how flag and env names come out.
struct Form {
    prefix: Option<&'static str>,
    flag: fn(&str) -> String,
    env: fn(&str) -> String,
}

const FORMS: [Form; 3] = [
    Form {
        prefix: None,
        flag: |n| format!("--{n}"),
        env: |n| format!("MICRO_{}", n.to_uppercase()),
    },
    Form {
        prefix: Some("x"),
        flag: |n| format!("--x_{n}"),
        env: |n| format!("X_{}", n.to_uppercase()),
    },
    Form {
        prefix: Some(""),
        flag: |n| format!("--{n}"),
        env: |n| n.to_uppercase(),
    },
];

struct Layers {
    file: Option<&'static str>,
    env: Option<&'static str>,
    flag: Option<&'static str>,
    no_flags: bool,
}

fn load(sources: Sources) -> Result<Loaded, ConfigError> {
    match config::load(micro::plugins().schema(), &sources)? {
        Outcome::Loaded(loaded) => Ok(*loaded),
        other => panic!("expected config, got {other:?}"),
    }
}

/// Resolves `client.pool_size` (default 1) given the layers.
fn pool_size(form: &Form, layers: &Layers) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let mut sources = Sources {
        arg_prefix: form.prefix.map(str::to_string),
        no_flags: layers.no_flags,
        args: vec!["svc".into()],
        ..Default::default()
    };
    if let Some(v) = layers.file {
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, format!("client:\n  pool_size: {v}\n")).unwrap();
        sources.config_file = Some(path);
    }
    if let Some(v) = layers.env {
        sources.env.push(((form.env)("client_pool_size"), v.into()));
        sources.env.push(("UNRELATED_VAR".into(), "ignored".into()));
    }
    if let Some(v) = layers.flag {
        sources.args.push((form.flag)("client_pool_size"));
        sources.args.push(v.into());
    }
    let loaded = load(sources).unwrap();
    loaded.get::<usize>("client.pool_size").unwrap()
}

#[test]
fn every_layer_pair_in_every_naming_form() {
    let cases: [(Layers, usize); 9] = [
        (
            Layers {
                file: None,
                env: None,
                flag: None,
                no_flags: false,
            },
            1,
        ),
        (
            Layers {
                file: Some("2"),
                env: None,
                flag: None,
                no_flags: false,
            },
            2,
        ),
        (
            Layers {
                file: None,
                env: Some("3"),
                flag: None,
                no_flags: false,
            },
            3,
        ),
        (
            Layers {
                file: None,
                env: None,
                flag: Some("4"),
                no_flags: false,
            },
            4,
        ),
        (
            Layers {
                file: Some("2"),
                env: Some("3"),
                flag: None,
                no_flags: false,
            },
            3,
        ),
        (
            Layers {
                file: Some("2"),
                env: None,
                flag: Some("4"),
                no_flags: false,
            },
            4,
        ),
        (
            Layers {
                file: None,
                env: Some("3"),
                flag: Some("4"),
                no_flags: false,
            },
            4,
        ),
        (
            Layers {
                file: Some("2"),
                env: Some("3"),
                flag: Some("4"),
                no_flags: false,
            },
            4,
        ),
        // no_flags: the command line is ignored, env still applies.
        (
            Layers {
                file: Some("2"),
                env: Some("3"),
                flag: Some("4"),
                no_flags: true,
            },
            3,
        ),
    ];
    for form in &FORMS {
        for (i, (layers, want)) in cases.iter().enumerate() {
            assert_eq!(
                pool_size(form, layers),
                *want,
                "case {i} with arg_prefix {:?}",
                form.prefix
            );
        }
    }
}

#[test]
fn names_of_other_forms_are_not_read() {
    // With arg_prefix("x"), MICRO_* env vars and unprefixed flags are not ours.
    let sources = Sources {
        arg_prefix: Some("x".into()),
        args: vec!["svc".into()],
        env: vec![("MICRO_CLIENT_POOL_SIZE".into(), "9".into())],
        ..Default::default()
    };
    assert_eq!(
        load(sources)
            .unwrap()
            .get::<usize>("client.pool_size")
            .unwrap(),
        1
    );
    let sources = Sources {
        arg_prefix: Some("x".into()),
        args: vec!["svc".into(), "--client_pool_size".into(), "9".into()],
        ..Default::default()
    };
    match load(sources).unwrap_err() {
        ConfigError::UnknownFlag { flag, suggestion } => {
            assert_eq!(flag, "--client_pool_size");
            assert_eq!(suggestion.as_deref(), Some("x_client_pool_size"));
        }
        other => panic!("expected UnknownFlag, got {other:?}"),
    }
}

#[test]
fn builder_values_sit_between_defaults_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, "server:\n  version: from-file\n").unwrap();
    let sources = Sources {
        overrides: serde_json::json!({"server": {"name": "from-builder", "version": "from-builder"}}),
        config_file: Some(path),
        no_flags: true,
        ..Default::default()
    };
    let loaded = load(sources).unwrap();
    assert_eq!(loaded.get::<String>("server.name").unwrap(), "from-builder");
    assert_eq!(loaded.get::<String>("server.version").unwrap(), "from-file");
}

#[test]
fn config_file_from_flag_beats_env_beats_builder() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = ["builder", "env", "flag"]
        .iter()
        .map(|name| {
            let p = dir.path().join(format!("{name}.yaml"));
            std::fs::write(&p, format!("server:\n  version: {name}\n")).unwrap();
            p
        })
        .collect();
    let version = |env: bool, flag: bool| {
        let mut sources = Sources {
            config_file: Some(files[0].clone()),
            args: vec!["svc".into()],
            ..Default::default()
        };
        if env {
            sources
                .env
                .push(("MICRO_CONFIG".into(), files[1].display().to_string()));
        }
        if flag {
            sources
                .args
                .push(format!("--config={}", files[2].display()));
        }
        load(sources)
            .unwrap()
            .get::<String>("server.version")
            .unwrap()
    };
    assert_eq!(version(false, false), "builder");
    assert_eq!(version(true, false), "env");
    assert_eq!(version(true, true), "flag");
    assert_eq!(version(false, true), "flag");
}

/// Checks what a go-micro option set.
type Check = fn(&ComponentSections) -> bool;

/// The go-micro global options, as flag and as env var, and what they set.
fn go_micro_options() -> Vec<(&'static str, &'static str, Check)> {
    vec![
        ("server_name", "svc-a", |s| s.server.name == "svc-a"),
        ("server_version", "1.2.3", |s| s.server.version == "1.2.3"),
        ("server_id", "svc-a-1", |s| s.server.id == "svc-a-1"),
        ("server_address", "127.0.0.1:8080", |s| {
            s.server.address == "127.0.0.1:8080"
        }),
        ("server_advertise", "10.0.0.1:8080", |s| {
            s.server.advertise == "10.0.0.1:8080"
        }),
        ("server_metadata", "a=1,b=2", |s| {
            s.server.metadata
                == BTreeMap::from([
                    ("a".to_string(), "1".to_string()),
                    ("b".to_string(), "2".to_string()),
                ])
        }),
        ("broker", "memory", |s| s.broker.plugin == "memory"),
        ("broker_address", "127.0.0.1:1,127.0.0.1:2", |s| {
            s.broker.addresses == ["127.0.0.1:1", "127.0.0.1:2"]
        }),
        ("registry", "memory", |s| s.registry.plugin == "memory"),
        ("registry_address", "127.0.0.1:2379", |s| {
            s.registry.addresses == ["127.0.0.1:2379"]
        }),
        ("selector", "roundrobin", |s| {
            s.selector.plugin == "roundrobin"
        }),
        ("transport", "memory", |s| s.transport.plugin == "memory"),
        ("transport_address", "127.0.0.1:9", |s| {
            s.transport.addresses == ["127.0.0.1:9"]
        }),
        ("register_ttl", "45", |s| {
            s.server.register_ttl == Duration::from_secs(45)
        }),
        ("register_interval", "15s", |s| {
            s.server.register_interval == Duration::from_secs(15)
        }),
        ("client_retries", "3", |s| s.client.pool_retries == 3),
        ("client_request_timeout", "250ms", |s| {
            s.client.pool_request_timeout == Duration::from_millis(250)
        }),
        ("client_pool_size", "7", |s| s.client.pool_size == 7),
        ("client_pool_ttl", "2m", |s| {
            s.client.pool_ttl == Duration::from_secs(120)
        }),
    ]
}

#[test]
fn go_micro_global_options_work_as_flags_and_env() {
    for (name, value, check) in go_micro_options() {
        let by_flag = load(Sources {
            args: vec!["svc".into(), format!("--{name}"), value.into()],
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("--{name}: {e}"));
        assert!(
            check(&ComponentSections::from_loaded(&by_flag).unwrap()),
            "flag --{name}"
        );
        let by_env = load(Sources {
            args: vec!["svc".into()],
            env: vec![(format!("MICRO_{}", name.to_uppercase()), value.into())],
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("MICRO_{}: {e}", name.to_uppercase()));
        assert!(
            check(&ComponentSections::from_loaded(&by_env).unwrap()),
            "env {name}"
        );
    }
}

#[test]
fn repeated_flags_add_up() {
    let loaded = load(Sources {
        args: [
            "svc",
            "--server_metadata",
            "a=1",
            "--server_metadata=b=2",
            "--registry_address",
            "h1",
            "--registry_address",
            "h2",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    })
    .unwrap();
    let s = ComponentSections::from_loaded(&loaded).unwrap();
    assert_eq!(s.server.metadata.len(), 2);
    assert_eq!(s.registry.addresses, ["h1", "h2"]);
}

#[test]
fn flag_and_env_errors_say_what_is_wrong() {
    let err = load(Sources {
        args: vec!["svc".into(), "--registy".into(), "memory".into()],
        ..Default::default()
    })
    .unwrap_err();
    assert!(
        matches!(&err, ConfigError::UnknownFlag { suggestion: Some(s), .. } if s == "registry"),
        "{err:?}"
    );
    let err = load(Sources {
        args: vec!["svc".into(), "--registry".into()],
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(
        err,
        ConfigError::MissingValue {
            flag: "--registry".into()
        }
    );
    let err = load(Sources {
        args: vec!["svc".into()],
        env: vec![("MICRO_CLIENT_POOL_SIZE".into(), "lots".into())],
        ..Default::default()
    })
    .unwrap_err();
    match err {
        ConfigError::WrongType {
            origin,
            key,
            expected,
            found,
        } => {
            assert_eq!(origin, "env MICRO_CLIENT_POOL_SIZE");
            assert_eq!(key, "client.pool_size");
            assert_eq!(expected, "a whole number");
            assert_eq!(found, "\"lots\"");
        }
        other => panic!("expected WrongType, got {other:?}"),
    }
    let err = load(Sources {
        args: vec!["svc".into(), "--register_ttl".into(), "soon".into()],
        ..Default::default()
    })
    .unwrap_err();
    assert!(
        matches!(err, ConfigError::WrongType { ref origin, .. } if origin == "flag --register_ttl"),
        "{err:?}"
    );
    let err = load(Sources {
        args: vec!["svc".into(), "stray".into()],
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(err, ConfigError::UnexpectedArgument { .. }));
}

#[test]
fn help_lists_every_flag_with_env_and_default() {
    let help = match config::load(
        micro::plugins().schema(),
        &Sources {
            args: vec!["svc".into(), "--help".into()],
            program: "svc".into(),
            ..Default::default()
        },
    )
    .unwrap()
    {
        Outcome::Help(text) => text,
        other => panic!("expected help, got {other:?}"),
    };
    for (name, _, _) in go_micro_options() {
        let line = help
            .lines()
            .find(|l| l.contains(&format!("--{name} ")) || l.contains(&format!("--{name},")))
            .unwrap_or_else(|| panic!("--{name} missing from help:\n{help}"));
        let _ = line;
        assert!(
            help.contains(&format!("$MICRO_{}", name.to_uppercase())),
            "env of {name}"
        );
    }
    assert!(help.contains("(default: local)"), "{help}");
    assert!(
        help.contains("(default: 90s)") || help.contains("(default: 1m 30s)"),
        "{help}"
    );
    assert!(help.contains("--config FILE") && help.contains("$MICRO_CONFIG"));
    assert!(help.contains("--registry_logger_level"));
}
