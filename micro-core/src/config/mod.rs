//! Configuration: per-component sections, layered as built-in defaults < config file < env <
//! flags, with names generated from each component's config struct.
//!
//! Every component reads only its own section (`registry:`, `broker:`, ...). Each section has
//! `enabled`, `plugin`, the component's options, the options of the plugins compiled in for
//! it, and an optional `logger:` sub-section. The rest of the file belongs to the
//! application, read through [`AppConfig`].

//!
//! Plugin crates see only the contract half: [`Component`], the sections, durations,
//! [`ConfigError`] and [`Settings`]. The loader (figment, YAML, flags and env), the schema and
//! [`AppConfig`] (hot reload through notify) belong to the `service` feature.

mod durations;
mod error;
mod sections;
#[cfg(feature = "service")]
mod service;

pub use durations::{duration, option_duration, parse_duration};
pub use error::ConfigError;
pub use sections::*;
#[cfg(feature = "service")]
pub use service::*;

/// What kind of value an option takes; decides how flag and env text is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OptionKind {
    /// Any text.
    Text,
    /// `true`/`false` (a flag alone means `true`).
    Bool,
    /// A whole number.
    Integer,
    /// A number.
    Float,
    /// `5s`, `1m`, `250ms`, or bare seconds.
    Duration,
    /// Comma-separated values; repeated flags add up.
    List,
    /// `key=value` pairs, comma-separated; repeated flags add up.
    Map,
}

impl OptionKind {
    /// How `--help` shows the value.
    pub fn placeholder(self) -> &'static str {
        match self {
            OptionKind::Text => "VALUE",
            OptionKind::Bool => "[BOOL]",
            OptionKind::Integer => "NUMBER",
            OptionKind::Float => "NUMBER",
            OptionKind::Duration => "DURATION",
            OptionKind::List => "A,B,...",
            OptionKind::Map => "K=V,...",
        }
    }

    /// What a value of this kind looks like, for error messages.
    pub fn expected(self) -> &'static str {
        match self {
            OptionKind::Text => "text",
            OptionKind::Bool => "true or false",
            OptionKind::Integer => "a whole number",
            OptionKind::Float => "a number",
            OptionKind::Duration => "a duration such as 30, 5s, 1m or 250ms",
            OptionKind::List => "a comma-separated list",
            OptionKind::Map => "key=value pairs separated by commas",
        }
    }
}

/// Maps a Rust field type to its [`OptionKind`]; implemented for the types config structs use.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a config option",
    note = "use String, bool, an integer, f64, std::time::Duration, Vec<String> or BTreeMap<String, String>, or mark the field #[component(nested)] or #[component(skip)]"
)]
pub trait OptionType {
    /// The kind.
    const KIND: OptionKind;
}

macro_rules! option_types {
    ($($ty:ty => $kind:ident),* $(,)?) => {
        $(impl OptionType for $ty { const KIND: OptionKind = OptionKind::$kind; })*
    };
}

option_types! {
    String => Text, bool => Bool,
    u8 => Integer, u16 => Integer, u32 => Integer, u64 => Integer, usize => Integer,
    i32 => Integer, i64 => Integer, f64 => Float,
    std::time::Duration => Duration,
    Vec<String> => List,
    std::collections::BTreeMap<String, String> => Map,
    std::collections::HashMap<String, String> => Map,
}

impl<T: OptionType> OptionType for Option<T> {
    const KIND: OptionKind = T::KIND;
}

/// One option of a section: its key (dotted for sub-sections), kind, help and flag names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionSpec {
    /// Key within the section, e.g. `register_ttl` or `logger.level`.
    pub key: String,
    /// Value kind.
    pub kind: OptionKind,
    /// Help text (the field's doc comment).
    pub help: String,
    /// Flag name chosen by the struct (without prefix); `None` = derived from the key.
    pub flag: Option<String>,
    /// More flag names for the same option.
    pub aliases: Vec<String>,
}

impl OptionSpec {
    /// A spec; used by the derive macro.
    pub fn new(
        key: &str,
        kind: OptionKind,
        help: &str,
        flag: Option<&str>,
        aliases: &[&str],
    ) -> Self {
        OptionSpec {
            key: key.to_string(),
            kind,
            help: help.to_string(),
            flag: flag.map(str::to_string),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// The same option inside sub-section `parent` (its flag is derived again).
    pub fn nested_in(mut self, parent: &str) -> Self {
        self.key = format!("{parent}.{}", self.key);
        self.flag = None;
        self.aliases.clear();
        self
    }

    /// Flag names (without prefix) in `section`: the chosen or derived name, then aliases.
    ///
    /// Derived: `plugin` → `{section}`, `addresses` → `{section}_address`, other keys →
    /// `{section}_{key}` with dots as underscores.
    pub fn flag_names(&self, section: &str) -> Vec<String> {
        let primary = match &self.flag {
            Some(f) => f.clone(),
            None => {
                let mut parts: Vec<&str> = vec![section];
                let segments: Vec<&str> = self.key.split('.').collect();
                let (last, parents) = segments.split_last().unwrap_or((&"", &[]));
                parts.extend(parents.iter().copied());
                match *last {
                    "plugin" => {}
                    "addresses" => parts.push("address"),
                    other => parts.push(other),
                }
                parts.join("_")
            }
        };
        std::iter::once(primary)
            .chain(self.aliases.iter().cloned())
            .collect()
    }
}

/// A config struct of a component section, or of one plugin's options within a section.
///
/// Derive it with `#[derive(micro::Component)]`; do not derive `Default` as well.
pub trait Component:
    serde::Serialize + serde::de::DeserializeOwned + Default + Clone + Send + Sync + 'static
{
    /// The section it is read from, e.g. `registry`.
    const SECTION: &'static str;
    /// For a plugin's options: the plugin's name.
    const PLUGIN: Option<&'static str>;
    /// Its options, for flags, env vars, help and validation.
    fn options() -> Vec<OptionSpec>;
}

/// Options of a sub-section field (`logger:`); implemented for components and `Option`s
/// of them.
pub trait NestedOptions {
    /// The sub-section's options with keys relative to it.
    fn nested_options() -> Vec<OptionSpec>;
}

impl<T: Component> NestedOptions for T {
    fn nested_options() -> Vec<OptionSpec> {
        T::options()
    }
}

impl<T: Component> NestedOptions for Option<T> {
    fn nested_options() -> Vec<OptionSpec> {
        T::options()
    }
}

/// The effective configuration as a plugin reads it: merged values by dotted path and the
/// environment the application gave the builder. The service builder's loader implements it.
pub trait Settings: Send + Sync {
    /// The merged value at a dotted `path` (`registry`, `server.address`); `None` when
    /// nothing sets it.
    fn value(&self, path: &str) -> Option<serde_json::Value>;
    /// An environment variable as the application passed it to the builder (never read from
    /// the process here).
    fn env_var(&self, name: &str) -> Option<&str>;
    /// Where the configuration came from, for error messages (`config file greeter.yaml`).
    fn origin(&self) -> String;
}

/// Reads section `T` (a component's config or a plugin's options) out of `settings`.
///
/// The loader has already checked every section's types against the layers, naming the file
/// or variable of a wrong value, so an error here means `T` was not declared to the schema
/// (`Plugin::with_options`).
pub fn read_section<T: Component>(settings: &dyn Settings) -> Result<T, ConfigError> {
    let value = settings
        .value(T::SECTION)
        .unwrap_or_else(|| serde_json::Value::Object(Default::default()));
    serde_json::from_value(value).map_err(|e| ConfigError::Invalid {
        key: T::SECTION.to_string(),
        reason: format!(
            "{e} (in {}): give the key a value of the type the option takes, and declare a \
             plugin's options with Plugin::with_options so the loader checks them",
            settings.origin()
        ),
    })
}
