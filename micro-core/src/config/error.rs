//! What can be wrong with configuration, each case naming where and what to do.

use std::fmt;

/// A configuration problem. Every variant says where (file, section, key, flag or env var)
/// and what would be right.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key in a component section that neither the component nor a compiled-in plugin
    /// knows.
    UnknownKey {
        /// The config file.
        file: String,
        /// The section (`registry`, `server.logger`, ...).
        section: String,
        /// The unknown key.
        key: String,
        /// The keys that are valid there.
        valid: Vec<String>,
    },
    /// A top-level section that is not a component's but is spelt almost like one.
    MisspeltSection {
        /// The config file.
        file: String,
        /// The section as written (`registy`).
        key: String,
        /// The component section it is close to (`registry`).
        suggestion: String,
    },
    /// A value of the wrong type or shape.
    WrongType {
        /// Where the value came from: `config file x.yaml`, `env MICRO_X`, `flag --x`.
        origin: String,
        /// The full key, e.g. `client.pool_size`.
        key: String,
        /// What the key needs.
        expected: String,
        /// What was found.
        found: String,
    },
    /// A component asks for a plugin that this build does not contain.
    PluginNotCompiled {
        /// The component (`registry`).
        component: String,
        /// The plugin asked for (`nats`).
        plugin: String,
        /// Plugins of that component compiled in.
        compiled: Vec<String>,
        /// The Cargo feature of the `micro` crate that would add it, when one exists.
        feature: Option<String>,
        /// Micro plans such a plugin but has not written it yet.
        planned: bool,
    },
    /// A flag nobody declared.
    UnknownFlag {
        /// The flag as given.
        flag: String,
        /// A close known flag, if any.
        suggestion: Option<String>,
    },
    /// A flag that needs a value was last on the command line.
    MissingValue {
        /// The flag.
        flag: String,
    },
    /// A positional argument where only flags are taken.
    UnexpectedArgument {
        /// The argument.
        argument: String,
    },
    /// The config file cannot be read.
    Read {
        /// The path.
        file: String,
        /// Why.
        reason: String,
    },
    /// The config file is not valid YAML (or its top level is not a mapping).
    Parse {
        /// The path.
        file: String,
        /// The parser's message, with line and column.
        reason: String,
    },
    /// A value that has the right type but is not allowed.
    Invalid {
        /// The full key.
        key: String,
        /// Why, and what is allowed.
        reason: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::UnknownKey {
                file,
                section,
                key,
                valid,
            } => write!(
                f,
                "{file}: unknown key {key:?} in section {section:?}; valid keys are: {}",
                valid.join(", ")
            ),
            ConfigError::MisspeltSection {
                file,
                key,
                suggestion,
            } => write!(
                f,
                "{file}: unknown top-level section {key:?}: did you mean {suggestion:?}? \
                 (sections of the application must not be spelt this close to a component's; \
                 rename it)"
            ),
            ConfigError::WrongType {
                origin,
                key,
                expected,
                found,
            } => write!(f, "{origin}: key {key:?} needs {expected}, but has {found}"),
            ConfigError::PluginNotCompiled {
                component,
                plugin,
                compiled,
                feature,
                planned,
            } => {
                let compiled = if compiled.is_empty() {
                    "none".to_string()
                } else {
                    compiled.join(", ")
                };
                match feature {
                    Some(feature) => write!(
                        f,
                        "{component} plugin {plugin:?} is not compiled in (compiled {component} plugins: {compiled}); enable the Cargo feature \"{feature}\" of the micro crate, or choose a compiled plugin with {component}.plugin"
                    ),
                    None if *planned => write!(
                        f,
                        "{component} plugin {plugin:?} is not available yet: micro plans it but no release has it; choose a compiled plugin with {component}.plugin (compiled {component} plugins: {compiled})"
                    ),
                    None => write!(
                        f,
                        "micro has no {component} plugin {plugin:?}; choose one with {component}.plugin (compiled {component} plugins: {compiled}), or add your own with Plugins::add"
                    ),
                }
            }
            ConfigError::UnknownFlag { flag, suggestion } => {
                write!(f, "unknown flag {flag}")?;
                if let Some(s) = suggestion {
                    write!(f, " (did you mean --{s}?)")?;
                }
                write!(f, "; see --help for the flags")
            }
            ConfigError::MissingValue { flag } => {
                write!(f, "flag {flag} needs a value: {flag} VALUE or {flag}=VALUE")
            }
            ConfigError::UnexpectedArgument { argument } => write!(
                f,
                "unexpected argument {argument:?}: options are given as --name value; see --help"
            ),
            ConfigError::Read { file, reason } => {
                write!(f, "cannot read config file {file}: {reason}")
            }
            ConfigError::Parse { file, reason } => {
                write!(f, "config file {file} is not valid YAML: {reason}")
            }
            ConfigError::Invalid { key, reason } => write!(f, "config key {key:?}: {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for crate::Error {
    fn from(err: ConfigError) -> Self {
        crate::Error::of_kind(crate::ErrorKind::Config, "go.micro.config", err.to_string())
            .with_source(err)
    }
}
