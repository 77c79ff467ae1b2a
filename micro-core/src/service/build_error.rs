//! Why a service could not be built: its configuration is wrong, or a component's plugin
//! failed to start.

use crate::Error;
use crate::config::ConfigError;
use std::fmt;

/// What [`ServiceBuilder::build`](super::ServiceBuilder::build) reports when it fails.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum BuildError {
    /// The configuration is wrong; the error names the file, flag or env var and the key.
    Config(ConfigError),
    /// A component's plugin was configured correctly but could not start (e.g. its server
    /// refused the connection), or the server refused a handler.
    Start {
        /// The component (`registry`, `server`, ...).
        section: String,
        /// The plugin that failed (`nats`).
        plugin: String,
        /// What went wrong (boxed: keeps `Result`s of this type small).
        error: Box<Error>,
    },
}

impl BuildError {
    /// A start failure of `plugin` for `section`; an error that carries a [`ConfigError`]
    /// (a plugin reading its options) is reported as the config error it is.
    pub(crate) fn start(section: &str, plugin: &str, error: Error) -> Self {
        if let Some(config) = error.find_source::<ConfigError>() {
            return BuildError::Config(config.clone());
        }
        BuildError::Start {
            section: section.to_string(),
            plugin: plugin.to_string(),
            error: Box::new(error),
        }
    }

    /// The config error, when that is what this is.
    pub fn as_config(&self) -> Option<&ConfigError> {
        match self {
            BuildError::Config(err) => Some(err),
            BuildError::Start { .. } => None,
        }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Config(err) => err.fmt(f),
            BuildError::Start {
                section,
                plugin,
                error,
            } => write!(
                f,
                "{section} plugin {plugin:?} failed to start: {error}; check that what it connects to is running, or choose another plugin with {section}.plugin"
            ),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Config(err) => Some(err),
            BuildError::Start { error, .. } => Some(error.as_ref()),
        }
    }
}

impl From<ConfigError> for BuildError {
    fn from(err: ConfigError) -> Self {
        BuildError::Config(err)
    }
}

impl From<BuildError> for Error {
    fn from(err: BuildError) -> Self {
        match err {
            BuildError::Config(config) => config.into(),
            BuildError::Start { ref error, .. } => {
                Error::new(error.id.clone(), error.code, err.to_string())
                    .with_kind(error.kind())
                    .with_source(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn a_plugin_option_error_stays_a_config_error() {
        let config = ConfigError::Invalid {
            key: "transport.max_frame_size".into(),
            reason: "too small".into(),
        };
        let from_factory: Error = config.clone().into();
        assert_eq!(from_factory.kind(), ErrorKind::Config);
        let built = BuildError::start("transport", "tcp", from_factory);
        assert_eq!(built.as_config(), Some(&config));
    }

    #[test]
    fn a_start_failure_names_section_plugin_and_cause() {
        let refused = Error::transport("go.micro.registry", "connection refused");
        let built = BuildError::start("registry", "nats", refused);
        let text = built.to_string();
        assert!(
            text.contains("registry plugin \"nats\" failed to start"),
            "{text}"
        );
        assert!(text.contains("connection refused"), "{text}");
        assert!(built.as_config().is_none());
        let err = Error::from(built);
        assert_eq!(err.kind(), ErrorKind::Transport);
        assert!(err.find_source::<BuildError>().is_some());
    }
}
