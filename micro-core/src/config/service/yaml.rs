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

/// The deepest nesting a config file may use, in flow brackets or in columns of indentation;
/// the YAML parser takes far too long on files nested hundreds of thousands deep.
const MAX_DEPTH: usize = 1000;

/// `Some(depth)` when `text` nests deeper than [`MAX_DEPTH`]: by indentation (a block level
/// takes at least one column) or by `[`/`{` outside quotes and comments. Brackets inside plain
/// text may count too, which only matters beyond the limit.
fn too_deep(text: &str) -> Option<usize> {
    let mut flow = 0usize;
    for line in text.lines() {
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        if indent > MAX_DEPTH {
            return Some(indent);
        }
        let mut quote = None;
        let mut previous = ' ';
        for c in line.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '#') if previous.is_whitespace() => break,
                (None, '[' | '{') => {
                    flow += 1;
                    if flow > MAX_DEPTH {
                        return Some(flow);
                    }
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
            previous = c;
        }
    }
    None
}

/// Parses YAML text named `file` in errors.
pub(crate) fn parse(text: &str, file: &str) -> Result<Value, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    if let Some(depth) = too_deep(text) {
        return Err(ConfigError::Parse {
            file: file.to_string(),
            reason: format!(
                "nested {depth} levels deep or more, beyond the {MAX_DEPTH} a config file may \
                 use: a config is a few levels deep, check the file"
            ),
        });
    }
    let value: Value = serde_yaml::from_str(text).map_err(|e| {
        let reason = e.to_string();
        out_of_range(&reason, file).unwrap_or_else(|| ConfigError::Parse {
            file: file.to_string(),
            reason,
        })
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

/// The YAML reader's error for a whole number beyond 64 bits (`KEY: JSON number out of range
/// at line L column C`), as the wrong type for that key: the file is valid YAML.
fn out_of_range(reason: &str, file: &str) -> Option<ConfigError> {
    let (key, rest) = reason.split_once(": ")?;
    let at = rest.strip_prefix("JSON number out of range")?;
    Some(ConfigError::WrongType {
        origin: format!("config file {file}"),
        key: key.to_string(),
        expected: "a number within 64 bits".to_string(),
        found: format!("a longer number{at}"),
    })
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

#[cfg(test)]
mod depth_tests {
    use super::*;

    #[test]
    fn deep_nesting_is_an_error_naming_the_file() {
        for (open, close) in [("[", "]"), ("{a: ", "}")] {
            let depth = 200_000;
            let text = format!("app: {}1{}\n", open.repeat(depth), close.repeat(depth));
            let err = parse(&text, "deep.yaml").unwrap_err();
            let text = err.to_string();
            assert!(text.contains("deep.yaml"), "{text}");
        }
        let block: String = (0..2_000)
            .map(|i| format!("{}k:\n", " ".repeat(i)))
            .collect();
        assert!(parse(&format!("app:\n{block}"), "block.yaml").is_err());
    }

    #[test]
    fn ordinary_files_with_brackets_in_text_still_parse() {
        let text = "app:\n  pattern: \"^[a-z]+[\"\n  list: [1, [2, {a: 3}]]\n  note: '{{'  # a [ comment\n";
        let value = parse(text, "ok.yaml").unwrap();
        assert_eq!(value["app"]["pattern"], "^[a-z]+[");
        assert_eq!(value["app"]["list"][1][1]["a"], 3);
        let nested = format!("app: {}1{}\n", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        // At the limit the scan lets it through; the parser then decides.
        assert!(too_deep(&nested).is_none());
        let _ = parse(&nested, "limit.yaml");
    }

    #[test]
    fn a_number_beyond_64_bits_is_the_wrong_type_for_its_key() {
        let err = parse("client:\n  pool_size: 19000000000000000000\n", "big.yaml").unwrap_err();
        match err {
            ConfigError::WrongType { origin, key, .. } => {
                assert_eq!(key, "client.pool_size");
                assert!(origin.contains("big.yaml"), "{origin}");
            }
            other => panic!("expected WrongType, got {other:?}"),
        }
        // Broken YAML stays a parse error.
        let err = parse("client:\n  pool_size: [1\n", "broken.yaml").unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err:?}");
    }
}
