//! Assembles every section's logger (the `service` feature): the top-level `logger:` laid
//! under each section's own, the level, and the format (text here, or a `logger` plugin).

use crate::config::{ConfigError, Loaded, LoggerConfig};
use crate::logger::{LogOutput, Logger, level_of};
use crate::plugin::{PluginFactory, Plugins};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use tracing::level_filters::LevelFilter;
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

impl<'a> MakeWriter<'a> for LogOutput {
    type Writer = Box<dyn Write + Send>;
    fn make_writer(&'a self) -> Self::Writer {
        self.writer()
    }
}

/// The logger config of `section`: the top-level `logger:` with the section's own
/// `logger:` laid over it key by key (`fields` merge).
pub fn config_for(loaded: &Loaded, section: &str) -> Result<LoggerConfig, ConfigError> {
    let mut merged = match loaded.raw("logger") {
        Some(Value::Object(map)) => map,
        _ => Default::default(),
    };
    if section != "logger"
        && let Some(Value::Object(own)) = loaded.raw(&format!("{section}.logger"))
    {
        for (key, value) in own {
            match (merged.get_mut(&key), value) {
                (Some(Value::Object(old)), Value::Object(new)) => old.extend(new),
                (_, value) => {
                    merged.insert(key, value);
                }
            }
        }
    }
    serde_json::from_value(Value::Object(merged)).map_err(|e| ConfigError::Invalid {
        key: format!("{section}.logger"),
        reason: e.to_string(),
    })
}

/// Text lines: `time LEVEL k=v (static fields) message event-fields`.
struct TextFormat {
    fields: String,
}

impl<S, N> FormatEvent<S, N> for TextFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        SystemTime.format_time(&mut writer)?;
        write!(writer, " {:>5}{} ", event.metadata().level(), self.fields)?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Builds the text-format dispatch of a logger config.
pub fn text_dispatch(config: &LoggerConfig, level: LevelFilter, output: LogOutput) -> Dispatch {
    if !config.enabled || level == LevelFilter::OFF {
        return Dispatch::none();
    }
    let fields: String = config
        .fields
        .iter()
        .map(|(k, v)| format!(" {k}={v}"))
        .collect();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(output)
        .event_format(TextFormat { fields })
        .finish();
    Dispatch::new(subscriber)
}

/// Every section's logger, built once.
pub struct Loggers {
    /// Logger of each section.
    pub by_section: BTreeMap<String, Logger>,
}

impl Loggers {
    /// Builds every section's logger from its config (a `logger` plugin by name, or text).
    pub fn new(plugins: &Plugins, loaded: &Loaded, output: LogOutput) -> Result<Self, ConfigError> {
        let mut by_section = BTreeMap::new();
        for section in loaded.schema().sections.iter().map(|s| s.name.clone()) {
            let cfg = config_for(loaded, &section)?;
            let key = if section == "logger" {
                "logger.level".to_string()
            } else {
                format!("{section}.logger.level")
            };
            let level = level_of(&cfg, &key)?;
            let dispatch = match cfg.plugin.as_str() {
                "default" | "text" | "" => text_dispatch(&cfg, level, output.clone()),
                other => match &plugins.find("logger", other)?.factory {
                    PluginFactory::Logger(f) if cfg.enabled => f(&cfg, level, output.clone()),
                    _ => tracing::Dispatch::none(),
                },
            };
            by_section.insert(section.clone(), Logger::new(section, dispatch));
        }
        Ok(Loggers { by_section })
    }

    /// The logger of `section` (one that drops everything when there is none).
    pub fn get(&self, section: &str) -> Logger {
        self.by_section
            .get(section)
            .cloned()
            .unwrap_or_else(Logger::none)
    }
}
