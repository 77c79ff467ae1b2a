//! Command-line flags and environment variables, generated from the option specs.
//!
//! Naming: the default prefix gives flags `--registry` and env `MICRO_REGISTRY`;
//! `arg_prefix("x")` gives `--x_registry` and `X_REGISTRY`; `arg_prefix("")` gives
//! `--registry` and `REGISTRY`.

use super::schema::Schema;
use crate::config::parse_duration;
use crate::config::{ConfigError, OptionKind};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// How flag and env names are spelled for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    flag_prefix: String,
    env_prefix: String,
}

impl Naming {
    /// Naming for `arg_prefix` (`None` = the default `micro` naming).
    pub fn new(arg_prefix: Option<&str>) -> Self {
        match arg_prefix {
            None => Naming {
                flag_prefix: String::new(),
                env_prefix: "MICRO_".into(),
            },
            Some("") => Naming {
                flag_prefix: String::new(),
                env_prefix: String::new(),
            },
            Some(p) => Naming {
                flag_prefix: format!("{p}_"),
                env_prefix: format!("{}_", p.to_ascii_uppercase()),
            },
        }
    }

    /// `--{prefix}{name}`.
    pub fn flag(&self, name: &str) -> String {
        format!("--{}{name}", self.flag_prefix)
    }

    /// `{PREFIX}{NAME}`.
    pub fn env(&self, name: &str) -> String {
        format!("{}{}", self.env_prefix, name.to_ascii_uppercase())
    }
}

/// A flag of the application itself (not of a component), e.g. `--server` for a demo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppFlag {
    /// Name without dashes or prefix.
    pub name: String,
    /// Help text.
    pub help: String,
    /// Whether it takes a value (`--services orders`) or is a switch (`--server`).
    pub takes_value: bool,
}

/// Values of the application's own flags (from flags or env).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    values: BTreeMap<String, Vec<String>>,
}

impl Flags {
    /// The last value given for `name` (`"true"` for a switch).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// Every value given for `name`.
    pub fn all(&self, name: &str) -> &[String] {
        self.values.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether `name` was given (a switch set to false counts as not given).
    pub fn is_set(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v != "false")
    }

    /// These values with `top`'s replacing any of the same name.
    pub(crate) fn overlay(mut self, top: Flags) -> Flags {
        self.values.extend(top.values);
        self
    }

    fn push(&mut self, name: &str, value: String) {
        self.values.entry(name.to_string()).or_default().push(value);
    }
}

/// Where a flag or env name leads.
#[derive(Debug, Clone)]
enum Target {
    Option {
        section: String,
        key: String,
        kind: OptionKind,
    },
    App(AppFlag),
    Config,
    Dump,
}

/// Everything the command line said.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub tree: Value,
    pub config_file: Option<String>,
    pub help: bool,
    pub version: bool,
    pub dump: bool,
    pub app: Flags,
}

fn targets(schema: &Schema, app_flags: &[AppFlag]) -> BTreeMap<String, Target> {
    let mut out = BTreeMap::new();
    // The application's own flags win over component flags of the same name (e.g. a demo's
    // `--server` switch over the server plugin flag, which stays reachable by env and file).
    for flag in app_flags {
        out.insert(flag.name.clone(), Target::App(flag.clone()));
    }
    out.entry("config".to_string()).or_insert(Target::Config);
    out.entry("dump_config".to_string()).or_insert(Target::Dump);
    for section in &schema.sections {
        for spec in section.all_options() {
            for name in spec.flag_names(&section.name) {
                out.entry(name).or_insert_with(|| Target::Option {
                    section: section.name.clone(),
                    key: spec.key.clone(),
                    kind: spec.kind,
                });
            }
        }
    }
    out
}

/// Converts flag or env text into a config value of `kind`.
fn convert(kind: OptionKind, text: &str, origin: &str, key: &str) -> Result<Value, ConfigError> {
    let wrong = || ConfigError::WrongType {
        origin: origin.to_string(),
        key: key.to_string(),
        expected: kind.expected().to_string(),
        found: format!("{text:?}"),
    };
    Ok(match kind {
        OptionKind::Text => Value::String(text.to_string()),
        OptionKind::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "" => Value::Bool(true),
            "false" | "0" | "no" | "off" => Value::Bool(false),
            _ => return Err(wrong()),
        },
        OptionKind::Integer => Value::from(text.trim().parse::<i64>().map_err(|_| wrong())?),
        OptionKind::Float => Value::from(text.trim().parse::<f64>().map_err(|_| wrong())?),
        OptionKind::Duration => {
            parse_duration(text).map_err(|_| wrong())?;
            Value::String(text.trim().to_string())
        }
        OptionKind::List => Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
        OptionKind::Map => {
            let mut map = Map::new();
            for pair in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (k, v) = pair.split_once('=').ok_or_else(wrong)?;
                map.insert(k.trim().to_string(), Value::String(v.trim().to_string()));
            }
            Value::Object(map)
        }
    })
}

/// Sets `value` at `section.key` in `tree`; lists and maps add to what is there.
fn set(tree: &mut Value, section: &str, key: &str, value: Value) {
    if !tree.is_object() {
        *tree = Value::Object(Map::new());
    }
    let mut node = tree;
    let path: Vec<&str> = std::iter::once(section).chain(key.split('.')).collect();
    let (last, parents) = path.split_last().unwrap_or((&"", &[]));
    for part in parents {
        let Value::Object(map) = node else { return };
        node = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
    }
    let Value::Object(map) = node else { return };
    match (map.get_mut(*last), value) {
        (Some(Value::Array(old)), Value::Array(new)) => old.extend(new),
        (Some(Value::Object(old)), Value::Object(new)) => old.extend(new),
        (_, value) => {
            map.insert(last.to_string(), value);
        }
    }
}

/// Parses the command line (`args[0]` is the program name).
pub(crate) fn parse_args(
    schema: &Schema,
    naming: &Naming,
    app_flags: &[AppFlag],
    args: &[String],
) -> Result<Parsed, ConfigError> {
    let targets = targets(schema, app_flags);
    let mut parsed = Parsed {
        tree: Value::Object(Map::new()),
        ..Default::default()
    };
    let mut iter = args.iter().skip(1).peekable();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--help" | "-h" => {
                parsed.help = true;
                continue;
            }
            "--version" | "-v" => {
                parsed.version = true;
                continue;
            }
            _ => {}
        }
        let Some(body) = arg.strip_prefix("--") else {
            return Err(ConfigError::UnexpectedArgument {
                argument: arg.clone(),
            });
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        // App flags are not prefixed; component flags are.
        let target = targets
            .get(name)
            .filter(|t| matches!(t, Target::App(_)))
            .or_else(|| {
                name.strip_prefix(&naming.flag_prefix)
                    .and_then(|n| targets.get(n))
                    .filter(|t| !matches!(t, Target::App(_)))
            });
        let Some(target) = target else {
            let known: Vec<String> = targets.keys().map(|k| naming.flag(k)).collect();
            let suggestion = known
                .iter()
                .map(|k| (strsim::levenshtein(k, arg), k))
                .filter(|(d, _)| *d <= 3)
                .min()
                .map(|(_, k)| k.trim_start_matches("--").to_string());
            return Err(ConfigError::UnknownFlag {
                flag: arg.clone(),
                suggestion,
            });
        };
        let is_switch = match target {
            Target::Option { kind, .. } => *kind == OptionKind::Bool,
            Target::App(flag) => !flag.takes_value,
            Target::Dump => true,
            Target::Config => false,
        };
        let value = match inline {
            Some(v) => v,
            None if is_switch => match iter.peek().map(|s| s.to_ascii_lowercase()) {
                Some(v) if v == "true" || v == "false" => iter.next().cloned().unwrap_or_default(),
                _ => "true".to_string(),
            },
            None => match iter.next() {
                Some(v) => v.clone(),
                None => {
                    return Err(ConfigError::MissingValue {
                        flag: format!("--{name}"),
                    });
                }
            },
        };
        match target {
            Target::Option { section, key, kind } => {
                let origin = format!("flag --{name}");
                let v = convert(*kind, &value, &origin, &format!("{section}.{key}"))?;
                set(&mut parsed.tree, section, key, v);
            }
            Target::App(flag) => parsed.app.push(&flag.name, value),
            Target::Config => parsed.config_file = Some(value),
            Target::Dump => parsed.dump = value != "false",
        }
    }
    Ok(parsed)
}

/// Splits a command line (`args[0]` is the program name) into the flags of `schema` and the
/// application, with their values, and everything else, each led by the program name: for a
/// program whose own arguments mix with the component flags (`micro --registry nats list
/// services`, `micro list services --registry=nats`). `--help`, `--version` and whatever
/// follows `--` stay with the rest.
pub fn split_args(
    schema: &Schema,
    naming: &Naming,
    app_flags: &[AppFlag],
    args: &[String],
) -> (Vec<String>, Vec<String>) {
    let targets = targets(schema, app_flags);
    let program = args.first().cloned().unwrap_or_default();
    let (mut ours, mut rest) = (vec![program.clone()], vec![program]);
    let mut iter = args.iter().skip(1).peekable();
    while let Some(arg) = iter.next() {
        if arg == "--" {
            rest.push(arg.clone());
            rest.extend(iter.by_ref().cloned());
            break;
        }
        let Some(body) = arg.strip_prefix("--") else {
            rest.push(arg.clone());
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, _)) => (n, true),
            None => (body, false),
        };
        let target = targets
            .get(name)
            .filter(|t| matches!(t, Target::App(_)))
            .or_else(|| {
                name.strip_prefix(&naming.flag_prefix)
                    .and_then(|n| targets.get(n))
                    .filter(|t| !matches!(t, Target::App(_)))
            });
        let Some(target) = target else {
            rest.push(arg.clone());
            continue;
        };
        ours.push(arg.clone());
        if inline {
            continue;
        }
        let is_switch = match target {
            Target::Option { kind, .. } => *kind == OptionKind::Bool,
            Target::App(flag) => !flag.takes_value,
            Target::Dump => true,
            Target::Config => false,
        };
        let takes_next = match iter.peek() {
            Some(next) if is_switch => {
                matches!(next.to_ascii_lowercase().as_str(), "true" | "false")
            }
            Some(_) => true,
            None => false,
        };
        if takes_next {
            ours.extend(iter.next().cloned());
        }
    }
    (ours, rest)
}

/// Reads the env vars named after the flags; unrelated variables are ignored.
pub(crate) fn parse_env(
    schema: &Schema,
    naming: &Naming,
    app_flags: &[AppFlag],
    env: &[(String, String)],
) -> Result<Parsed, ConfigError> {
    let targets = targets(schema, app_flags);
    let by_env: BTreeMap<String, (&String, &Target)> = targets
        .iter()
        .map(|(name, t)| (naming.env(name), (name, t)))
        .collect();
    let mut parsed = Parsed {
        tree: Value::Object(Map::new()),
        ..Default::default()
    };
    for (var, value) in env {
        let Some((_, target)) = by_env.get(var) else {
            continue;
        };
        match target {
            Target::Option { section, key, kind } => {
                let origin = format!("env {var}");
                let v = convert(*kind, value, &origin, &format!("{section}.{key}"))?;
                set(&mut parsed.tree, section, key, v);
            }
            Target::App(flag) => parsed.app.push(&flag.name, value.clone()),
            Target::Config => parsed.config_file = Some(value.clone()),
            Target::Dump => parsed.dump = value != "false" && !value.is_empty(),
        }
    }
    Ok(parsed)
}

/// The `--help` text: every flag with its env var and default.
pub(crate) fn help(
    schema: &Schema,
    naming: &Naming,
    app_flags: &[AppFlag],
    program: &str,
    about: &str,
) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    rows.push(("--help, -h".into(), "Show this help and exit".into()));
    rows.push(("--version, -v".into(), "Print the version and exit".into()));
    rows.push((
        format!("{} FILE", naming.flag("config")),
        format!("Config file (YAML) [${}]", naming.env("config")),
    ));
    rows.push((
        naming.flag("dump_config"),
        format!(
            "Print the effective config as YAML and exit [${}]",
            naming.env("dump_config")
        ),
    ));
    for flag in app_flags {
        let left = if flag.takes_value {
            format!("--{} VALUE", flag.name)
        } else {
            format!("--{}", flag.name)
        };
        rows.push((left, format!("{} [${}]", flag.help, naming.env(&flag.name))));
    }
    let mut seen = std::collections::BTreeSet::new();
    for section in &schema.sections {
        for spec in section.all_options() {
            let names = spec.flag_names(&section.name);
            if !seen.insert(names[0].clone()) {
                continue;
            }
            let default = section
                .default_of(&spec.key)
                .map(|d| format!(" (default: {d})"))
                .unwrap_or_default();
            let left = names
                .iter()
                .map(|n| naming.flag(n))
                .collect::<Vec<_>>()
                .join(", ");
            let envs = names
                .iter()
                .map(|n| format!("${}", naming.env(n)))
                .collect::<Vec<_>>()
                .join(", ");
            rows.push((
                format!("{left} {}", spec.kind.placeholder()),
                format!("{}{default} [{envs}]", spec.help),
            ));
        }
    }
    let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0).min(44);
    let mut out = String::new();
    if !about.is_empty() {
        out.push_str(about);
        out.push_str("\n\n");
    }
    out.push_str(&format!("Usage: {program} [options]\n\nOptions:\n"));
    for (left, right) in rows {
        if left.len() > width {
            out.push_str(&format!("  {left}\n  {:width$}  {right}\n", ""));
        } else {
            out.push_str(&format!("  {left:width$}  {right}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naming_forms() {
        let default = Naming::new(None);
        assert_eq!(default.flag("registry"), "--registry");
        assert_eq!(default.env("registry_address"), "MICRO_REGISTRY_ADDRESS");
        let x = Naming::new(Some("x"));
        assert_eq!(x.flag("registry"), "--x_registry");
        assert_eq!(x.env("registry"), "X_REGISTRY");
        let bare = Naming::new(Some(""));
        assert_eq!(bare.flag("registry"), "--registry");
        assert_eq!(bare.env("registry"), "REGISTRY");
    }

    #[test]
    fn split_args_takes_the_component_flags_and_their_values() {
        let args: Vec<String> = [
            "micro",
            "--registry",
            "nats",
            "list",
            "--client_retries=2",
            "services",
            "--server_enabled",
            "--output",
            "raw",
            "--",
            "--registry",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        let (ours, rest) = split_args(&Schema::core(), &Naming::new(None), &[], &args);
        assert_eq!(
            ours,
            [
                "micro",
                "--registry",
                "nats",
                "--client_retries=2",
                "--server_enabled"
            ]
        );
        assert_eq!(
            rest,
            [
                "micro",
                "list",
                "services",
                "--output",
                "raw",
                "--",
                "--registry"
            ]
        );
    }

    #[test]
    fn convert_checks_kinds() {
        assert_eq!(
            convert(OptionKind::Map, "a=1, b=2", "flag", "k").ok(),
            Some(serde_json::json!({"a": "1", "b": "2"}))
        );
        assert_eq!(
            convert(OptionKind::List, "a,b", "flag", "k").ok(),
            Some(serde_json::json!(["a", "b"]))
        );
        let err = convert(OptionKind::Integer, "many", "flag --x", "client.pool_size");
        assert!(matches!(err, Err(ConfigError::WrongType { .. })));
        assert!(convert(OptionKind::Duration, "soon", "env X", "k").is_err());
    }
}
