//! Builds the effective configuration from its layers and checks it.

use super::flags::{self, AppFlag, Flags, Naming};
use super::schema::Schema;
use super::yaml::{self, Layer, kind_name};
use crate::config::{Component, ConfigError, OptionSpec, Settings};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where configuration comes from, besides built-in defaults.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `None` = default naming (`--registry`, `MICRO_REGISTRY`).
    pub arg_prefix: Option<String>,
    /// Ignore the command line.
    pub no_flags: bool,
    /// The command line, program name first.
    pub args: Vec<String>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Config file given in code (a flag or env var overrides it).
    pub config_file: Option<PathBuf>,
    /// Values set in code, above built-in defaults and below the file.
    pub overrides: Value,
    /// The application's own flags.
    pub app_flags: Vec<AppFlag>,
    /// Program name for `--help`.
    pub program: String,
    /// First lines of `--help`.
    pub about: String,
}

/// What loading decided.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// Configuration loaded and checked.
    Loaded(Box<Loaded>),
    /// `--help` was asked for: the text to print.
    Help(String),
    /// `--version` was asked for.
    Version,
    /// `--dump_config` was asked for: the effective config as YAML.
    Dump(String),
}

/// The effective configuration, with its layers kept so the file can be read again.
#[derive(Clone)]
pub struct Loaded {
    schema: Arc<Schema>,
    file: Option<PathBuf>,
    overrides: Value,
    env: Value,
    flags: Value,
    figment: Figment,
    app_flags: Flags,
    environment: Arc<Vec<(String, String)>>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("file", &self.file)
            .field("tree", &self.tree())
            .finish()
    }
}

fn merge_defaults(schema: &Schema) -> Value {
    let mut root = Map::new();
    for s in &schema.sections {
        root.insert(s.name.clone(), s.defaults.clone());
    }
    Value::Object(root)
}

fn origin_of(file: &Option<PathBuf>) -> String {
    match file {
        Some(f) => format!("config file {}", f.display()),
        None => "config".to_string(),
    }
}

/// Checks that every key of every component section in `value` is known.
fn validate_keys(schema: &Schema, value: &Value, file: &str) -> Result<(), ConfigError> {
    let Value::Object(root) = value else {
        return Ok(());
    };
    for (name, section_value) in root {
        let Some(section) = schema.section(name) else {
            // The application's own section, unless it looks like a misspelt component.
            if let Some(suggestion) = misspelt_section(schema, name) {
                return Err(ConfigError::MisspeltSection {
                    file: file.to_string(),
                    key: name.clone(),
                    suggestion,
                });
            }
            continue;
        };
        let specs = section.all_options();
        check_level(&specs, "", name, section_value, file)?;
    }
    Ok(())
}

/// The component section `name` is probably a misspelling of: one or two letters off
/// (one for short names), or two letters swapped.
fn misspelt_section(schema: &Schema, name: &str) -> Option<String> {
    let most = if name.len() <= 5 { 1 } else { 2 };
    schema
        .sections
        .iter()
        .map(|s| (strsim::damerau_levenshtein(&s.name, name), &s.name))
        .filter(|(distance, _)| *distance <= most)
        .min()
        .map(|(_, section)| section.clone())
}

fn check_level(
    specs: &[OptionSpec],
    prefix: &str,
    section: &str,
    value: &Value,
    file: &str,
) -> Result<(), ConfigError> {
    let map = match value {
        Value::Object(map) => map,
        Value::Null => return Ok(()),
        other => {
            return Err(ConfigError::WrongType {
                origin: format!("config file {file}"),
                key: section.to_string(),
                expected: "a mapping of options".into(),
                found: kind_name(other).into(),
            });
        }
    };
    let mut valid: Vec<String> = specs
        .iter()
        .filter_map(|s| s.key.strip_prefix(prefix))
        .map(|k| k.split('.').next().unwrap_or(k).to_string())
        .collect();
    valid.dedup();
    for (key, child) in map {
        if !valid.contains(key) {
            let mut valid = valid.clone();
            valid.sort();
            valid.dedup();
            return Err(ConfigError::UnknownKey {
                file: file.to_string(),
                section: section.to_string(),
                key: key.clone(),
                valid,
            });
        }
        let nested = format!("{prefix}{key}.");
        if specs.iter().any(|s| s.key.starts_with(&nested)) {
            check_level(specs, &nested, &format!("{section}.{key}"), child, file)?;
        }
    }
    Ok(())
}

/// Loads configuration for `schema` from `sources`.
pub fn load(schema: Schema, sources: &Sources) -> Result<Outcome, ConfigError> {
    let naming = Naming::new(sources.arg_prefix.as_deref());
    let parsed_flags = if sources.no_flags {
        flags::Parsed::default()
    } else {
        flags::parse_args(&schema, &naming, &sources.app_flags, &sources.args)?
    };
    if parsed_flags.help {
        return Ok(Outcome::Help(flags::help(
            &schema,
            &naming,
            &sources.app_flags,
            &sources.program,
            &sources.about,
        )));
    }
    if parsed_flags.version {
        return Ok(Outcome::Version);
    }
    let parsed_env = flags::parse_env(&schema, &naming, &sources.app_flags, &sources.env)?;
    let file = parsed_flags
        .config_file
        .clone()
        .or(parsed_env.config_file.clone())
        .map(PathBuf::from)
        .or(sources.config_file.clone());
    let file_value = match &file {
        Some(path) => {
            let value = yaml::read_file(path)?;
            validate_keys(&schema, &value, &path.display().to_string())?;
            value
        }
        None => Value::Object(Map::new()),
    };
    let app_flags = parsed_env.app.clone().overlay(parsed_flags.app.clone());
    let mut loaded = Loaded {
        schema: Arc::new(schema),
        file,
        overrides: sources.overrides.clone(),
        env: parsed_env.tree,
        flags: parsed_flags.tree,
        figment: Figment::new(),
        app_flags,
        environment: Arc::new(sources.env.clone()),
    };
    loaded.assemble(&file_value)?;
    if parsed_flags.dump || parsed_env.dump {
        return Ok(Outcome::Dump(loaded.to_yaml()));
    }
    Ok(Outcome::Loaded(Box::new(loaded)))
}

impl Settings for Loaded {
    fn value(&self, path: &str) -> Option<Value> {
        self.raw(path)
    }

    fn env_var(&self, name: &str) -> Option<&str> {
        Loaded::env_var(self, name)
    }

    fn origin(&self) -> String {
        origin_of(&self.file)
    }
}

impl Loaded {
    /// Layers `file_value` between the builder values and env, and checks the result.
    fn assemble(&mut self, file_value: &Value) -> Result<(), ConfigError> {
        let defaults = merge_defaults(&self.schema);
        let origin = origin_of(&self.file);
        let figment = Figment::new()
            .merge(Layer {
                name: "built-in defaults".into(),
                value: &defaults,
            })
            .merge(Layer {
                name: "builder".into(),
                value: &self.overrides,
            })
            .merge(Layer {
                name: origin,
                value: file_value,
            })
            .merge(Layer {
                name: "environment".into(),
                value: &self.env,
            })
            .merge(Layer {
                name: "flags".into(),
                value: &self.flags,
            });
        self.figment = figment;
        self.check()
    }

    /// Checks every section (and the options of each section's chosen plugin) for types.
    fn check(&self) -> Result<(), ConfigError> {
        for section in &self.schema.sections {
            let chosen: Option<String> = self
                .get::<Option<String>>(&format!("{}.plugin", section.name))
                .ok()
                .flatten();
            for (plugin, check) in &section.checks {
                if plugin.is_none() || plugin.as_deref() == chosen.as_deref() {
                    check(&self.figment, &section.name)
                        .map_err(|e| self.convert_error(&section.name, *e))?;
                }
            }
        }
        Ok(())
    }

    /// Reads the config file again, keeping the other layers; errors leave `self` as it is.
    pub fn reload(&self) -> Result<Loaded, ConfigError> {
        let Some(path) = &self.file else {
            return Ok(self.clone());
        };
        let value = yaml::read_file(path)?;
        validate_keys(&self.schema, &value, &path.display().to_string())?;
        let mut next = self.clone();
        next.assemble(&value)?;
        Ok(next)
    }

    /// An environment variable as the application passed it to the builder (never read
    /// from the process here), e.g. for a plugin's default directory.
    pub fn env_var(&self, name: &str) -> Option<&str> {
        self.environment
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The config file in use, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The application's own flag values.
    pub fn app_flags(&self) -> &Flags {
        &self.app_flags
    }

    /// The schema this was loaded with.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// A component section.
    pub fn section<T: Component>(&self) -> Result<T, ConfigError> {
        self.get(T::SECTION)
    }

    /// The value at a dotted `path` (`server.register_ttl`, `myapp.greeting`).
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ConfigError> {
        self.figment
            .extract_inner::<T>(path)
            .map_err(|e| self.convert_error(path, e))
    }

    /// The raw value at `path`, or `None` when nothing sets it.
    pub fn raw(&self, path: &str) -> Option<Value> {
        let mut node = self.tree();
        for part in path.split('.').filter(|p| !p.is_empty()) {
            node = node.get(part)?.clone();
        }
        Some(node)
    }

    /// The whole effective tree.
    pub fn tree(&self) -> Value {
        self.figment
            .extract::<Value>()
            .unwrap_or(Value::Object(Map::new()))
    }

    /// The effective configuration as YAML.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(&self.tree()).unwrap_or_default()
    }

    fn convert_error(&self, path: &str, err: figment::Error) -> ConfigError {
        use figment::error::Kind;
        let err = err
            .into_iter()
            .next()
            .unwrap_or_else(|| figment::Error::from(String::new()));
        // figment appends the extracted path after the inner one: [inner.., path..].
        let asked: Vec<String> = path
            .split('.')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        let mut inner: Vec<String> = err.path.clone();
        if inner.ends_with(&asked) {
            inner.truncate(inner.len() - asked.len());
        }
        let key_parts: Vec<String> = asked.into_iter().chain(inner).collect();
        let key = key_parts.join(".");
        let origin = err
            .metadata
            .as_ref()
            .map(|m| m.name.to_string())
            .unwrap_or_else(|| "config".into());
        let schema_expected = key.split_once('.').and_then(|(section, rest)| {
            self.schema
                .section(section)?
                .all_options()
                .into_iter()
                .find(|s| s.key == rest)
                .map(|s| s.kind.expected().to_string())
        });
        let expected_from_schema = move || schema_expected;
        let found = self
            .raw(&key)
            .map(|v| match v {
                Value::String(s) => format!("{s:?}"),
                other => other.to_string(),
            })
            .unwrap_or_else(|| "nothing".into());
        match err.kind {
            Kind::InvalidType(actual, expected) => ConfigError::WrongType {
                origin,
                key,
                expected: expected_from_schema().unwrap_or(expected),
                found: actual.to_string(),
            },
            Kind::MissingField(field) => ConfigError::Invalid {
                key: format!("{key}.{field}"),
                reason: "is missing: give it a value".into(),
            },
            Kind::Message(msg) => ConfigError::WrongType {
                origin,
                key,
                expected: expected_from_schema().unwrap_or(msg),
                found,
            },
            other => ConfigError::WrongType {
                origin,
                key,
                expected: expected_from_schema().unwrap_or_else(|| other.to_string()),
                found,
            },
        }
    }
}
