//! The `http` broker: go-micro's point-to-point HTTP broker.
//!
//! Every broker value runs one HTTP server (started by `connect` or the first `subscribe`)
//! and registers each of its subscribers in the registry as a node of the service
//! [`SERVICE`], with the topic and queue group in the node metadata. `publish` looks the
//! subscribers of the topic up in the registry and POSTs the message to each broadcast
//! subscriber and to one member of each queue group (trying the next member when one
//! fails). No broker server is involved: any registry that processes share (the `local`
//! registry on one host, a network registry across hosts) is enough.
//!
//! The wire format is specified in `docs/protocol-http.md` ("Broker").

mod publish;
mod server;

use crate::transport::{HttpTransport, HttpTransportOptions};
use micro_core::broker::{Broker, Handler, Message, SubscribeOptions, Subscriber, empty_topic};
use micro_core::config::{BrokerConfig, ServerConfig};
use micro_core::logger::Logger;
use micro_core::registry::{Node, RegisterOptions, Registry, Service};
use micro_core::{Error, Plugin, Result};
use serde::{Deserialize, Serialize};
use server::{Routes, Running};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Registry service under which every subscriber of every `http` broker is registered.
pub const SERVICE: &str = "micro.http.broker";

/// Request header naming the subscriber (its registry node id) a delivery is for.
pub const SUBSCRIBER_HEADER: &str = "Micro-Subscriber";

/// Error id of errors raised by the broker.
pub(crate) const ID: &str = "go.micro.broker";

/// Address the broker server binds when no `broker.addresses` is configured.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:0";

/// Registration TTL when none is configured (the `server:` section's default).
const DEFAULT_TTL: Duration = Duration::from_secs(90);
/// Registration refresh interval when none is configured.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// Options of the `http` broker plugin, in the `broker:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, micro_derive::Component)]
#[serde(default)]
#[component(section = "broker", plugin = "http")]
pub struct HttpBrokerOptions {
    /// Time limit of one delivery attempt to one subscriber: connecting, sending, and the subscriber's handler.
    #[serde(with = "micro_core::config::duration")]
    #[component(default = Duration::from_secs(5))]
    pub publish_timeout: Duration,
    /// Largest message body, in bytes, that is published or accepted.
    #[component(default = 4 * 1024 * 1024)]
    pub max_body_size: usize,
    /// host:port registered for this broker's subscribers instead of the bound address (needed when binding 0.0.0.0).
    pub advertise: String,
}

/// What a broker value is built from (kept apart so the `with_*` methods can rebuild it).
#[derive(Clone)]
struct Settings {
    id: String,
    registry: Arc<dyn Registry>,
    options: HttpBrokerOptions,
    bind: String,
    ttl: Option<Duration>,
    interval: Duration,
    logger: Logger,
}

/// The HTTP broker. Cheap to clone; clones share the server and the subscriptions.
///
/// Dropping the last clone (and every subscription handle) stops the server and the
/// registration refreshes without deregistering: the registry forgets the subscribers when
/// their TTL passes, as it does for a crashed process. Call [`Broker::disconnect`] to
/// deregister at once.
#[derive(Clone)]
pub struct HttpBroker {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Settings,
    /// Sends deliveries: the `http` transport in plain-unary mode.
    client: HttpTransport,
    /// Subscriptions by node id, shared with the server.
    routes: Arc<Routes>,
    /// The running server; also serialises start, stop and route changes against each other.
    server: tokio::sync::Mutex<Option<Running>>,
    /// The registered address of the running server, for [`Broker::address`].
    address: Mutex<Option<String>>,
    /// Round-robin position per (topic, queue group).
    cursors: Mutex<HashMap<(String, String), usize>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Stop refreshing registrations: they expire like those of a crashed process.
        for route in self.routes.drain() {
            route.close();
        }
    }
}

impl fmt::Debug for HttpBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.inner.settings;
        f.debug_struct("HttpBroker")
            .field("id", &s.id)
            .field("address", &Broker::address(self))
            .field("registry", &s.registry.name())
            .field("options", &s.options)
            .field("subscribers", &self.inner.routes.len())
            .finish()
    }
}

impl HttpBroker {
    /// A broker finding subscribers through `registry`, binding [`DEFAULT_ADDRESS`],
    /// registering with a 90s TTL refreshed every 30s, with a random id and no logging.
    pub fn new(registry: Arc<dyn Registry>, options: HttpBrokerOptions) -> Self {
        Self::from_settings(Settings {
            id: uuid::Uuid::new_v4().to_string(),
            registry,
            options,
            bind: DEFAULT_ADDRESS.to_string(),
            ttl: Some(DEFAULT_TTL),
            interval: DEFAULT_INTERVAL,
            logger: Logger::none(),
        })
    }

    fn from_settings(settings: Settings) -> Self {
        let client = HttpTransport::new(HttpTransportOptions {
            max_body_size: settings.options.max_body_size,
            dial_timeout: settings.options.publish_timeout,
            plain_unary: true,
            ..HttpTransportOptions::default()
        })
        .with_logger(settings.logger.clone());
        HttpBroker {
            inner: Arc::new(Inner {
                settings,
                client,
                routes: Arc::new(Routes::default()),
                server: tokio::sync::Mutex::new(None),
                address: Mutex::new(None),
                cursors: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Builder step: a broker with changed settings. Meant for construction; the result is a
    /// new broker with no server and no subscriptions.
    fn rebuild(self, change: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = self.inner.settings.clone();
        change(&mut settings);
        Self::from_settings(settings)
    }

    /// The same broker binding `address` (`host:port`; `:port` means every interface;
    /// empty means [`DEFAULT_ADDRESS`]).
    pub fn with_address(self, address: impl Into<String>) -> Self {
        let address = address.into();
        self.rebuild(|s| s.bind = bind_address(&address))
    }

    /// The same broker registering subscribers with `ttl`, refreshed every `interval`.
    /// A zero `ttl` registers without TTL (no refresh); an `interval` that is zero or not
    /// below `ttl` becomes `ttl / 3`.
    pub fn with_registration(self, ttl: Duration, interval: Duration) -> Self {
        self.rebuild(|s| {
            s.ttl = (!ttl.is_zero()).then_some(ttl);
            s.interval = if interval.is_zero() || interval >= ttl {
                ttl / 3
            } else {
                interval
            };
        })
    }

    /// The same broker with id `id`: subscriber node ids are `<id>-<uuid>`.
    pub fn with_id(self, id: impl Into<String>) -> Self {
        let id = id.into();
        self.rebuild(|s| s.id = id)
    }

    /// The same broker logging through `logger`.
    pub fn with_logger(self, logger: Logger) -> Self {
        self.rebuild(|s| s.logger = logger)
    }

    /// The broker's id (prefix of its subscribers' node ids).
    pub fn id(&self) -> &str {
        &self.inner.settings.id
    }

    /// The options in use.
    pub fn options(&self) -> &HttpBrokerOptions {
        &self.inner.settings.options
    }
}

/// `:8080` → `0.0.0.0:8080`, empty → [`DEFAULT_ADDRESS`] (go-micro's address forms).
fn bind_address(address: &str) -> String {
    let address = address.trim();
    if address.is_empty() {
        DEFAULT_ADDRESS.to_string()
    } else if address.starts_with(':') {
        format!("0.0.0.0{address}")
    } else {
        address.to_string()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// One subscription: what the server needs to deliver to it, and its registration.
pub(crate) struct Route {
    id: String,
    topic: String,
    handler: Handler,
    /// False once unsubscribed: no handler call starts after that.
    active: RwLock<bool>,
    /// Stops the registration refresh.
    heartbeat: CancellationToken,
    /// Serialises (re-)registration and deregistration of this node.
    registration: Arc<tokio::sync::Mutex<()>>,
    service: Service,
}

impl Route {
    /// Stops deliveries and the registration refresh.
    fn close(&self) {
        *self.active.write().unwrap_or_else(|e| e.into_inner()) = false;
        self.heartbeat.cancel();
    }
}

impl Drop for Route {
    fn drop(&mut self) {
        self.heartbeat.cancel();
    }
}

impl Inner {
    /// Starts the server if it is not running; the guard stays locked for the caller.
    async fn ensure_server(&self, server: &mut Option<Running>) -> Result<String> {
        if let Some(running) = server.as_ref() {
            return Ok(running.address.clone());
        }
        let s = &self.settings;
        let running = server::start(
            &s.bind,
            &s.options.advertise,
            self.routes.clone(),
            s.options.max_body_size,
            s.logger.clone(),
        )
        .await?;
        let address = running.address.clone();
        *server = Some(running);
        *lock(&self.address) = Some(address.clone());
        Ok(address)
    }

    async fn subscribe(
        &self,
        topic: &str,
        handler: Handler,
        options: &SubscribeOptions,
    ) -> Result<String> {
        if topic.is_empty() {
            return Err(empty_topic());
        }
        let s = &self.settings;
        let queue = options.queue.clone().unwrap_or_default();
        let id = format!("{}-{}", s.id, uuid::Uuid::new_v4());
        let route = {
            let mut server = self.server.lock().await;
            let address = self.ensure_server(&mut server).await?;
            let metadata = BTreeMap::from([
                ("broker".to_string(), "http".to_string()),
                ("topic".to_string(), topic.to_string()),
                ("queue".to_string(), queue),
                ("id".to_string(), id.clone()),
                ("secure".to_string(), "false".to_string()),
            ]);
            let route = Arc::new(Route {
                id: id.clone(),
                topic: topic.to_string(),
                handler,
                active: RwLock::new(true),
                heartbeat: CancellationToken::new(),
                registration: Arc::new(tokio::sync::Mutex::new(())),
                service: Service {
                    name: SERVICE.to_string(),
                    version: "latest".to_string(),
                    nodes: vec![Node {
                        id: id.clone(),
                        address,
                        metadata,
                    }],
                    ..Service::default()
                },
            });
            self.routes.insert(route.clone());
            route
        };
        {
            let _registering = route.registration.lock().await;
            let mut options = RegisterOptions::default();
            options.ttl = s.ttl;
            let register = s.registry.register(&route.service, options);
            if let Err(err) = register.await {
                self.routes.remove(&id);
                route.close();
                return Err(err);
            }
            if route.heartbeat.is_cancelled() {
                // Disconnected (or dropped) while registering: take the registration back.
                let _ = s.registry.deregister(&route.service).await;
                return Err(Error::unavailable(
                    ID,
                    format!("the broker was disconnected while subscribing to {topic}"),
                ));
            }
        }
        if let Some(ttl) = s.ttl {
            tokio::spawn(heartbeat(
                s.registry.clone(),
                route.service.clone(),
                route.registration.clone(),
                route.heartbeat.clone(),
                ttl,
                s.interval,
                s.logger.clone(),
            ));
        }
        s.logger.in_scope(|| {
            tracing::debug!(topic, subscriber = %id, queue = ?options.queue, "http broker: subscribed")
        });
        Ok(id)
    }

    /// Stops delivery to `route` (at once), then deregisters it.
    async fn close_route(&self, route: &Route) -> Result<()> {
        route.close();
        let _deregistering = route.registration.lock().await;
        self.settings.registry.deregister(&route.service).await
    }

    async fn unsubscribe(&self, id: &str) -> Result<()> {
        let route = {
            let _server = self.server.lock().await;
            self.routes.remove(id)
        };
        match route {
            Some(route) => self.close_route(&route).await,
            None => Ok(()),
        }
    }

    async fn disconnect(&self) -> Result<()> {
        let mut server = self.server.lock().await;
        let routes = self.routes.drain();
        let closing = routes.iter().map(|r| self.close_route(r));
        let results = futures::future::join_all(closing).await;
        // Dropping the server shuts it down gracefully: deliveries in progress finish.
        *server = None;
        *lock(&self.address) = None;
        results.into_iter().collect()
    }
}

/// Re-registers `service` every `interval` until `stop` is cancelled.
async fn heartbeat(
    registry: Arc<dyn Registry>,
    service: Service,
    registration: Arc<tokio::sync::Mutex<()>>,
    stop: CancellationToken,
    ttl: Duration,
    interval: Duration,
    logger: Logger,
) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let _registering = registration.lock().await;
        if stop.is_cancelled() {
            return;
        }
        let options = RegisterOptions::default().ttl(ttl);
        if let Err(err) = registry.register(&service, options).await {
            logger.in_scope(|| {
                tracing::warn!(error = %err, "http broker: refreshing a subscriber's registration failed")
            });
        }
    }
}

/// A subscription of an [`HttpBroker`].
pub struct HttpSubscriber {
    inner: Arc<Inner>,
    id: String,
    topic: String,
    options: SubscribeOptions,
}

impl fmt::Debug for HttpSubscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSubscriber")
            .field("id", &self.id)
            .field("topic", &self.topic)
            .field("options", &self.options)
            .finish()
    }
}

impl HttpSubscriber {
    /// The registry node id of this subscription (what [`SUBSCRIBER_HEADER`] names).
    pub fn id(&self) -> &str {
        &self.id
    }
}

#[async_trait::async_trait]
impl Subscriber for HttpSubscriber {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn options(&self) -> &SubscribeOptions {
        &self.options
    }

    /// Stops delivery at once (no handler call starts afterwards), then deregisters the
    /// node; a registry error is returned after delivery has stopped.
    async fn unsubscribe(&self) -> Result<()> {
        self.inner.unsubscribe(&self.id).await
    }
}

#[async_trait::async_trait]
impl Broker for HttpBroker {
    fn name(&self) -> &str {
        "http"
    }

    /// The registered `host:port` of the running server, else the address it will bind.
    fn address(&self) -> String {
        lock(&self.inner.address)
            .clone()
            .unwrap_or_else(|| self.inner.settings.bind.clone())
    }

    /// Starts the server (idempotent).
    async fn connect(&self) -> Result<()> {
        let mut server = self.inner.server.lock().await;
        self.inner.ensure_server(&mut server).await.map(|_| ())
    }

    /// Unsubscribes everything (deregistering each node) and stops the server. The broker
    /// may be used again afterwards; a registry error is returned once all that is done.
    async fn disconnect(&self) -> Result<()> {
        self.inner.disconnect().await
    }

    async fn publish(&self, topic: &str, message: Message) -> Result<()> {
        self.inner.publish(topic, message).await
    }

    async fn subscribe(
        &self,
        topic: &str,
        handler: Handler,
        options: SubscribeOptions,
    ) -> Result<Box<dyn Subscriber>> {
        let id = self.inner.subscribe(topic, handler, &options).await?;
        Ok(Box::new(HttpSubscriber {
            inner: self.inner.clone(),
            id,
            topic: topic.to_string(),
            options,
        }))
    }
}

fn no_registry() -> Error {
    Error::bad_request(
        ID,
        "the http broker finds subscribers through the registry, which is disabled: enable it \
         (registry.enabled: true, --registry_enabled=true, MICRO_REGISTRY_ENABLED=true) or \
         choose a broker that needs none (broker.plugin: memory)",
    )
}

/// The plugin-table entry: `broker: {plugin: http}` with [`HttpBrokerOptions`]. It binds
/// `broker.addresses[0]` (default [`DEFAULT_ADDRESS`]), registers with the `server:`
/// section's `register_ttl`/`register_interval`, and needs the registry.
pub fn plugin() -> Plugin {
    Plugin::broker("http", "http", |ctx| {
        let options: HttpBrokerOptions = ctx.options()?;
        crate::check_body_size("broker.max_body_size", options.max_body_size)?;
        let section: BrokerConfig = ctx.options()?;
        let (ttl, interval) = ctx
            .options::<ServerConfig>()
            .map(|s| (s.register_ttl, s.register_interval))
            .unwrap_or((DEFAULT_TTL, DEFAULT_INTERVAL));
        let registry = ctx.components.registry.clone().ok_or_else(no_registry)?;
        let mut broker = HttpBroker::new(registry, options)
            .with_logger(ctx.logger.clone())
            .with_registration(ttl, interval);
        if let Some(address) = section.addresses.first() {
            broker = broker.with_address(address.as_str());
        }
        if !ctx.service.id.is_empty() {
            broker = broker.with_id(ctx.service.id.as_str());
        }
        Ok(Arc::new(broker))
    })
    .with_options::<HttpBrokerOptions>()
}
