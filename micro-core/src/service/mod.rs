//! The service: a builder that loads configuration and builds every enabled component from
//! the plugin table, and a runner that starts, waits for a signal, and stops.

mod build_error;
mod builder;
pub mod loggers;

pub use build_error::BuildError;
pub use builder::ServiceBuilder;

use crate::Result;
use crate::config::{AppConfig, Flags};
use crate::logger::Logger;
use crate::plugin::{Components, Plugins, ServiceInfo};
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use tokio::sync::Notify;

/// Where a service builder gets its plugin table; the `micro` facade's implementation lists
/// the plugins compiled in by Cargo features.
pub trait PluginSource {
    /// The plugins.
    fn plugins() -> Plugins;
}

/// No plugins: the bare core (add them with [`ServiceBuilder::plugins`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPlugins;

impl PluginSource for NoPlugins {
    fn plugins() -> Plugins {
        Plugins::new()
    }
}

/// A lifecycle hook.
pub type Hook = Arc<dyn Fn() -> BoxFuture<'static, Result<()>> + Send + Sync>;

#[derive(Default, Clone)]
pub(crate) struct Hooks {
    pub(crate) before_start: Vec<Hook>,
    pub(crate) after_start: Vec<Hook>,
    pub(crate) before_stop: Vec<Hook>,
    pub(crate) after_stop: Vec<Hook>,
}

/// What [`ServiceBuilder::try_build`] produced.
pub enum Built<P = NoPlugins> {
    /// A service ready to run.
    Service(Service<P>),
    /// `--help`: the text to print.
    Help(String),
    /// `--version`: the text to print.
    Version(String),
    /// `--dump_config`: the effective configuration as YAML.
    DumpConfig(String),
}

pub(crate) struct Inner {
    pub(crate) info: ServiceInfo,
    pub(crate) config: AppConfig,
    pub(crate) components: Components,
    pub(crate) hooks: Hooks,
    pub(crate) logger: Logger,
    pub(crate) loggers: BTreeMap<String, Logger>,
    pub(crate) shutdown: Notify,
    pub(crate) local: crate::in_process::LocalServices,
    pub(crate) local_impls: Vec<crate::in_process::LocalImpl>,
    pub(crate) middleware: crate::middleware::Middleware,
}

/// A built service. Cheap to clone; clones share everything.
pub struct Service<P = NoPlugins> {
    pub(crate) inner: Arc<Inner>,
    pub(crate) _source: PhantomData<fn() -> P>,
}

impl<P> Clone for Service<P> {
    fn clone(&self) -> Self {
        Service {
            inner: self.inner.clone(),
            _source: PhantomData,
        }
    }
}

async fn run_hooks(hooks: &[Hook]) -> Result<()> {
    for hook in hooks {
        hook().await?;
    }
    Ok(())
}

impl<P: PluginSource> Service<P> {
    /// A builder with the plugin table of `P`.
    pub fn builder() -> ServiceBuilder<P> {
        ServiceBuilder::new(P::plugins())
    }
}

impl<P> Service<P> {
    /// Service name.
    pub fn name(&self) -> &str {
        &self.inner.info.name
    }

    /// Version.
    pub fn version(&self) -> &str {
        &self.inner.info.version
    }

    /// Node id.
    pub fn id(&self) -> &str {
        &self.inner.info.id
    }

    /// The configuration, including the application's own sections.
    pub fn config(&self) -> &AppConfig {
        &self.inner.config
    }

    /// The application's own flags.
    pub fn flags(&self) -> Flags {
        self.inner.config.loaded().app_flags().clone()
    }

    /// What generated clients need to call services: the RPC client, the in-process table
    /// and this service's call middleware.
    pub fn caller(&self) -> crate::in_process::Caller {
        crate::in_process::Caller {
            client: self.inner.components.client.clone(),
            local: self.inner.local.clone(),
            middleware: self.inner.middleware.clone(),
        }
    }

    /// Every component (disabled ones are `None`).
    pub fn components(&self) -> &Components {
        &self.inner.components
    }

    /// The logger of a component section (`registry`, `server`, ...), or the top-level one.
    pub fn logger(&self, section: &str) -> Logger {
        self.inner
            .loggers
            .get(section)
            .cloned()
            .unwrap_or_else(|| self.inner.logger.clone())
    }

    /// Connects the broker, starts the server (which registers), runs the hooks.
    pub async fn start(&self) -> Result<()> {
        let c = &self.inner.components;
        run_hooks(&self.inner.hooks.before_start).await?;
        if let Some(broker) = &c.broker {
            broker.connect().await?;
        }
        if let Some(server) = &c.server {
            server.start().await?;
        }
        let inner = &self.inner;
        inner.local.publish(
            &inner.info.name,
            &inner.local_impls,
            &inner.middleware.handler,
        );
        run_hooks(&self.inner.hooks.after_start).await?;
        self.inner.logger.in_scope(
            || tracing::info!(service = %self.name(), id = %self.id(), "service started"),
        );
        Ok(())
    }

    /// Stops the server (deregistering and draining), disconnects the broker, runs the hooks.
    pub async fn stop(&self) -> Result<()> {
        let c = &self.inner.components;
        run_hooks(&self.inner.hooks.before_stop).await?;
        self.inner.local.withdraw(&self.inner.info.name);
        if let Some(server) = &c.server {
            server.stop().await?;
        }
        if let Some(broker) = &c.broker {
            broker.disconnect().await?;
        }
        run_hooks(&self.inner.hooks.after_stop).await?;
        self.inner
            .logger
            .in_scope(|| tracing::info!(service = %self.name(), "service stopped"));
        Ok(())
    }

    /// Asks a running [`Service::run`] to stop, as SIGTERM would.
    pub fn shutdown(&self) {
        self.inner.shutdown.notify_one();
    }

    /// Starts, waits for SIGINT, SIGTERM or [`Service::shutdown`], then stops gracefully
    /// (see [`Service::stop`]). A second signal (or `shutdown`) during the stop stops at once:
    /// the drain is abandoned, open connections are closed, and the error says so.
    pub async fn run(&self) -> Result<()> {
        // Signals are taken over before the service starts: one that arrives while it
        // starts, or as soon as it serves, stops it gracefully instead of killing the
        // process (the default action of SIGTERM) with requests in flight.
        let mut signals = Signals::new();
        self.start().await?;
        signals.next(&self.inner.shutdown).await;
        tokio::select! {
            result = self.stop() => result,
            _ = signals.next(&self.inner.shutdown) => {
                self.inner.logger.in_scope(|| {
                    tracing::warn!(service = %self.name(), "second signal: stopping at once")
                });
                Err(crate::Error::unavailable(
                    "go.micro.service",
                    "stopped at once by a second signal during the graceful stop: requests \
                     still in flight were cut and stop hooks may not have run; send one \
                     signal to let in-flight requests finish (server.grace_period)",
                ))
            }
        }
    }
}

/// The stop signals of [`Service::run`], registered once so that none is missed between
/// the first and the second.
struct Signals {
    #[cfg(unix)]
    unix: Vec<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                unix: [SignalKind::terminate(), SignalKind::interrupt()]
                    .into_iter()
                    .filter_map(|kind| signal(kind).ok())
                    .collect(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Completes at the next signal or [`Service::shutdown`].
    async fn next(&mut self, shutdown: &Notify) {
        #[cfg(unix)]
        {
            if self.unix.len() < 2 {
                // Registering failed: fall back on Ctrl-C alone.
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = shutdown.notified() => {}
                }
                return;
            }
            let received =
                futures::future::select_all(self.unix.iter_mut().map(|s| Box::pin(s.recv())));
            tokio::select! {
                _ = received => {}
                _ = shutdown.notified() => {}
            }
        }
        #[cfg(not(unix))]
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = shutdown.notified() => {}
            }
        }
    }
}
