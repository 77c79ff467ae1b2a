//! Reading YAML config files (through `yaml_serde`) into a JSON value tree, and the figment
//! provider that carries one layer with its name.

use crate::config::ConfigError;
use figment::value::{Dict, Map as FigmentMap};
use figment::{Metadata, Profile, Provider};
use serde_json::Value;
use std::path::Path;

/// Reads and parses a YAML file; an empty file is an empty mapping.
pub(crate) fn read_file(path: &Path) -> Result<Value, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        file: file.clone(),
        reason: e.to_string(),
    })?;
    parse(&text, &file)
}

/// Parses YAML text named `file` in errors.
pub(crate) fn parse(text: &str, file: &str) -> Result<Value, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    let value: Value = serde_yaml::from_str(text).map_err(|e| ConfigError::Parse {
        file: file.to_string(),
        reason: e.to_string(),
    })?;
    match value {
        Value::Object(_) => Ok(value),
        Value::Null => Ok(Value::Object(Default::default())),
        other => Err(ConfigError::Parse {
            file: file.to_string(),
            reason: format!(
                "the top level must be a mapping of sections (registry:, broker:, ...), not {}",
                kind_name(&other)
            ),
        }),
    }
}

/// "a string", "a list", ... for messages.
pub(crate) fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// One named layer of configuration for figment.
pub(crate) struct Layer<'a> {
    pub name: String,
    pub value: &'a Value,
}

impl Provider for Layer<'_> {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> Result<FigmentMap<Profile, Dict>, figment::Error> {
        if !self.value.is_object() {
            return Ok(FigmentMap::new());
        }
        figment::providers::Serialized::defaults(self.value).data()
    }
}
