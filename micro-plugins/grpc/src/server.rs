//! The grpc server: serves micro handlers over HTTP/2 as gRPC methods, with the standard
//! health service, registers the node (`server=grpc`, `protocol=grpc`) with a TTL and renews
//! it, and on stop deregisters, reports NOT_SERVING, refuses new calls with a retryable
//! UNAVAILABLE, lets calls in flight finish within the grace period and closes.

use crate::router::{ExtraService, Flight, Route, Router, Target};
use crate::wire;
use async_trait::async_trait;
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use micro_core::broker::{Broker, SubscribeOptions, Subscriber};
use micro_core::config::ServerConfig;
use micro_core::logger::Logger;
use micro_core::middleware::{self, Middleware};
use micro_core::registry::{Node, RegisterOptions, Registry, Service};
use micro_core::server::{Handler, HandlerKind, Server, Subscription};
use micro_core::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

const ID: &str = "go.micro.server";

/// The answer to a call that arrives while the server stops: no handler ran it.
pub(crate) fn shutting_down() -> Error {
    Error::unavailable(
        ID,
        "the server is shutting down and did not run the request; retry on another node",
    )
    .retryable()
}

/// What the server needs besides its config.
pub struct ServerParts {
    /// Service name, version and node id.
    pub info: micro_core::plugin::ServiceInfo,
    /// Where it registers (optional).
    pub registry: Option<Arc<dyn Registry>>,
    /// Where its subscribers subscribe (optional).
    pub broker: Option<Arc<dyn Broker>>,
    /// Handler middleware.
    pub middleware: Middleware,
    /// Its logger.
    pub logger: Logger,
}

/// A task aborted when dropped.
struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Running {
    address: String,
    record: Service,
    accept: Task,
    renew: Task,
    subscribers: Vec<Box<dyn Subscriber>>,
    flight: Arc<Flight>,
    health: HealthReporter,
    services: Vec<String>,
}

struct Inner {
    config: ServerConfig,
    name: String,
    version: String,
    node_id: String,
    node_metadata: BTreeMap<String, String>,
    registry: Option<Arc<dyn Registry>>,
    broker: Option<Arc<dyn Broker>>,
    middleware: Middleware,
    logger: Logger,
    max_message_size: usize,
    descriptors: Mutex<Vec<Bytes>>,
    handlers: Mutex<Vec<Handler>>,
    subscriptions: Mutex<Vec<Subscription>>,
    running: tokio::sync::Mutex<Option<Running>>,
    address: Mutex<Option<String>>,
}

/// The grpc server. Cheap to clone.
#[derive(Clone)]
pub struct GrpcServer {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl GrpcServer {
    /// A server with the given config and parts; messages up to
    /// [`wire::DEFAULT_MAX_MESSAGE_SIZE`] (4 MiB) each way.
    pub fn new(config: ServerConfig, parts: ServerParts) -> Self {
        Self::with_max_message_size(config, parts, wire::DEFAULT_MAX_MESSAGE_SIZE)
    }

    /// A server that refuses messages larger than `max` bytes (RESOURCE_EXHAUSTED).
    pub fn with_max_message_size(config: ServerConfig, parts: ServerParts, max: usize) -> Self {
        let mut node_metadata = config.metadata.clone();
        node_metadata.insert("transport".into(), "grpc".into());
        node_metadata.insert("server".into(), "grpc".into());
        node_metadata.insert("protocol".into(), "grpc".into());
        node_metadata.insert(
            "broker".into(),
            parts.broker.as_ref().map_or("none", |b| b.name()).into(),
        );
        node_metadata.insert(
            "registry".into(),
            parts.registry.as_ref().map_or("none", |r| r.name()).into(),
        );
        GrpcServer {
            inner: Arc::new(Inner {
                name: parts.info.name,
                version: parts.info.version,
                node_id: parts.info.id,
                node_metadata,
                config,
                registry: parts.registry,
                broker: parts.broker,
                middleware: parts.middleware,
                logger: parts.logger,
                max_message_size: max,
                descriptors: Mutex::new(Vec::new()),
                handlers: Mutex::new(Vec::new()),
                subscriptions: Mutex::new(Vec::new()),
                running: tokio::sync::Mutex::new(None),
                address: Mutex::new(None),
            }),
        }
    }

    /// The service record this server registers (once started).
    pub async fn record(&self) -> Option<Service> {
        let running = self.inner.running.lock().await;
        running.as_ref().map(|r| r.record.clone())
    }

    /// Adds an encoded `FileDescriptorSet` for server reflection (before `start`).
    pub fn add_file_descriptor_set(&self, encoded: impl Into<Bytes>) {
        lock(&self.inner.descriptors).push(encoded.into());
    }

    /// The method routes (`/{package}.{Trait}/{Method}` → handler) and the gRPC service
    /// names they belong to.
    fn routes(&self) -> Result<(HashMap<String, Route>, Vec<String>)> {
        let handlers = lock(&self.inner.handlers).clone();
        let mut routes = HashMap::new();
        let mut services = Vec::new();
        for handler in handlers {
            let package = handler.endpoint.metadata.get("package").map(String::as_str);
            let Some(path) = wire::method_path(package, &handler.endpoint.name) else {
                self.inner.logger.in_scope(|| {
                    tracing::warn!(endpoint = %handler.endpoint.name, "not served over grpc: an endpoint name must be Trait.Method")
                });
                continue;
            };
            if let Some(service) = wire::service_of_path(&path)
                && !services.iter().any(|s| s == service)
            {
                services.push(service.to_string());
            }
            let target = match handler.kind {
                HandlerKind::Unary(f) => {
                    let inner = middleware::service_fn(move |req| f(req));
                    Target::Unary(middleware::stack(&self.inner.middleware.handler, inner))
                }
                HandlerKind::Stream(f) => Target::Stream(f),
            };
            let route = Route {
                endpoint: handler.endpoint.name.clone(),
                target,
            };
            if routes.insert(path.clone(), route).is_some() {
                return Err(Error::conflict(
                    ID,
                    format!("two endpoints are served at the gRPC method {path}"),
                ));
            }
        }
        Ok((routes, services))
    }

    /// The health service and, when descriptors were given, reflection v1 and v1alpha.
    fn extra_services(&self, health: ExtraService) -> Result<HashMap<String, ExtraService>> {
        let mut extra: HashMap<String, ExtraService> = HashMap::new();
        extra.insert("grpc.health.v1.Health".into(), health);
        let descriptors = lock(&self.inner.descriptors).clone();
        if descriptors.is_empty() {
            return Ok(extra);
        }
        let builder = || {
            let mut builder = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
            for set in &descriptors {
                builder = builder.register_encoded_file_descriptor_set(set);
            }
            builder
        };
        let bad = |e: tonic_reflection::server::Error| {
            Error::bad_request(
                ID,
                format!("server reflection: invalid file descriptor set: {e}"),
            )
        };
        let v1 = builder().build_v1().map_err(bad)?;
        let v1alpha = builder().build_v1alpha().map_err(bad)?;
        extra.insert(
            "grpc.reflection.v1.ServerReflection".into(),
            ExtraService::new(v1),
        );
        extra.insert(
            "grpc.reflection.v1alpha.ServerReflection".into(),
            ExtraService::new(v1alpha),
        );
        Ok(extra)
    }

    fn record_for(&self, address: &str) -> Service {
        let node = Node {
            id: self.inner.node_id.clone(),
            address: address.to_string(),
            metadata: self.inner.node_metadata.clone(),
        };
        // One lock at a time.
        let mut endpoints: Vec<_> = lock(&self.inner.handlers)
            .iter()
            .map(|h| h.endpoint.clone())
            .collect();
        endpoints.extend(
            lock(&self.inner.subscriptions)
                .iter()
                .map(|s| s.endpoint.clone()),
        );
        micro_core::server::node_record(&self.inner.name, &self.inner.version, node, endpoints)
    }

    async fn subscribe_all(&self) -> Result<Vec<Box<dyn Subscriber>>> {
        let subscriptions = lock(&self.inner.subscriptions).clone();
        if subscriptions.is_empty() {
            return Ok(Vec::new());
        }
        let broker = self.inner.broker.clone().ok_or_else(|| {
            Error::bad_request(
                ID,
                "the service has subscribers but no broker: enable broker",
            )
        })?;
        let mut subscribers = Vec::new();
        for sub in subscriptions {
            let mut options = SubscribeOptions::default().auto_ack(true);
            options.queue = sub.queue.clone();
            subscribers.push(
                broker
                    .subscribe(&sub.topic, sub.handler.clone(), options)
                    .await?,
            );
        }
        Ok(subscribers)
    }
}

async fn register(inner: &Inner, record: &Service) -> Result<()> {
    if let Some(registry) = &inner.registry {
        let options = RegisterOptions::default().ttl(inner.config.register_ttl);
        registry.register(record, options).await?;
    }
    Ok(())
}

async fn renew_loop(inner: Arc<Inner>, record: Service) {
    let mut ticker = tokio::time::interval(
        inner
            .config
            .register_interval
            .max(Duration::from_millis(10)),
    );
    ticker.tick().await;
    loop {
        ticker.tick().await;
        if let Err(err) = register(&inner, &record).await {
            inner.logger.in_scope(|| {
                tracing::warn!(error = %err, "re-registering failed; will retry at the next interval")
            });
        }
    }
}

/// Accepts connections and serves each on HTTP/2 (prior knowledge, as gRPC does); the
/// connections live in this future, so dropping it closes them all.
async fn accept_loop(listener: tokio::net::TcpListener, router: Arc<Router>, logger: Logger) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    let _ = socket.set_nodelay(true);
                    let router = router.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            let router = router.clone();
                            async move { Ok::<_, std::convert::Infallible>(router.serve(request).await) }
                        });
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(socket), service)
                            .await;
                    });
                }
                Err(err) => {
                    logger.in_scope(|| tracing::warn!(error = %err, "accept failed"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

#[async_trait]
impl Server for GrpcServer {
    fn name(&self) -> &str {
        "grpc"
    }

    fn handle(&self, handler: Handler) -> Result<()> {
        let mut handlers = lock(&self.inner.handlers);
        if handlers
            .iter()
            .any(|h| h.endpoint.name == handler.endpoint.name)
        {
            return Err(Error::conflict(
                ID,
                format!("endpoint {} is registered twice", handler.endpoint.name),
            ));
        }
        handlers.push(handler);
        Ok(())
    }

    fn subscribe(&self, subscription: Subscription) -> Result<()> {
        lock(&self.inner.subscriptions).push(subscription);
        Ok(())
    }

    fn add_file_descriptor_set(&self, encoded: &'static [u8]) -> Result<()> {
        GrpcServer::add_file_descriptor_set(self, Bytes::from_static(encoded));
        Ok(())
    }

    async fn start(&self) -> Result<()> {
        let mut running = self.inner.running.lock().await;
        if running.is_some() {
            return Err(Error::conflict(ID, "server already started"));
        }
        let (routes, services) = self.routes()?;
        let (health, health_service) = tonic_health::server::health_reporter();
        for service in &services {
            health
                .set_service_status(service, ServingStatus::Serving)
                .await;
        }
        let extra = self.extra_services(ExtraService::new(health_service))?;
        let listener = tokio::net::TcpListener::bind(&self.inner.config.address)
            .await
            .map_err(|e| {
                Error::transport(
                    ID,
                    format!("cannot listen on {}: {e}", self.inner.config.address),
                )
            })?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::transport(ID, format!("no local address: {e}")))?;
        let address = micro_core::server::advertised_address(
            &self.inner.config.advertise,
            &bound.to_string(),
        );
        let record = self.record_for(&address);
        let subscribers = self.subscribe_all().await?;
        register(&self.inner, &record).await?;
        let flight = Arc::new(Flight::default());
        let router = Arc::new(Router {
            service: self.inner.name.clone(),
            routes,
            extra,
            max_message_size: self.inner.max_message_size,
            grace: self.inner.config.grace_period,
            flight: flight.clone(),
        });
        let accept = tokio::spawn(accept_loop(listener, router, self.inner.logger.clone()));
        let renew = tokio::spawn(renew_loop(self.inner.clone(), record.clone()));
        self.inner.logger.in_scope(
            || tracing::info!(service = %self.inner.name, %address, "grpc server listening"),
        );
        *lock(&self.inner.address) = Some(address.clone());
        *running = Some(Running {
            address,
            record,
            accept: Task(accept),
            renew: Task(renew),
            subscribers,
            flight,
            health,
            services,
        });
        Ok(())
    }

    async fn stop(&self) -> Result<()> {
        let Some(running) = self.inner.running.lock().await.take() else {
            return Ok(());
        };
        if let Some(registry) = &self.inner.registry
            && let Err(err) = registry.deregister(&running.record).await
        {
            self.inner
                .logger
                .in_scope(|| tracing::warn!(error = %err, "deregister failed"));
        }
        for sub in &running.subscribers {
            let _ = sub.unsubscribe().await;
        }
        running
            .health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        for service in &running.services {
            running
                .health
                .set_service_status(service, ServingStatus::NotServing)
                .await;
        }
        running.flight.drain();
        drop(running.renew);
        let grace = self.inner.config.grace_period;
        if tokio::time::timeout(grace, running.flight.idle())
            .await
            .is_err()
        {
            let left = running.flight.in_flight();
            self.inner.logger.in_scope(|| {
                tracing::warn!(
                    in_flight = left,
                    ?grace,
                    "grace period over; closing the connections"
                )
            });
        }
        drop(running.accept);
        *lock(&self.inner.address) = None;
        self.inner.logger.in_scope(|| {
            tracing::info!(service = %self.inner.name, address = %running.address, "grpc server stopped")
        });
        Ok(())
    }

    fn address(&self) -> Option<String> {
        lock(&self.inner.address).clone()
    }
}
