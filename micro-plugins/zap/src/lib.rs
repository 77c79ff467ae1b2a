//! The `zap` log format: one JSON object per line, as go-micro's zap logger writes them.
//!
//! `logger: { plugin: zap }` (or `plugin: json`), in the top-level `logger:` section or in
//! any component's own (`broker: { logger: { plugin: zap } }`), selects it for that
//! component only; text stays the default. Nothing is installed globally: each component's
//! logger is its own `tracing::Dispatch`.
//!
//! A line: `{"level":"info","ts":1764950400.123,"caller":"src/broker.rs:42","msg":"...",
//! "component":"broker","topic":"orders"}`: the level (`debug`, `info`, `warn`, `error`;
//! trace is written as `debug`, zap having no trace level), `ts` in seconds since the epoch
//! (zap's production encoder), `caller` as `file:line` of the log statement, `msg`, then the
//! section's `fields` and the event's own fields (an event field of the same name wins).
//!
//! `caller_skip_count` is accepted and has no effect: zap walks the stack to find the caller
//! and skips frames of logging helpers, whereas tracing records each log statement's file and
//! line where it is written, so there are no frames to skip.

use micro_core::Plugin;
use micro_core::config::LoggerConfig;
use micro_core::logger::LogOutput;
use serde_json::{Map, Value};
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Dispatch, Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// The plugins: `zap` and its alias `json`.
pub fn plugins() -> micro_core::Plugins {
    micro_core::Plugins::new()
        .with(Plugin::logger("zap", "zap", dispatch))
        .with(Plugin::logger("json", "zap", dispatch))
}

/// The dispatch of a `logger:` section with the zap format.
pub fn dispatch(config: &LoggerConfig, level: LevelFilter, output: LogOutput) -> Dispatch {
    if !config.enabled || level == LevelFilter::OFF {
        return Dispatch::none();
    }
    let fields = config
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(Output(output))
        .event_format(ZapFormat { fields })
        .finish();
    Dispatch::new(subscriber)
}

/// `LogOutput` as the writer the subscriber asks for each line.
struct Output(LogOutput);

impl<'a> MakeWriter<'a> for Output {
    type Writer = Box<dyn Write + Send>;
    fn make_writer(&'a self) -> Self::Writer {
        self.0.writer()
    }
}

/// Formats each event as one JSON object.
struct ZapFormat {
    fields: Map<String, Value>,
}

impl<S, N> FormatEvent<S, N> for ZapFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let line = line(event, &self.fields, SystemTime::now());
        writeln!(writer, "{line}")
    }
}

/// zap's name of a level.
fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        _ => "debug",
    }
}

/// The JSON line of `event`.
fn line(event: &Event<'_>, fields: &Map<String, Value>, now: SystemTime) -> Value {
    let meta = event.metadata();
    let mut own = FieldsOf(Map::new());
    event.record(&mut own);
    let mut out = Map::new();
    out.insert("level".into(), level_name(meta.level()).into());
    let ts = now
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    out.insert("ts".into(), ts.into());
    let caller = match (meta.file(), meta.line()) {
        (Some(file), Some(line)) => format!("{file}:{line}"),
        _ => meta.target().to_string(),
    };
    out.insert("caller".into(), caller.into());
    let msg = own
        .0
        .remove("message")
        .unwrap_or(Value::String(String::new()));
    out.insert("msg".into(), msg);
    for (k, v) in fields {
        out.insert(k.clone(), v.clone());
    }
    for (k, v) in own.0 {
        out.insert(k, v);
    }
    Value::Object(out)
}

/// Collects an event's fields as JSON values.
struct FieldsOf(Map<String, Value>);

impl Visit for FieldsOf {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn lines(buffer: &Arc<Mutex<Vec<u8>>>) -> Vec<Value> {
        let bytes = buffer.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
            .collect()
    }

    #[test]
    fn each_event_is_one_json_line_with_zaps_keys() {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let config = LoggerConfig {
            fields: [("component".to_string(), "broker".to_string())].into(),
            ..LoggerConfig::default()
        };
        let dispatch = dispatch(
            &config,
            LevelFilter::INFO,
            LogOutput::buffer(buffer.clone()),
        );
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::debug!("not at info");
            tracing::info!(topic = "orders", n = 3, ok = true, "published \"x\"");
            tracing::error!(component = "override", "failed");
        });
        let lines = lines(&buffer);
        assert_eq!(lines.len(), 2, "{lines:?}");
        let first = &lines[0];
        assert_eq!(first["level"], "info");
        assert_eq!(first["msg"], "published \"x\"");
        assert_eq!(first["component"], "broker");
        assert_eq!(first["topic"], "orders");
        assert_eq!(first["n"], 3);
        assert_eq!(first["ok"], true);
        assert!(first["ts"].as_f64().unwrap() > 1.7e9, "{first}");
        let caller = first["caller"].as_str().unwrap();
        assert!(
            caller.starts_with("micro-plugins/zap/src/lib.rs:")
                || caller.starts_with("src/lib.rs:"),
            "{caller}"
        );
        assert_eq!(lines[1]["level"], "error");
        assert_eq!(lines[1]["component"], "override", "the event's field wins");
    }

    #[test]
    fn off_and_disabled_log_nothing() {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let disabled = LoggerConfig {
            enabled: false,
            ..LoggerConfig::default()
        };
        for (config, level) in [
            (&disabled, LevelFilter::INFO),
            (&LoggerConfig::default(), LevelFilter::OFF),
        ] {
            let dispatch = dispatch(config, level, LogOutput::buffer(buffer.clone()));
            tracing::dispatcher::with_default(&dispatch, || tracing::error!("nothing"));
        }
        assert!(buffer.lock().unwrap().is_empty());
    }
}
