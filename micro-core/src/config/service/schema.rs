//! The config schema: every section micro knows in a build, with its options, defaults and
//! the options of each plugin compiled in for it.

use crate::config::sections::*;
use crate::config::{Component, OptionSpec};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Checks the types of one section of the merged layers (`extract_inner` of the section's
/// config type); the loader turns its error into a [`ConfigError`] naming the layer and key.
pub(super) type Check = fn(&Figment, &str) -> Result<(), Box<figment::Error>>;

fn check_section<T: DeserializeOwned>(
    figment: &Figment,
    path: &str,
) -> Result<(), Box<figment::Error>> {
    figment
        .extract_inner::<T>(path)
        .map(|_| ())
        .map_err(Box::new)
}

/// One component section: its options, defaults, and the options of the plugins compiled in
/// for it.
#[derive(Clone)]
pub struct SectionSchema {
    /// Section name.
    pub name: String,
    /// The component's own options.
    pub options: Vec<OptionSpec>,
    /// Built-in defaults of the section.
    pub defaults: Value,
    /// `(plugin, options, defaults)` for each plugin compiled in for this section.
    pub plugins: Vec<(String, Vec<OptionSpec>, Value)>,
    pub(super) checks: Vec<(Option<String>, Check)>,
}

impl std::fmt::Debug for SectionSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SectionSchema")
            .field("name", &self.name)
            .field("options", &self.options)
            .finish()
    }
}

impl SectionSchema {
    /// The schema of component config `T`.
    pub fn of<T: Component>() -> Self {
        SectionSchema {
            name: T::SECTION.to_string(),
            options: T::options(),
            defaults: serde_json::to_value(T::default()).unwrap_or(Value::Null),
            plugins: Vec::new(),
            checks: vec![(None, check_section::<T> as Check)],
        }
    }

    /// The component's options plus every compiled plugin's, each key once.
    pub fn all_options(&self) -> Vec<OptionSpec> {
        let mut out = self.options.clone();
        for (_, options, _) in &self.plugins {
            for spec in options {
                if !out.iter().any(|o| o.key == spec.key) {
                    out.push(spec.clone());
                }
            }
        }
        out
    }

    /// The default of `key` as text, if it has a non-empty one.
    pub fn default_of(&self, key: &str) -> Option<String> {
        let lookup = |root: &Value| {
            let mut node = root;
            for part in key.split('.') {
                node = node.get(part)?;
            }
            Some(node.clone())
        };
        let value = lookup(&self.defaults)
            .or_else(|| self.plugins.iter().find_map(|(_, _, d)| lookup(d)))?;
        match value {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s),
            Value::Array(a) if a.is_empty() => None,
            Value::Object(o) if o.is_empty() => None,
            other => Some(other.to_string()),
        }
    }
}

/// Every section micro knows in this build.
#[derive(Debug, Clone)]
pub struct Schema {
    /// Sections in build order.
    pub sections: Vec<SectionSchema>,
}

impl Schema {
    /// The core sections: logger, registry, selector, transport, broker, store, events, sync,
    /// auth, client, server.
    pub fn core() -> Self {
        Schema {
            sections: vec![
                SectionSchema::of::<LoggerConfig>(),
                SectionSchema::of::<RegistryConfig>(),
                SectionSchema::of::<SelectorConfig>(),
                SectionSchema::of::<TransportConfig>(),
                SectionSchema::of::<BrokerConfig>(),
                SectionSchema::of::<StoreConfig>(),
                SectionSchema::of::<EventsConfig>(),
                SectionSchema::of::<SyncConfig>(),
                SectionSchema::of::<AuthConfig>(),
                SectionSchema::of::<ClientConfig>(),
                SectionSchema::of::<ServerConfig>(),
            ],
        }
    }

    /// Adds the options of plugin `P` (checked when the section selects that plugin).
    pub fn add_plugin<P: Component>(&mut self, plugin: &str) {
        let Some(section) = self.sections.iter_mut().find(|s| s.name == P::SECTION) else {
            return;
        };
        let defaults = serde_json::to_value(P::default()).unwrap_or(Value::Null);
        section
            .plugins
            .push((plugin.to_string(), P::options(), defaults));
        section
            .checks
            .push((Some(plugin.to_string()), check_section::<P> as Check));
    }

    pub(super) fn section(&self, name: &str) -> Option<&SectionSchema> {
        self.sections.iter().find(|s| s.name == name)
    }
}
