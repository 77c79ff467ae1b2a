//! The plugin table: which implementation of each component this build contains.
//!
//! A plain value, no statics: the `micro` facade's `plugins()` lists the plugins compiled in
//! by Cargo features, and applications may add their own before building a service.

use crate::Result;
use crate::auth::Auth;
use crate::broker::Broker;
use crate::catalog::{self, ComponentKind};
use crate::client::Client;
#[cfg(feature = "service")]
use crate::config::Schema;
use crate::config::{Component, ConfigError, LoggerConfig, Settings};
use crate::events::Events;
use crate::logger::{LogOutput, Logger};
use crate::registry::Registry;
use crate::selector::Selector;
use crate::server::Server;
use crate::store::Store;
use crate::transport::Transport;
use std::sync::Arc;
use tracing::Dispatch;

/// The components of a service; `None` where a component is disabled.
#[derive(Clone, Default)]
pub struct Components {
    /// Service discovery.
    pub registry: Option<Arc<dyn Registry>>,
    /// Load balancing.
    pub selector: Option<Arc<dyn Selector>>,
    /// Connections.
    pub transport: Option<Arc<dyn Transport>>,
    /// Pub/sub.
    pub broker: Option<Arc<dyn Broker>>,
    /// Key-value store.
    pub store: Option<Arc<dyn Store>>,
    /// Event streams.
    pub events: Option<Arc<dyn Events>>,
    /// Locks and leaders.
    pub sync: Option<Arc<dyn crate::sync::Sync>>,
    /// Identity.
    pub auth: Option<Arc<dyn Auth>>,
    /// RPC client.
    pub client: Option<Arc<dyn Client>>,
    /// RPC server.
    pub server: Option<Arc<dyn Server>>,
}

impl Components {
    /// Sets the component of `kind` to `other`'s, when `other` has one; says whether it did.
    pub fn copy_from(&mut self, kind: ComponentKind, other: &Components) -> bool {
        macro_rules! copy {
            ($($kind:ident => $field:ident,)*) => {
                match kind {
                    $(ComponentKind::$kind => match &other.$field {
                        Some(c) => self.$field = Some(c.clone()),
                        None => return false,
                    },)*
                    _ => return false,
                }
            };
        }
        copy! {
            Registry => registry,
            Selector => selector,
            Transport => transport,
            Broker => broker,
            Store => store,
            Events => events,
            Sync => sync,
            Auth => auth,
            Client => client,
            Server => server,
        }
        true
    }
}

/// Name, version and id of the service being built, for plugins that need them.
#[derive(Debug, Clone, Default)]
pub struct ServiceInfo {
    /// Service name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Node id.
    pub id: String,
}

/// What a plugin factory gets: its section's config, its logger, and the components built
/// before it (registry before selector, transport before client and server, ...).
pub struct PluginContext<'a> {
    /// The section being built (`registry`).
    pub section: &'a str,
    /// The whole effective configuration.
    pub config: &'a dyn Settings,
    /// This component's logger.
    pub logger: Logger,
    /// Components built so far.
    pub components: &'a Components,
    /// The service being built.
    pub service: &'a ServiceInfo,
    /// Middleware for the client and server.
    pub middleware: &'a crate::middleware::Middleware,
}

impl PluginContext<'_> {
    /// The plugin's options (or the component's section) as typed config.
    pub fn options<T: Component>(&self) -> std::result::Result<T, ConfigError> {
        crate::config::read_section::<T>(self.config)
    }

    /// An environment variable from the environment the application gave the builder.
    pub fn env(&self, name: &str) -> Option<&str> {
        self.config.env_var(name)
    }
}

/// Builds a component.
pub type Factory<T> = Arc<dyn Fn(&PluginContext<'_>) -> Result<Arc<T>> + Send + Sync>;

/// Builds a logger's dispatch from its config and output.
pub type LoggerFactory = Arc<
    dyn Fn(&LoggerConfig, tracing::level_filters::LevelFilter, LogOutput) -> Dispatch + Send + Sync,
>;

/// A factory for one component kind.
#[derive(Clone)]
pub enum PluginFactory {
    /// A registry.
    Registry(Factory<dyn Registry>),
    /// A selector.
    Selector(Factory<dyn Selector>),
    /// A transport.
    Transport(Factory<dyn Transport>),
    /// A broker.
    Broker(Factory<dyn Broker>),
    /// A store.
    Store(Factory<dyn Store>),
    /// Event streams.
    Events(Factory<dyn Events>),
    /// Sync.
    Sync(Factory<dyn crate::sync::Sync>),
    /// Auth.
    Auth(Factory<dyn Auth>),
    /// An RPC client.
    Client(Factory<dyn Client>),
    /// An RPC server.
    Server(Factory<dyn Server>),
    /// A log format.
    Logger(LoggerFactory),
}

impl PluginFactory {
    /// The kind of component it builds.
    pub fn kind(&self) -> ComponentKind {
        match self {
            PluginFactory::Registry(_) => ComponentKind::Registry,
            PluginFactory::Selector(_) => ComponentKind::Selector,
            PluginFactory::Transport(_) => ComponentKind::Transport,
            PluginFactory::Broker(_) => ComponentKind::Broker,
            PluginFactory::Store(_) => ComponentKind::Store,
            PluginFactory::Events(_) => ComponentKind::Events,
            PluginFactory::Sync(_) => ComponentKind::Sync,
            PluginFactory::Auth(_) => ComponentKind::Auth,
            PluginFactory::Client(_) => ComponentKind::Client,
            PluginFactory::Server(_) => ComponentKind::Server,
            PluginFactory::Logger(_) => ComponentKind::Logger,
        }
    }

    /// The config section of the component it builds.
    pub fn section(&self) -> &'static str {
        self.kind().section()
    }
}

/// Adds a plugin's options to the config schema (only the service builder loads config).
#[cfg(feature = "service")]
type SchemaHook = fn(&mut Schema, &str);

/// One implementation of one component.
#[derive(Clone)]
pub struct Plugin {
    /// Name used in config (`plugin: local`).
    pub name: String,
    /// Other names accepted (`rpc` for `mucp`).
    pub aliases: Vec<String>,
    /// The Cargo feature of `micro` that compiles it in.
    pub feature: String,
    /// How to build it.
    pub factory: PluginFactory,
    #[cfg(feature = "service")]
    options: Option<SchemaHook>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("section", &self.factory.section())
            .field("name", &self.name)
            .field("feature", &self.feature)
            .finish()
    }
}

macro_rules! constructors {
    ($($(#[$doc:meta])* $fn:ident => $variant:ident : $trait:path,)*) => {
        $(
            $(#[$doc])*
            pub fn $fn(
                name: &str,
                feature: &str,
                factory: impl Fn(&PluginContext<'_>) -> Result<Arc<dyn $trait>> + Send + Sync + 'static,
            ) -> Self {
                Plugin::new(name, feature, PluginFactory::$variant(Arc::new(factory)))
            }
        )*
    };
}

impl Plugin {
    /// A plugin with the given factory.
    pub fn new(name: &str, feature: &str, factory: PluginFactory) -> Self {
        Plugin {
            name: name.to_string(),
            aliases: Vec::new(),
            feature: feature.to_string(),
            factory,
            #[cfg(feature = "service")]
            options: None,
        }
    }

    constructors! {
        /// A registry plugin.
        registry => Registry: Registry,
        /// A selector plugin.
        selector => Selector: Selector,
        /// A transport plugin.
        transport => Transport: Transport,
        /// A broker plugin.
        broker => Broker: Broker,
        /// A store plugin.
        store => Store: Store,
        /// An events plugin.
        events => Events: Events,
        /// A sync plugin.
        sync => Sync: crate::sync::Sync,
        /// An auth plugin.
        auth => Auth: Auth,
        /// A client plugin.
        client => Client: Client,
        /// A server plugin.
        server => Server: Server,
    }

    /// A log format plugin.
    pub fn logger(
        name: &str,
        feature: &str,
        factory: impl Fn(&LoggerConfig, tracing::level_filters::LevelFilter, LogOutput) -> Dispatch
        + Send
        + Sync
        + 'static,
    ) -> Self {
        Plugin::new(name, feature, PluginFactory::Logger(Arc::new(factory)))
    }

    /// Declares the plugin's own options (flags, env, help, validation).
    /// Without the `service` feature nothing loads config, so there is nothing to declare.
    #[cfg_attr(not(feature = "service"), allow(unused_mut))]
    pub fn with_options<P: Component>(mut self) -> Self {
        #[cfg(feature = "service")]
        {
            self.options = Some(Schema::add_plugin::<P>);
        }
        self
    }

    /// Another name this plugin answers to.
    pub fn alias(mut self, alias: &str) -> Self {
        self.aliases.push(alias.to_string());
        self
    }

    fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.iter().any(|a| a == name)
    }
}

/// The plugins available to a service.
#[derive(Clone, Default, Debug)]
pub struct Plugins {
    list: Vec<Plugin>,
}

impl Plugins {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a plugin (a later one of the same section and name replaces the earlier).
    pub fn add(&mut self, plugin: Plugin) {
        let section = plugin.factory.section();
        self.list
            .retain(|p| !(p.factory.section() == section && p.name == plugin.name));
        self.list.push(plugin);
    }

    /// This table with one more plugin.
    pub fn with(mut self, plugin: Plugin) -> Self {
        self.add(plugin);
        self
    }

    /// Adds every plugin of `other`.
    pub fn extend(&mut self, other: Plugins) {
        for p in other.list {
            self.add(p);
        }
    }

    /// Every plugin.
    pub fn iter(&self) -> impl Iterator<Item = &Plugin> {
        self.list.iter()
    }

    /// Names of the plugins compiled in for `section`.
    pub fn names(&self, section: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .list
            .iter()
            .filter(|p| p.factory.section() == section)
            .map(|p| p.name.clone())
            .collect();
        if section == "logger" {
            names.extend(["default".to_string(), "text".to_string()]);
        }
        names.sort();
        names.dedup();
        names
    }

    /// The plugin of `section` called `name`, or the error that lists what is compiled in.
    pub fn find(&self, section: &str, name: &str) -> std::result::Result<&Plugin, ConfigError> {
        self.list
            .iter()
            .find(|p| p.factory.section() == section && p.answers_to(name))
            .ok_or_else(|| {
                let known = catalog::find(section, name);
                ConfigError::PluginNotCompiled {
                    component: section.to_string(),
                    plugin: name.to_string(),
                    compiled: self.names(section),
                    feature: known
                        .filter(|p| p.status == catalog::Status::Available)
                        .map(|p| p.feature.to_string()),
                    planned: known.is_some_and(|p| p.status == catalog::Status::Planned),
                }
            })
    }

    /// The config schema: the core sections plus every plugin's options.
    #[cfg(feature = "service")]
    pub fn schema(&self) -> Schema {
        let mut schema = Schema::core();
        for plugin in &self.list {
            if let Some(hook) = &plugin.options {
                hook(&mut schema, &plugin.name);
            }
        }
        schema
    }
}
