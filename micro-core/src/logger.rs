//! Logging per component: each component gets its own `tracing::Dispatch` built from its
//! `logger:` section (level, fields, format). No global subscriber is ever installed; code
//! logs inside [`Logger::in_scope`] or instruments futures with [`Logger::dispatch`].

use crate::config::{ConfigError, LoggerConfig};
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing::Dispatch;
use tracing::level_filters::LevelFilter;

/// Where log lines go: stderr by default; tests pass a buffer.
#[derive(Clone)]
pub struct LogOutput(Arc<dyn Fn() -> Box<dyn Write + Send> + Send + Sync>);

impl std::fmt::Debug for LogOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogOutput")
    }
}

impl LogOutput {
    /// Standard error.
    pub fn stderr() -> Self {
        LogOutput(Arc::new(|| Box::new(std::io::stderr())))
    }

    /// A custom writer factory.
    pub fn new(make: impl Fn() -> Box<dyn Write + Send> + Send + Sync + 'static) -> Self {
        LogOutput(Arc::new(make))
    }

    /// Appends every line to a shared buffer.
    pub fn buffer(buffer: Arc<Mutex<Vec<u8>>>) -> Self {
        LogOutput::new(move || Box::new(SharedBuffer(buffer.clone())))
    }

    /// A writer for one log line (a log format's `MakeWriter` calls this).
    pub fn writer(&self) -> Box<dyn Write + Send> {
        (self.0)()
    }
}

struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A component's logger.
#[derive(Clone)]
pub struct Logger {
    dispatch: Dispatch,
    component: String,
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger")
            .field("component", &self.component)
            .finish()
    }
}

impl Logger {
    /// A logger over an existing dispatch.
    pub fn new(component: impl Into<String>, dispatch: Dispatch) -> Self {
        Logger {
            dispatch,
            component: component.into(),
        }
    }

    /// A logger that drops everything.
    pub fn none() -> Self {
        Logger::new("none", Dispatch::none())
    }

    /// The component it belongs to.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// The dispatch, e.g. for `future.with_subscriber(logger.dispatch().clone())`.
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    /// Runs `f` with this logger receiving its `tracing` events.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        tracing::dispatcher::with_default(&self.dispatch, f)
    }
}

/// Parses a level name; `fatal` and `panic` mean `error`.
pub fn parse_level(level: &str) -> Option<LevelFilter> {
    Some(match level.to_ascii_lowercase().as_str() {
        "trace" => LevelFilter::TRACE,
        "debug" => LevelFilter::DEBUG,
        "info" | "" => LevelFilter::INFO,
        "warn" | "warning" => LevelFilter::WARN,
        "error" | "fatal" | "panic" => LevelFilter::ERROR,
        "off" | "none" => LevelFilter::OFF,
        _ => return None,
    })
}

/// The level of `config`, or an error naming `key`.
pub fn level_of(config: &LoggerConfig, key: &str) -> Result<LevelFilter, ConfigError> {
    parse_level(&config.level).ok_or_else(|| ConfigError::Invalid {
        key: key.to_string(),
        reason: format!(
            "unknown log level {:?}: use trace, debug, info, warn, error or fatal",
            config.level
        ),
    })
}
