//! The config sections of the core components, with their built-in defaults.
//!
//! Flag and env names come from the field names (see [`super::OptionSpec::flag_names`]);
//! the go-micro global flags (`--server_name`, `--register_ttl`, `--client_retries`, ...)
//! are kept through explicit `flag`/`alias` names.

use super::durations::{duration, option_duration};
use micro_derive::Component;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// A `logger:` section: the top-level one is every component's default; a component's own
/// `logger:` sub-section overrides it key by key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Component)]
#[serde(default)]
#[component(section = "logger")]
pub struct LoggerConfig {
    /// Turn logging on or off.
    #[component(default = true)]
    pub enabled: bool,
    /// Log format plugin: default (text), text, zap (JSON).
    #[component(default = "default")]
    pub plugin: String,
    /// Lowest level logged: trace, debug, info, warn, error, fatal.
    #[component(default = "info")]
    pub level: String,
    /// Fields added to every line, e.g. component=broker.
    pub fields: BTreeMap<String, String>,
    /// Stack frames to skip when reporting the caller (kept for go-micro configs).
    pub caller_skip_count: u32,
}

macro_rules! plain_section {
    ($(#[$doc:meta])* $name:ident, $section:literal, $plugin:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Component)]
        #[serde(default)]
        #[component(section = $section)]
        pub struct $name {
            /// Turn the component on or off.
            #[component(default = true)]
            pub enabled: bool,
            #[doc = $what]
            #[component(default = $plugin)]
            pub plugin: String,
            /// Comma-separated list of addresses of the backend.
            pub addresses: Vec<String>,
            /// This component's logger (overrides the top-level logger key by key).
            #[component(nested)]
            pub logger: Option<LoggerConfig>,
        }
    };
}

plain_section!(
    /// `registry:` service discovery.
    RegistryConfig, "registry", "local",
    "Registry for discovery: memory, local, mdns, nats, etcd."
);
plain_section!(
    /// `transport:` how services connect.
    TransportConfig, "transport", "tcp",
    "Transport mechanism used: memory, tcp, http, quic, grpc."
);
plain_section!(
    /// `broker:` pub/sub.
    BrokerConfig, "broker", "http",
    "Broker for pub/sub: memory, http, nats, redis."
);
plain_section!(
    /// `events:` event streams.
    EventsConfig, "events", "memory",
    "Event streams: memory, nats, redis."
);
plain_section!(
    /// `sync:` locks and leader election.
    SyncConfig, "sync", "memory",
    "Locks and leader election: memory, redis, etcd."
);

/// `selector:` load balancing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Component)]
#[serde(default)]
#[component(section = "selector")]
pub struct SelectorConfig {
    /// Turn the component on or off.
    #[component(default = true)]
    pub enabled: bool,
    /// Selector used to pick nodes for querying: random, roundrobin.
    #[component(default = "random")]
    pub plugin: String,
    /// How long a node that failed is skipped.
    #[serde(with = "duration")]
    #[component(default = Duration::from_secs(30))]
    pub cooldown: Duration,
    /// This component's logger.
    #[component(nested)]
    pub logger: Option<LoggerConfig>,
}

/// `client:` the RPC caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Component)]
#[serde(default)]
#[component(section = "client")]
pub struct ClientConfig {
    /// Turn the component on or off.
    #[component(default = true)]
    pub enabled: bool,
    /// RPC client: mucp (alias rpc), grpc.
    #[component(default = "mucp")]
    pub plugin: String,
    /// Content type of requests: application/json, application/protobuf.
    #[component(default = "application/json")]
    pub content_type: String,
    /// Time limit of a request, retries included.
    #[serde(with = "duration")]
    #[component(default = Duration::from_secs(5), alias = "client_request_timeout")]
    pub pool_request_timeout: Duration,
    /// Times a failed request is retried.
    #[component(default = 1, alias = "client_retries")]
    pub pool_retries: u32,
    /// Connections kept per address.
    #[component(default = 1)]
    pub pool_size: usize,
    /// How long an idle pooled connection is kept.
    #[serde(with = "duration")]
    #[component(default = Duration::from_secs(60))]
    pub pool_ttl: Duration,
    /// This component's logger.
    #[component(nested)]
    pub logger: Option<LoggerConfig>,
}

/// `server:` the RPC host and its registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Component)]
#[serde(default)]
#[component(section = "server")]
pub struct ServerConfig {
    /// Turn the component on or off.
    #[component(default = true)]
    pub enabled: bool,
    /// RPC server: mucp (alias rpc), grpc.
    #[component(default = "mucp")]
    pub plugin: String,
    /// Name of the server (the service name).
    pub name: String,
    /// Version of the server.
    #[component(default = "latest")]
    pub version: String,
    /// Id of the server; generated as <name>-<uuid> when empty.
    pub id: String,
    /// Bind address for the server.
    #[component(default = "127.0.0.1:0")]
    pub address: String,
    /// Used instead of the server address when registering with discovery.
    pub advertise: String,
    /// Metadata of the node, key=value pairs.
    pub metadata: BTreeMap<String, String>,
    /// Register TTL: how long a registration lives without a heartbeat.
    #[serde(with = "duration")]
    #[component(default = Duration::from_secs(90), flag = "register_ttl")]
    pub register_ttl: Duration,
    /// Register interval: how often the registration is renewed.
    #[serde(with = "duration")]
    #[component(default = Duration::from_secs(30), flag = "register_interval")]
    pub register_interval: Duration,
    /// Time in-flight requests get to finish on stop.
    #[serde(with = "duration")]
    #[component(default = Duration::from_secs(10))]
    pub grace_period: Duration,
    /// This component's logger.
    #[component(nested)]
    pub logger: Option<LoggerConfig>,
}

impl ServerConfig {
    /// Checks what the types cannot: a server plugin calls it before it starts.
    pub fn check(&self) -> Result<(), super::ConfigError> {
        if self.register_interval.is_zero() {
            return Err(super::ConfigError::Invalid {
                key: "server.register_interval".into(),
                reason: "0s would re-register without pause: give an interval shorter than \
                         register_ttl (default 30s)"
                    .into(),
            });
        }
        Ok(())
    }
}

/// `store:` key-value storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Component)]
#[serde(default)]
#[component(section = "store")]
pub struct StoreConfig {
    /// Turn the component on or off.
    #[component(default = true)]
    pub enabled: bool,
    /// Store: memory, file, redis, postgres.
    #[component(default = "memory")]
    pub plugin: String,
    /// Comma-separated list of addresses of the backend.
    pub addresses: Vec<String>,
    /// Default database.
    #[component(default = "micro")]
    pub database: String,
    /// Default table.
    #[component(default = "micro")]
    pub table: String,
    /// This component's logger.
    #[component(nested)]
    pub logger: Option<LoggerConfig>,
}

/// `auth:` identity and access rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Component)]
#[serde(default)]
#[component(section = "auth")]
pub struct AuthConfig {
    /// Turn the component on or off (off by default).
    pub enabled: bool,
    /// Auth provider: jwt.
    #[component(default = "jwt")]
    pub plugin: String,
    /// Issuer of accounts and tokens.
    #[component(default = "micro")]
    pub issuer: String,
    /// Lifetime of access tokens.
    #[serde(with = "option_duration")]
    pub token_expiry: Option<Duration>,
    /// This component's logger.
    #[component(nested)]
    pub logger: Option<LoggerConfig>,
}

/// Every core section, read from loaded configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentSections {
    /// `logger:`
    pub logger: LoggerConfig,
    /// `registry:`
    pub registry: RegistryConfig,
    /// `selector:`
    pub selector: SelectorConfig,
    /// `transport:`
    pub transport: TransportConfig,
    /// `broker:`
    pub broker: BrokerConfig,
    /// `store:`
    pub store: StoreConfig,
    /// `events:`
    pub events: EventsConfig,
    /// `sync:`
    pub sync: SyncConfig,
    /// `auth:`
    pub auth: AuthConfig,
    /// `client:`
    pub client: ClientConfig,
    /// `server:`
    pub server: ServerConfig,
}

impl ComponentSections {
    /// Reads every section; the first bad one is the error.
    /// A section left out of the schema (an app that does not use that component) reads as
    /// disabled.
    #[cfg(feature = "service")]
    pub fn from_loaded(loaded: &super::Loaded) -> Result<Self, super::ConfigError> {
        macro_rules! read {
            ($ty:ty) => {
                if loaded
                    .schema()
                    .sections
                    .iter()
                    .any(|s| s.name == <$ty as super::Component>::SECTION)
                {
                    loaded.section::<$ty>()?
                } else {
                    <$ty>::default().disabled()
                }
            };
        }
        Ok(ComponentSections {
            logger: loaded.section()?,
            registry: read!(RegistryConfig),
            selector: read!(SelectorConfig),
            transport: read!(TransportConfig),
            broker: read!(BrokerConfig),
            store: read!(StoreConfig),
            events: read!(EventsConfig),
            sync: read!(SyncConfig),
            auth: read!(AuthConfig),
            client: read!(ClientConfig),
            server: read!(ServerConfig),
        })
    }

    /// `(section, enabled, plugin)` in build order: a component is built after those it may
    /// use (the selector after the registry, client and server last).
    pub fn enabled_plugins(&self) -> Vec<(&'static str, bool, &str)> {
        vec![
            ("registry", self.registry.enabled, &self.registry.plugin),
            ("selector", self.selector.enabled, &self.selector.plugin),
            ("transport", self.transport.enabled, &self.transport.plugin),
            ("broker", self.broker.enabled, &self.broker.plugin),
            ("store", self.store.enabled, &self.store.plugin),
            ("events", self.events.enabled, &self.events.plugin),
            ("sync", self.sync.enabled, &self.sync.plugin),
            ("auth", self.auth.enabled, &self.auth.plugin),
            ("client", self.client.enabled, &self.client.plugin),
            ("server", self.server.enabled, &self.server.plugin),
        ]
    }
}

macro_rules! disabled {
    ($($ty:ty),*) => {$(
        impl $ty {
            /// The same section, switched off.
            pub fn disabled(mut self) -> Self {
                self.enabled = false;
                self
            }
        }
    )*};
}

disabled!(
    RegistryConfig,
    SelectorConfig,
    TransportConfig,
    BrokerConfig,
    StoreConfig,
    EventsConfig,
    SyncConfig,
    AuthConfig,
    ClientConfig,
    ServerConfig
);

/// What each component needs built before it: a client needs a selector and a transport, a
/// selector needs a registry, a server needs a transport (and registers in the registry).
/// See [`ComponentKind::requirements`](crate::catalog::ComponentKind::requirements).
pub fn requirements(section: &str) -> impl Iterator<Item = &'static str> + use<> {
    crate::catalog::ComponentKind::from_section(section)
        .map(|kind| kind.requirements())
        .unwrap_or_default()
        .iter()
        .map(|k| k.section())
}
