//! The service builder: loads configuration, builds each enabled component from the plugin
//! table (or takes a ready-made one), and wires handlers into the server.

use super::{BuildError, Built, Hooks, Inner, NoPlugins, PluginSource, Service};
use crate::catalog::ComponentKind;
use crate::config::{
    self, AppConfig, AppFlag, ComponentSections, ConfigError, Loaded, Outcome, Sources,
};
use crate::in_process::{Caller, LocalImpl, LocalServices};

/// Makes handlers once the components exist (see [`ServiceBuilder::handler_with`]).
type Deferred = Box<dyn FnOnce(&Caller, &Components) -> (Vec<LocalImpl>, Vec<Handler>)>;
use super::loggers::Loggers;
use crate::logger::LogOutput;
use crate::middleware::{Middleware, RpcLayer};
use crate::plugin::{Components, PluginContext, PluginFactory, Plugins, ServiceInfo};
use crate::server::{Handler, IntoHandlers, Subscription};
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Notify;

/// Configures and builds a [`Service`].
pub struct ServiceBuilder<P = NoPlugins> {
    name: Option<String>,
    version: Option<String>,
    id: Option<String>,
    metadata: BTreeMap<String, String>,
    about: String,
    arg_prefix: Option<String>,
    no_flags: bool,
    config_file: Option<PathBuf>,
    args: Option<Vec<String>>,
    env: Option<Vec<(String, String)>>,
    app_flags: Vec<AppFlag>,
    handlers: Vec<Handler>,
    deferred: Vec<Deferred>,
    /// File descriptor sets of the handlers, for the server (gRPC reflection).
    descriptors: Vec<&'static [u8]>,
    subscriptions: Vec<Subscription>,
    hooks: Hooks,
    overrides: Components,
    plugins: Plugins,
    log_output: Option<LogOutput>,
    middleware: Middleware,
    local: LocalServices,
    local_impls: Vec<LocalImpl>,
    only: Option<Vec<String>>,
    _source: PhantomData<fn() -> P>,
}

macro_rules! component_overrides {
    ($($(#[$doc:meta])* $field:ident: $ty:ty,)*) => {
        $(
            $(#[$doc])*
            pub fn $field(mut self, component: Arc<$ty>) -> Self {
                self.overrides.$field = Some(component);
                self
            }
        )*
    };
}

macro_rules! hooks {
    ($($(#[$doc:meta])* $field:ident,)*) => {
        $(
            $(#[$doc])*
            pub fn $field<F, Fut>(mut self, hook: F) -> Self
            where
                F: Fn() -> Fut + Send + Sync + 'static,
                Fut: std::future::Future<Output = Result<()>> + Send + 'static,
            {
                self.hooks.$field.push(Arc::new(move || Box::pin(hook())));
                self
            }
        )*
    };
}

impl<P: PluginSource> ServiceBuilder<P> {
    pub(super) fn new(plugins: Plugins) -> Self {
        ServiceBuilder {
            name: None,
            version: None,
            id: None,
            metadata: BTreeMap::new(),
            about: String::new(),
            arg_prefix: None,
            no_flags: false,
            config_file: None,
            args: None,
            env: None,
            app_flags: Vec::new(),
            handlers: Vec::new(),
            deferred: Vec::new(),
            descriptors: Vec::new(),
            subscriptions: Vec::new(),
            hooks: Hooks::default(),
            overrides: Components::default(),
            plugins,
            log_output: None,
            middleware: Middleware::default(),
            local: LocalServices::new(),
            local_impls: Vec::new(),
            only: None,
            _source: PhantomData,
        }
    }

    /// Service name (also `--server_name`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Service version (also `--server_version`).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Node id; `<name>-<uuid>` by default.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// One node metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Text shown at the top of `--help`.
    pub fn usage(mut self, about: impl Into<String>) -> Self {
        self.about = about.into();
        self
    }

    /// Prefix of flags and env vars: `"x"` gives `--x_registry` and `X_REGISTRY`, `""` gives
    /// `--registry` and `REGISTRY`; by default flags have none and env vars `MICRO_`.
    pub fn arg_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.arg_prefix = Some(prefix.into());
        self
    }

    /// Ignores the command line.
    pub fn no_flags(mut self) -> Self {
        self.no_flags = true;
        self
    }

    /// Config file to read (a `--config` flag or `MICRO_CONFIG` env var overrides it).
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_file = Some(path.into());
        self
    }

    /// The command line, program name first (default: the process's).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = Some(args.into_iter().map(Into::into).collect());
        self
    }

    /// The environment (default: the process's).
    pub fn env<I, K, V>(mut self, env: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env = Some(env.into_iter().map(|(k, v)| (k.into(), v.into())).collect());
        self
    }

    /// Declares an application flag taking a value (`--services orders`).
    pub fn flag(mut self, name: impl Into<String>, help: impl Into<String>) -> Self {
        self.app_flags.push(AppFlag {
            name: name.into(),
            help: help.into(),
            takes_value: true,
        });
        self
    }

    /// Declares an application switch (`--server`).
    pub fn switch(mut self, name: impl Into<String>, help: impl Into<String>) -> Self {
        self.app_flags.push(AppFlag {
            name: name.into(),
            help: help.into(),
            takes_value: false,
        });
        self
    }

    /// Adds endpoints (and, from generated server adapters, the typed implementation for
    /// in-process calls).
    pub fn handler(mut self, handlers: impl IntoHandlers) -> Self {
        self.local_impls.extend(handlers.local_impls());
        for set in handlers.file_descriptor_sets() {
            if !self.descriptors.contains(&set) {
                self.descriptors.push(set);
            }
        }
        self.handlers.extend(handlers.into_handlers());
        self
    }

    /// Builds only these components (and what they need: a client brings a selector, a
    /// transport and a registry); the others are neither built nor configurable, and their
    /// flags are not in `--help`. `#[derive(micro::Wire)]` calls this.
    pub fn only_components(mut self, sections: &[&str]) -> Self {
        let mut wanted: Vec<String> = Vec::new();
        let mut todo: Vec<&str> = sections.to_vec();
        while let Some(section) = todo.pop() {
            if !wanted.iter().any(|w| w == section) {
                wanted.push(section.to_string());
                for needed in config::requirements(section) {
                    todo.push(needed);
                }
            }
        }
        self.only = Some(wanted);
        self
    }

    fn schema(&self) -> config::Schema {
        let mut schema = self.plugins.schema();
        if let Some(only) = &self.only {
            schema
                .sections
                .retain(|s| s.name == "logger" || only.contains(&s.name));
        }
        schema
    }

    /// Adds endpoints made once the service's components exist, from a [`Caller`] (the
    /// client, the in-process table and the call middleware): for handlers that call other
    /// services, e.g. `.handler_with(|caller| OrdersServer::new(Orders::new(caller.clone())))`.
    pub fn handler_with<F, H>(self, make: F) -> Self
    where
        F: FnOnce(&Caller) -> H + 'static,
        H: IntoHandlers,
    {
        self.handler_with_components(move |caller, _| make(caller))
    }

    /// Like [`handler_with`](Self::handler_with), with the service's built components too:
    /// for handlers that keep data in the service's store or use its events or sync, e.g.
    /// `.handler_with_components(|_, c| InventoryServer::new(Stock::new(c.store.clone())))`.
    pub fn handler_with_components<F, H>(mut self, make: F) -> Self
    where
        F: FnOnce(&Caller, &Components) -> H + 'static,
        H: IntoHandlers,
    {
        self.deferred.push(Box::new(move |caller, components| {
            let handlers = make(caller, components);
            (handlers.local_impls(), handlers.into_handlers())
        }));
        self
    }

    /// Shares an in-process table with other services of this process, so their typed
    /// clients call this one directly (a monolith passes one table to all its services).
    pub fn local_services(mut self, table: LocalServices) -> Self {
        self.local = table;
        self
    }

    /// Adds a subscriber.
    pub fn subscriber(mut self, subscription: Subscription) -> Self {
        self.subscriptions.push(subscription);
        self
    }

    /// Adds plugins to the table (e.g. an application's own).
    pub fn plugins(mut self, plugins: Plugins) -> Self {
        self.plugins.extend(plugins);
        self
    }

    /// Sends every component's log lines to `output` instead of stderr.
    pub fn log_output(mut self, output: LogOutput) -> Self {
        self.log_output = Some(output);
        self
    }

    /// Wraps every client call (all its attempts) in a tower layer.
    pub fn wrap_call(mut self, layer: RpcLayer) -> Self {
        self.middleware.call.push(layer);
        self
    }

    /// Wraps each attempt of a client call in a tower layer.
    pub fn wrap_attempt(mut self, layer: RpcLayer) -> Self {
        self.middleware.attempt.push(layer);
        self
    }

    /// Wraps every unary handler in a tower layer.
    pub fn wrap_handler(mut self, layer: RpcLayer) -> Self {
        self.middleware.handler.push(layer);
        self
    }

    /// Wraps every subscriber delivery in a tower layer.
    pub fn wrap_subscriber(mut self, layer: RpcLayer) -> Self {
        self.middleware.subscriber.push(layer);
        self
    }

    hooks! {
        /// Runs before the server starts.
        before_start,
        /// Runs after the server started.
        after_start,
        /// Runs before the server stops.
        before_stop,
        /// Runs after the server stopped.
        after_stop,
    }

    component_overrides! {
        /// Uses this registry instead of building one from config.
        registry: dyn crate::registry::Registry,
        /// Uses this selector.
        selector: dyn crate::selector::Selector,
        /// Uses this transport.
        transport: dyn crate::transport::Transport,
        /// Uses this broker.
        broker: dyn crate::broker::Broker,
        /// Uses this store.
        store: dyn crate::store::Store,
        /// Uses these event streams.
        events: dyn crate::events::Events,
        /// Uses this sync.
        sync: dyn crate::sync::Sync,
        /// Uses this auth.
        auth: dyn crate::auth::Auth,
        /// Uses this client.
        client: dyn crate::client::Client,
        /// Uses this server.
        server: dyn crate::server::Server,
    }

    fn sources(&self) -> Sources {
        let args = self
            .args
            .clone()
            .unwrap_or_else(|| std::env::args().collect());
        let program = args
            .first()
            .map(|p| {
                std::path::Path::new(p)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_else(|| p.clone())
            })
            .unwrap_or_else(|| "service".into());
        let mut server = serde_json::Map::new();
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                server.insert(k.into(), v.clone().into());
            }
        };
        put("name", &self.name);
        put("version", &self.version);
        put("id", &self.id);
        if !self.metadata.is_empty() {
            server.insert(
                "metadata".into(),
                serde_json::to_value(&self.metadata).unwrap_or_default(),
            );
        }
        Sources {
            arg_prefix: self.arg_prefix.clone(),
            no_flags: self.no_flags,
            args,
            env: self
                .env
                .clone()
                .unwrap_or_else(|| std::env::vars().collect()),
            config_file: self.config_file.clone(),
            overrides: serde_json::json!({ "server": server }),
            app_flags: self.app_flags.clone(),
            program,
            about: self.about.clone(),
        }
    }

    /// Splits `args` (the program name first) into this service's flags, with their values,
    /// and the rest, each led by the program name: for a program with arguments of its own
    /// among the component flags. Give the first part to [`args`](Self::args).
    pub fn split_args(&self, args: &[String]) -> (Vec<String>, Vec<String>) {
        let naming = config::Naming::new(self.arg_prefix.as_deref());
        config::split_args(&self.schema(), &naming, &self.app_flags, args)
    }

    /// The effective configuration as YAML, without building anything.
    pub fn effective_config(&self) -> std::result::Result<String, ConfigError> {
        match config::load(self.schema(), &self.sources())? {
            Outcome::Loaded(loaded) => Ok(loaded.to_yaml()),
            Outcome::Dump(yaml) => Ok(yaml),
            Outcome::Help(_) | Outcome::Version => Err(ConfigError::Invalid {
                key: "--help/--version".into(),
                reason: "asked for help or version, not config".into(),
            }),
        }
    }

    /// Builds the service. `--help`, `--version` and `--dump_config` print to stdout and exit
    /// the process with status 0 (use [`ServiceBuilder::try_build`] to handle them yourself).
    pub fn build(self) -> std::result::Result<Service<P>, BuildError> {
        match self.try_build()? {
            Built::Service(service) => Ok(service),
            Built::Help(text) | Built::Version(text) | Built::DumpConfig(text) => {
                print!("{text}");
                std::process::exit(0)
            }
        }
    }

    /// Builds the service, or says what the command line asked for instead.
    pub fn try_build(mut self) -> std::result::Result<Built<P>, BuildError> {
        let sources = self.sources();
        let loaded = match config::load(self.schema(), &sources)? {
            Outcome::Loaded(loaded) => *loaded,
            Outcome::Help(text) => return Ok(Built::Help(text)),
            Outcome::Dump(yaml) => return Ok(Built::DumpConfig(yaml)),
            Outcome::Version => {
                let version = self.version.clone().unwrap_or_else(|| "latest".into());
                return Ok(Built::Version(format!("{} {version}\n", sources.program)));
            }
        };
        let output = self.log_output.clone().unwrap_or_else(LogOutput::stderr);
        let sections = ComponentSections::from_loaded(&loaded)?;
        let server = &sections.server;
        let name = if server.name.is_empty() {
            sources.program.clone()
        } else {
            server.name.clone()
        };
        let info = ServiceInfo {
            id: if server.id.is_empty() {
                format!("{name}-{}", uuid::Uuid::new_v4())
            } else {
                server.id.clone()
            },
            version: server.version.clone(),
            name,
        };
        let loggers = Loggers::new(&self.plugins, &loaded, output)?;
        if sections.server.enabled && server.register_ttl < server.register_interval {
            loggers.get("server").in_scope(|| {
                tracing::warn!(
                    register_ttl = ?server.register_ttl,
                    register_interval = ?server.register_interval,
                    "register_ttl ({:?}) is shorter than register_interval ({:?}): the node will expire from the registry between heartbeats; make register_ttl longer than register_interval",
                    server.register_ttl,
                    server.register_interval
                )
            });
        }
        let (components, middleware) =
            self.build_components(&sections, &loaded, &loggers, &info)?;
        // The handler middleware with the registry's layer, if it asked for one.
        self.middleware = middleware;
        let caller = Caller {
            client: components.client.clone(),
            local: self.local.clone(),
            middleware: self.middleware.clone(),
        };
        for make in std::mem::take(&mut self.deferred) {
            let (impls, handlers) = make(&caller, &components);
            self.local_impls.extend(impls);
            self.handlers.extend(handlers);
        }
        if let Some(server) = &components.server {
            for h in &self.handlers {
                server
                    .handle(h.clone())
                    .map_err(|e| BuildError::start("server", server.name(), e))?;
            }
            for s in &self.subscriptions {
                server
                    .subscribe(s.clone())
                    .map_err(|e| BuildError::start("server", server.name(), e))?;
            }
            for set in &self.descriptors {
                server
                    .add_file_descriptor_set(set)
                    .map_err(|e| BuildError::start("server", server.name(), e))?;
            }
        } else if !self.handlers.is_empty() || !self.subscriptions.is_empty() {
            return Err(ConfigError::Invalid {
                key: "server.enabled".into(),
                reason: "the service has handlers or subscribers but the server is disabled: set server.enabled: true".into(),
            }
            .into());
        }
        let config = AppConfig::new(loaded, loggers.get("logger").dispatch().clone());
        Ok(Built::Service(Service {
            inner: Arc::new(Inner {
                info,
                config,
                components,
                hooks: self.hooks,
                logger: loggers.get("logger"),
                loggers: loggers.by_section,
                shutdown: Notify::new(),
                local: self.local,
                local_impls: self.local_impls,
                middleware: self.middleware,
            }),
            _source: PhantomData,
        }))
    }

    fn build_components(
        &self,
        sections: &ComponentSections,
        loaded: &Loaded,
        loggers: &Loggers,
        info: &ServiceInfo,
    ) -> std::result::Result<(Components, Middleware), BuildError> {
        let mut built = Components::default();
        let mut middleware = self.middleware.clone();
        for (section, enabled, plugin) in sections.enabled_plugins() {
            if !enabled {
                continue;
            }
            // The registry (built or given, always first) may want to see every handled
            // request: its layer joins the handler middleware, outermost, just before the
            // server is built.
            if section == "server"
                && let Some(layer) = built.registry.as_ref().and_then(|r| r.handler_layer())
            {
                middleware.handler.insert(0, layer);
            }
            if ComponentKind::from_section(section)
                .is_some_and(|kind| built.copy_from(kind, &self.overrides))
            {
                continue;
            }
            let found = self.plugins.find(section, plugin)?;
            let ctx = PluginContext {
                section,
                config: loaded,
                logger: loggers.get(section),
                components: &built,
                service: info,
                middleware: &middleware,
            };
            let fail = |e: Error| BuildError::start(section, plugin, e);
            match &found.factory {
                PluginFactory::Registry(f) => built.registry = Some(f(&ctx).map_err(fail)?),
                PluginFactory::Selector(f) => built.selector = Some(f(&ctx).map_err(fail)?),
                PluginFactory::Transport(f) => built.transport = Some(f(&ctx).map_err(fail)?),
                PluginFactory::Broker(f) => built.broker = Some(f(&ctx).map_err(fail)?),
                PluginFactory::Store(f) => built.store = Some(f(&ctx).map_err(fail)?),
                PluginFactory::Events(f) => built.events = Some(f(&ctx).map_err(fail)?),
                PluginFactory::Sync(f) => built.sync = Some(f(&ctx).map_err(fail)?),
                PluginFactory::Auth(f) => built.auth = Some(f(&ctx).map_err(fail)?),
                PluginFactory::Client(f) => built.client = Some(f(&ctx).map_err(fail)?),
                PluginFactory::Server(f) => built.server = Some(f(&ctx).map_err(fail)?),
                PluginFactory::Logger(_) => {}
            }
        }
        Ok((built, middleware))
    }
}
