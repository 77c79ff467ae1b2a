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
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_writer(Output(output))
        .event_format(ZapFormat::new(&config.fields))
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

/// Formats each event as one JSON object, written straight to the line (no JSON tree is
/// built: the keys come out in zap's order, `level`, `ts`, `caller`, `msg`, then fields).
struct ZapFormat {
    /// The section's fields: (key, `,"key":"value"` already escaped).
    fields: Vec<(String, String)>,
}

impl ZapFormat {
    fn new(fields: &std::collections::BTreeMap<String, String>) -> Self {
        let fields = fields
            .iter()
            .map(|(k, v)| {
                let mut fragment = String::from(",");
                escaped(&mut fragment, k);
                fragment.push(':');
                escaped(&mut fragment, v);
                (k.clone(), fragment)
            })
            .collect();
        ZapFormat { fields }
    }
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
        writer.write_str(&line)
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

/// `text` as a JSON string (quotes and escapes included) appended to `out`.
fn escaped(out: &mut String, text: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in text.char_indices() {
        let escape = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if (c as u32) < 0x20 => "",
            _ => continue,
        };
        out.push_str(&text[start..i]);
        if escape.is_empty() {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push_str(escape);
        }
        start = i + c.len_utf8();
    }
    out.push_str(&text[start..]);
    out.push('"');
}

/// The JSON line of `event`, newline included.
fn line(event: &Event<'_>, fields: &[(String, String)], now: SystemTime) -> String {
    use std::fmt::Write as _;
    let meta = event.metadata();
    let mut own = FieldsOf::default();
    event.record(&mut own);
    let mut out = String::with_capacity(160);
    out.push_str("{\"level\":\"");
    out.push_str(level_name(meta.level()));
    let ts = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let _ = write!(
        out,
        "\",\"ts\":{}.{:06},\"caller\":",
        ts.as_secs(),
        ts.subsec_micros()
    );
    match (meta.file(), meta.line()) {
        (Some(file), Some(line)) => escaped(&mut out, &format!("{file}:{line}")),
        _ => escaped(&mut out, meta.target()),
    }
    out.push_str(",\"msg\":");
    escaped(&mut out, &own.message);
    for (key, fragment) in fields {
        if !own.fields.iter().any(|(k, _)| k == key) {
            out.push_str(fragment);
        }
    }
    for (key, value) in &own.fields {
        out.push(',');
        escaped(&mut out, key);
        out.push(':');
        match value {
            FieldValue::Text(text) => escaped(&mut out, text),
            FieldValue::Json(json) => out.push_str(json),
        }
    }
    out.push_str("}\n");
    out
}

/// An event field's value: text (to escape) or a JSON number or boolean.
enum FieldValue {
    Text(String),
    Json(String),
}

/// Collects an event's message and fields.
#[derive(Default)]
struct FieldsOf {
    message: String,
    fields: Vec<(&'static str, FieldValue)>,
}

impl FieldsOf {
    fn text(&mut self, field: &Field, text: String) {
        if field.name() == "message" {
            self.message = text;
        } else {
            self.fields.push((field.name(), FieldValue::Text(text)));
        }
    }
}

impl Visit for FieldsOf {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.fields
                .push((field.name(), FieldValue::Json(value.to_string())));
        } else {
            self.text(field, value.to_string());
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields
            .push((field.name(), FieldValue::Json(value.to_string())));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields
            .push((field.name(), FieldValue::Json(value.to_string())));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields
            .push((field.name(), FieldValue::Json(value.to_string())));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value.to_string());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.text(field, format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
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
    fn text_is_escaped_and_key_order_is_zaps() {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let dispatch = dispatch(
            &LoggerConfig::default(),
            LevelFilter::INFO,
            LogOutput::buffer(buffer.clone()),
        );
        let odd = "quote \" back \\ line\n tab\t bell\u{7} é";
        tracing::dispatcher::with_default(&dispatch, || tracing::info!(odd, f = 1.5, "{odd}"));
        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        assert!(text.starts_with("{\"level\":\"info\",\"ts\":"), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");
        let line: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(line["msg"], odd);
        assert_eq!(line["odd"], odd);
        assert_eq!(line["f"], 1.5);
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
