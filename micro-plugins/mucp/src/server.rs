//! The mucp server: accepts streams from any transport, dispatches them to handlers under
//! the caller's deadline, registers the node with a TTL and renews it, and on stop
//! deregisters, stops accepting connections, refuses new requests with a retryable 503,
//! lets requests in flight finish within the grace period, answers those still running
//! with an error, and closes the connections.

use crate::debug::{self, Stats};
use crate::drain::{Gate, Task, grace_over, shutting_down};
use crate::wire;
use async_trait::async_trait;
use micro_core::broker::{Broker, SubscribeOptions, Subscriber};
use micro_core::client::Request;
use micro_core::config::ServerConfig;
use micro_core::logger::Logger;
use micro_core::middleware::{self, Middleware, RpcService};
use micro_core::registry::{Node, RegisterOptions, Registry, Service};
use micro_core::server::{Handler, HandlerKind, Server, Subscription, catch_panic};
use micro_core::streaming;
use micro_core::transport::{Exchange, ExchangeHandler, HeaderMap, Message, Stream, Transport};
use micro_core::{Context, Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ID: &str = "go.micro.server";

/// How long requests still running when the grace period is over get to hand over their
/// error answer before the connections close (they are dropped at once; this is a bound).
const ANSWER_WAIT: Duration = Duration::from_secs(1);

/// An endpoint ready to serve: its description, and where its requests go.
struct Route {
    endpoint: micro_core::registry::Endpoint,
    target: Target,
}

struct Running {
    address: String,
    record: Service,
    /// Serves the listener; aborting it closes the connections.
    accept: Task,
    /// Tells this run's requests that the server stops.
    gate: Arc<Gate>,
    renew: Task,
    subscribers: Vec<Box<dyn Subscriber>>,
}

struct Inner {
    config: ServerConfig,
    name: String,
    version: String,
    node_id: String,
    node_metadata: BTreeMap<String, String>,
    transport: Arc<dyn Transport>,
    registry: Option<Arc<dyn Registry>>,
    broker: Option<Arc<dyn Broker>>,
    middleware: Middleware,
    logger: Logger,
    handlers: Mutex<Vec<Handler>>,
    subscriptions: Mutex<Vec<Subscription>>,
    routes: std::sync::RwLock<Arc<HashMap<String, Route>>>,
    running: tokio::sync::Mutex<Option<Running>>,
    address: Mutex<Option<String>>,
    stats: Arc<Stats>,
}

/// The mucp server. Cheap to clone.
#[derive(Clone)]
pub struct MucpServer {
    inner: Arc<Inner>,
}

/// What the server needs besides its config.
pub struct ServerParts {
    /// Service name, version and node id.
    pub info: micro_core::plugin::ServiceInfo,
    /// How it listens.
    pub transport: Arc<dyn Transport>,
    /// Where it registers (optional).
    pub registry: Option<Arc<dyn Registry>>,
    /// Where its subscribers subscribe (optional).
    pub broker: Option<Arc<dyn Broker>>,
    /// Handler and subscriber middleware.
    pub middleware: Middleware,
    /// Its logger.
    pub logger: Logger,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MucpServer {
    /// A server with the given config and parts.
    pub fn new(config: ServerConfig, parts: ServerParts) -> Self {
        let mut node_metadata = config.metadata.clone();
        node_metadata.insert("transport".into(), parts.transport.name().to_string());
        node_metadata.insert(
            "broker".into(),
            parts
                .broker
                .as_ref()
                .map_or("none", |b| b.name())
                .to_string(),
        );
        node_metadata.insert(
            "registry".into(),
            parts
                .registry
                .as_ref()
                .map_or("none", |r| r.name())
                .to_string(),
        );
        node_metadata.insert("server".into(), "mucp".into());
        node_metadata.insert("protocol".into(), "mucp".into());
        MucpServer {
            inner: Arc::new(Inner {
                name: parts.info.name,
                version: parts.info.version,
                node_id: parts.info.id,
                node_metadata,
                config,
                transport: parts.transport,
                registry: parts.registry,
                broker: parts.broker,
                middleware: parts.middleware,
                logger: parts.logger,
                handlers: Mutex::new(Vec::new()),
                subscriptions: Mutex::new(Vec::new()),
                routes: std::sync::RwLock::new(Arc::new(HashMap::new())),
                running: tokio::sync::Mutex::new(None),
                address: Mutex::new(None),
                stats: Arc::new(Stats::new()),
            }),
        }
    }

    /// The service record this server registers (valid once started).
    pub async fn record(&self) -> Option<Service> {
        self.inner
            .running
            .lock()
            .await
            .as_ref()
            .map(|r| r.record.clone())
    }

    fn build_routes(&self) -> HashMap<String, Route> {
        let mut handlers = lock(&self.inner.handlers).clone();
        handlers.extend(debug::handlers(self.inner.stats.clone()));
        handlers
            .into_iter()
            .map(|handler| {
                let target = match handler.kind {
                    HandlerKind::Unary(f) => {
                        let inner = middleware::service_fn(move |req| f(req));
                        Target::Unary(middleware::stack(&self.inner.middleware.handler, inner))
                    }
                    HandlerKind::Stream(f) => Target::Stream(f),
                };
                let endpoint = handler.endpoint;
                (endpoint.name.clone(), Route { endpoint, target })
            })
            .collect()
    }

    fn record_for(&self, address: &str, routes: &HashMap<String, Route>) -> Service {
        let node = Node {
            id: self.inner.node_id.clone(),
            address: address.to_string(),
            metadata: self.inner.node_metadata.clone(),
        };
        let subscriptions = lock(&self.inner.subscriptions);
        micro_core::server::node_record(
            &self.inner.name,
            &self.inner.version,
            node,
            routes
                .values()
                .map(|r| r.endpoint.clone())
                .chain(subscriptions.iter().map(|s| s.endpoint.clone())),
        )
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
            let handler = wire::subscriber_handler(
                sub.handler.clone(),
                self.inner.middleware.subscriber.clone(),
                self.inner.name.clone(),
            );
            let mut options = SubscribeOptions::default().auto_ack(true);
            options.queue = sub.queue.clone();
            subscribers.push(broker.subscribe(&sub.topic, handler, options).await?);
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

#[async_trait]
impl Server for MucpServer {
    fn name(&self) -> &str {
        "mucp"
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

    async fn start(&self) -> Result<()> {
        let mut running = self.inner.running.lock().await;
        if running.is_some() {
            return Err(Error::conflict(ID, "server already started"));
        }
        let routes = self.build_routes();
        let listener = self
            .inner
            .transport
            .listen(&self.inner.config.address)
            .await?;
        let address = micro_core::server::advertised_address(
            &self.inner.config.advertise,
            &listener.address(),
        );
        let record = self.record_for(&address, &routes);
        *self.inner.routes.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(routes);
        self.inner.stats.restart();
        let subscribers = self.subscribe_all().await?;
        register(&self.inner, &record).await?;
        let gate = Arc::new(Gate::new(self.inner.config.grace_period));
        let handler = exchange_handler(self.inner.clone(), gate.clone());
        let accept = tokio::spawn(listener.serve(handler, gate.drain.clone()));
        let renew = tokio::spawn(renew_loop(self.inner.clone(), record.clone()));
        self.inner.logger.in_scope(|| {
            tracing::info!(service = %self.inner.name, %address, transport = %self.inner.transport.name(), "server listening")
        });
        *lock(&self.inner.address) = Some(address.clone());
        *running = Some(Running {
            address,
            record,
            accept: Task(accept),
            gate,
            renew: Task(renew),
            subscribers,
        });
        Ok(())
    }

    async fn stop(&self) -> Result<()> {
        let Some(mut running) = self.inner.running.lock().await.take() else {
            return Ok(());
        };
        // Stop being found first, then stop accepting (new requests on open connections get
        // a retryable 503), then let in-flight calls finish, then close the connections.
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
        running.gate.drain.start();
        running.renew.0.abort();
        let grace = self.inner.config.grace_period;
        if tokio::time::timeout(grace, self.inner.stats.drained())
            .await
            .is_err()
        {
            let left = self.inner.stats.in_flight.load(Ordering::Acquire);
            self.inner.logger.in_scope(|| {
                tracing::warn!(
                    in_flight = left,
                    ?grace,
                    "grace period over; answering the requests in flight with an error and closing"
                )
            });
            running.gate.expired.send_replace(true);
            let _ = tokio::time::timeout(ANSWER_WAIT, self.inner.stats.drained()).await;
        }
        running.accept.0.abort();
        let _ = (&mut running.accept.0).await;
        *lock(&self.inner.address) = None;
        self.inner.logger.in_scope(|| {
            tracing::info!(service = %self.inner.name, address = %running.address, "server stopped")
        });
        Ok(())
    }

    fn address(&self) -> Option<String> {
        lock(&self.inner.address).clone()
    }
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

/// A request read from its opening frame, with what answering it needs.
struct Received {
    /// The request, or why it cannot be served (e.g. an invalid `Timeout` header).
    request: Result<Request>,
    /// The headers every answer carries.
    reply: HeaderMap,
    /// The request's deadline (and cancellation), without its metadata.
    ctx: Context,
}

impl Received {
    fn new(inner: &Inner, frame: Message) -> Self {
        let request = wire::request_from_frame(&frame, &inner.name);
        let ctx = request
            .as_ref()
            .map(|r| r.context.deadline_only())
            .unwrap_or_default();
        Received {
            request,
            reply: wire::reply_headers(frame.header),
            ctx,
        }
    }
}

/// Runs a unary endpoint's middleware stack under the request's deadline.
async fn call_unary(
    inner: &Inner,
    service: &RpcService,
    request: Request,
    ctx: &Context,
) -> Result<micro_core::client::Response> {
    let call = middleware::call(service, request);
    micro_core::context::under_deadline(ctx, call, inner.config.grace_period)
        .await
        .map_err(ran)
}

/// An error after dispatch: the handler may have run, so it is never retryable (even when
/// it passes on a retryable error of a call it made itself).
fn ran(error: Error) -> Error {
    error.with_retryable(false)
}

/// The handler the listener serves every exchange with: unary requests and streams alike.
/// Once the server stops, new exchanges are refused; once its grace period is over, those
/// still running are answered with an error and dropped.
fn exchange_handler(inner: Arc<Inner>, gate: Arc<Gate>) -> ExchangeHandler {
    Arc::new(move |exchange: Exchange| {
        let inner = inner.clone();
        let gate = gate.clone();
        Box::pin(async move {
            let _guard = inner.stats.begin();
            let received = Received::new(&inner, exchange.first);
            if let Err(err) = dispatch(&inner, &gate, received, exchange.stream).await {
                failed(&inner, &err);
            }
        })
    })
}

/// Counts a failed request and logs server-side failures.
fn failed(inner: &Inner, err: &Error) {
    inner.stats.errors.fetch_add(1, Ordering::Relaxed);
    if err.code >= 500 {
        inner
            .logger
            .in_scope(|| tracing::debug!(error = %err, "request failed"));
    }
}

/// Where a request goes.
#[derive(Clone)]
enum Target {
    /// A unary endpoint's middleware stack.
    Unary(RpcService),
    /// A streaming endpoint.
    Stream(micro_core::server::StreamFn),
}

/// Checks a request's content type and endpoint and finds where it goes.
fn route(inner: &Inner, request: Request) -> Result<(Request, Target)> {
    micro_core::codec::Format::from_content_type(&request.content_type)?;
    if request.endpoint.is_empty() {
        return Err(Error::bad_request(
            ID,
            "missing Micro-Endpoint header: name the endpoint, e.g. Greeter.Hello",
        ));
    }
    let routes = inner
        .routes
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match routes.get(&request.endpoint) {
        Some(route) => Ok((request, route.target.clone())),
        None => Err(Error::not_found(
            ID,
            format!(
                "service {}: unknown endpoint {}",
                inner.name, request.endpoint
            ),
        )),
    }
}

/// The endpoint a reply answers (its headers echo `Micro-Endpoint`), for error messages.
fn endpoint_of(reply: &HeaderMap) -> String {
    reply
        .get(micro_core::transport::headers::ENDPOINT)
        .unwrap_or("the endpoint")
        .to_string()
}

/// The error for a streaming endpoint called without a stream.
fn stream_only(request: &Request) -> Error {
    Error::bad_request(
        ID,
        format!(
            "endpoint {} streams: open a stream (Micro-Stream header)",
            request.endpoint
        ),
    )
}

/// Routes a request and answers it on its stream (one response frame for a unary endpoint);
/// the error (if any) has been sent to the caller already.
async fn dispatch(inner: &Inner, gate: &Gate, received: Received, stream: Stream) -> Result<()> {
    let Received {
        request,
        reply,
        ctx,
    } = received;
    let sender = stream.sender.clone();
    if gate.drain.is_started() {
        let err = shutting_down();
        sender
            .send(wire::response_frame(reply, Err(err.clone())))
            .await?;
        return Err(err);
    }
    let target = match request.and_then(|r| route(inner, r)) {
        Ok((request, Target::Stream(_))) if !request.stream => Err(stream_only(&request)),
        other => other,
    };
    let result = match target {
        Ok((request, Target::Unary(service))) => {
            let call = call_unary(inner, &service, request, &ctx);
            gate.until_grace_over(catch_panic(call, || endpoint_of(&reply)))
                .await
        }
        Ok((request, Target::Stream(f))) => {
            // A stream is stopped at its deadline (no grace: it would keep sending), as soon
            // as its caller stops receiving, and when a stopping server's grace period is over.
            let work = async {
                tokio::select! {
                    result = catch_panic(f(request, stream), || endpoint_of(&reply)) => result,
                    _ = sender.closed() => {
                        ctx.cancel();
                        Err(Error::transport(ID, "the caller went away; the stream was stopped"))
                    }
                    _ = gate.expired() => Err(grace_over(gate.grace)),
                }
            };
            let result = micro_core::context::under_deadline(&ctx, work, Duration::ZERO)
                .await
                .map_err(ran);
            if let Err(err) = &result {
                // The handler's typed adapter reports its own errors; this covers deadlines
                // and failures before it could.
                let _ = sender.send(streaming::error_frame(err)).await;
            }
            return result;
        }
        Err(err) => Err(err),
    };
    let failure = result.as_ref().err().cloned();
    sender.send(wire::response_frame(reply, result)).await?;
    failure.map_or(Ok(()), Err)
}
