//! The RPC host: endpoints and subscribers, start/stop with registration and draining.

use crate::Result;
use crate::broker;
use crate::client::{Request, Response};
use crate::registry::Endpoint;
use crate::transport::Stream;
use async_trait::async_trait;
use futures::future::BoxFuture;
use std::sync::Arc;

/// Answers a unary request.
pub type UnaryFn = Arc<dyn Fn(Request) -> BoxFuture<'static, Result<Response>> + Send + Sync>;

/// Serves a streaming endpoint: gets the opening request and the stream to talk on.
pub type StreamFn = Arc<dyn Fn(Request, Stream) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// Runs a handler's `work`, turning a panic into a 500 that names the endpoint (`endpoint`
/// is asked only then), so one bad request never takes down a connection, the other calls
/// on it, or the server. Every server plugin wraps its handlers in it.
pub async fn catch_panic<T>(
    work: impl std::future::Future<Output = Result<T>>,
    endpoint: impl FnOnce() -> String,
) -> Result<T> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            Err(crate::Error::internal(
                "go.micro.server",
                format!(
                    "the handler of {} panicked: {message}; the server goes on serving, \
                     fix the handler",
                    endpoint()
                ),
            ))
        }
    }
}

/// How an endpoint is served.
#[derive(Clone)]
pub enum HandlerKind {
    /// One request, one response.
    Unary(UnaryFn),
    /// Frames both ways.
    Stream(StreamFn),
}

/// An endpoint and the code that serves it.
#[derive(Clone)]
pub struct Handler {
    /// Name, shapes and metadata published in the registry.
    pub endpoint: Endpoint,
    /// The code.
    pub kind: HandlerKind,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("endpoint", &self.endpoint.name)
            .finish()
    }
}

/// A topic subscription served by the server.
#[derive(Clone)]
pub struct Subscription {
    /// Topic.
    pub topic: String,
    /// Queue group (`None` = broadcast).
    pub queue: Option<String>,
    /// Code run for each message.
    pub handler: broker::Handler,
    /// Published in the registry with `topic` and `subscriber=true` metadata.
    pub endpoint: Endpoint,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("topic", &self.topic)
            .field("queue", &self.queue)
            .finish()
    }
}

/// Something that provides endpoints to a service: a single [`Handler`], a list, or a
/// generated server adapter.
pub trait IntoHandlers {
    /// The endpoints.
    fn into_handlers(self) -> Vec<Handler>;

    /// Typed implementations for in-process calls (generated server adapters offer one).
    fn local_impls(&self) -> Vec<crate::in_process::LocalImpl> {
        Vec::new()
    }

    /// Encoded protobuf `FileDescriptorSet`s describing the endpoints (adapters generated
    /// from a `.proto` by micro-build offer theirs), for servers that publish them (gRPC
    /// server reflection).
    fn file_descriptor_sets(&self) -> Vec<&'static [u8]> {
        Vec::new()
    }
}

impl IntoHandlers for Handler {
    fn into_handlers(self) -> Vec<Handler> {
        vec![self]
    }
}

impl IntoHandlers for Vec<Handler> {
    fn into_handlers(self) -> Vec<Handler> {
        self
    }
}

/// Hosts endpoints and subscribers.
#[async_trait]
pub trait Server: Send + Sync + 'static {
    /// Plugin name, e.g. `mucp`.
    fn name(&self) -> &str;
    /// Adds an endpoint (before `start`).
    fn handle(&self, handler: Handler) -> Result<()>;
    /// Adds a subscriber (before `start`).
    fn subscribe(&self, subscription: Subscription) -> Result<()>;
    /// Adds an encoded protobuf `FileDescriptorSet` describing endpoints (before `start`);
    /// servers that do not publish descriptors ignore it (the default).
    fn add_file_descriptor_set(&self, encoded: &'static [u8]) -> Result<()> {
        let _ = encoded;
        Ok(())
    }
    /// Listens, registers and serves.
    async fn start(&self) -> Result<()>;
    /// Deregisters, drains in-flight requests and closes.
    async fn stop(&self) -> Result<()>;
    /// The address it listens on, once started.
    fn address(&self) -> Option<String>;
}

/// The registry record of one server node: the service `name` at `version` with `node`,
/// and the endpoints of its handlers and subscribers sorted by name. Every server plugin
/// registers this shape.
pub fn node_record(
    name: &str,
    version: &str,
    node: crate::registry::Node,
    endpoints: impl IntoIterator<Item = Endpoint>,
) -> crate::registry::Service {
    let mut endpoints: Vec<Endpoint> = endpoints.into_iter().collect();
    endpoints.sort_by(|a, b| a.name.cmp(&b.name));
    crate::registry::Service {
        name: name.to_string(),
        version: version.to_string(),
        metadata: Default::default(),
        endpoints,
        nodes: vec![node],
    }
}

/// The address a server publishes: `advertise` when set, else the address it bound with an
/// unspecified host (`0.0.0.0`, `[::]`, none) replaced by loopback.
pub fn advertised_address(advertise: &str, bound: &str) -> String {
    if !advertise.is_empty() {
        return advertise.to_string();
    }
    for unspecified in ["0.0.0.0:", "[::]:", ":"] {
        if let Some(port) = bound.strip_prefix(unspecified) {
            return format!("127.0.0.1:{port}");
        }
    }
    bound.to_string()
}

use crate::codec::{Format, Payload};
use crate::context::Context;
use crate::streaming::{self, Streaming};
use std::future::Future;

fn endpoint(name: impl Into<String>, stream: bool) -> Endpoint {
    let mut endpoint = Endpoint {
        name: name.into(),
        ..Default::default()
    };
    endpoint
        .metadata
        .insert("stream".into(), stream.to_string());
    endpoint
}

/// Reads the one request message of a server-streaming call.
async fn first_message<Req: Payload>(
    receiver: &mut crate::transport::StreamReceiver,
    format: Format,
) -> Result<Req> {
    match receiver.recv().await {
        Some(Ok(frame)) => match streaming::frame_error(&frame) {
            Some(err) => Err(err),
            None => Req::decode(format, &frame.body),
        },
        Some(Err(err)) => Err(err),
        None => Err(crate::Error::bad_request(
            "go.micro.server",
            "the stream ended before its request message",
        )),
    }
}

/// Sends `result` (one message or an error) and ends the stream.
async fn answer<Resp: Payload>(
    sender: crate::transport::StreamSender,
    format: Format,
    result: Result<Resp>,
) -> Result<()> {
    let frame = result
        .and_then(|r| streaming::message_frame(&r, format))
        .unwrap_or_else(|e| streaming::error_frame(&e));
    sender.send(frame).await
}

/// Sends the response stream, or the error that replaced it.
async fn answer_stream<Resp: Payload>(
    sender: crate::transport::StreamSender,
    format: Format,
    result: Result<Streaming<Resp>>,
    ctx: &Context,
) -> Result<()> {
    match result {
        Ok(responses) => streaming::send_all(sender, format, responses, ctx).await,
        Err(err) => sender.send(streaming::error_frame(&err)).await,
    }
}

impl Handler {
    /// A unary endpoint: one request, one response.
    pub fn unary<Req, Resp, F, Fut>(name: impl Into<String>, f: F) -> Handler
    where
        Req: Payload,
        Resp: Payload,
        F: Fn(Context, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp>> + Send + 'static,
    {
        let f = Arc::new(f);
        Handler {
            endpoint: endpoint(name, false),
            kind: HandlerKind::Unary(Arc::new(move |request: Request| {
                let f = f.clone();
                Box::pin(async move {
                    let format = Format::from_content_type(&request.content_type)?;
                    let message = Req::decode(format, &request.body)?;
                    let response = f(request.context, message).await?;
                    Ok(Response {
                        header: Default::default(),
                        content_type: format.content_type().to_string(),
                        body: response.encode(format)?,
                    })
                })
            })),
        }
    }

    /// A server-streaming endpoint: one request, a stream of responses.
    pub fn server_stream<Req, Resp, F, Fut>(name: impl Into<String>, f: F) -> Handler
    where
        Req: Payload,
        Resp: Payload,
        F: Fn(Context, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Streaming<Resp>>> + Send + 'static,
    {
        let f = Arc::new(f);
        Handler {
            endpoint: endpoint(name, true),
            kind: HandlerKind::Stream(Arc::new(move |request: Request, mut stream: Stream| {
                let f = f.clone();
                Box::pin(async move {
                    let format = Format::from_content_type(&request.content_type)?;
                    let ctx = request.context.deadline_only();
                    let result = match first_message::<Req>(&mut stream.receiver, format).await {
                        Ok(message) => f(request.context, message).await,
                        Err(err) => Err(err),
                    };
                    answer_stream(stream.sender, format, result, &ctx).await
                })
            })),
        }
    }

    /// A client-streaming endpoint: a stream of requests, one response.
    pub fn client_stream<Req, Resp, F, Fut>(name: impl Into<String>, f: F) -> Handler
    where
        Req: Payload,
        Resp: Payload,
        F: Fn(Context, Streaming<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp>> + Send + 'static,
    {
        let f = Arc::new(f);
        Handler {
            endpoint: endpoint(name, true),
            kind: HandlerKind::Stream(Arc::new(move |request: Request, stream: Stream| {
                let f = f.clone();
                Box::pin(async move {
                    let format = Format::from_content_type(&request.content_type)?;
                    let requests =
                        streaming::receive_until(stream.receiver, format, &request.context);
                    let result = f(request.context, requests).await;
                    answer(stream.sender, format, result).await
                })
            })),
        }
    }

    /// A bidirectional endpoint: streams both ways.
    pub fn bidi_stream<Req, Resp, F, Fut>(name: impl Into<String>, f: F) -> Handler
    where
        Req: Payload,
        Resp: Payload,
        F: Fn(Context, Streaming<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Streaming<Resp>>> + Send + 'static,
    {
        let f = Arc::new(f);
        Handler {
            endpoint: endpoint(name, true),
            kind: HandlerKind::Stream(Arc::new(move |request: Request, stream: Stream| {
                let f = f.clone();
                Box::pin(async move {
                    let format = Format::from_content_type(&request.content_type)?;
                    let ctx = request.context.deadline_only();
                    let requests = streaming::receive_until(stream.receiver, format, &ctx);
                    let result = f(request.context, requests).await;
                    answer_stream(stream.sender, format, result, &ctx).await
                })
            })),
        }
    }

    /// Marks the endpoint safe to run twice, so the client may retry it after any failure.
    pub fn idempotent(self) -> Self {
        self.with_metadata("idempotent", "true")
    }

    /// Adds endpoint metadata (published in the registry).
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.endpoint.metadata.insert(key.into(), value.into());
        self
    }

    /// Sets the request and response shapes published in the registry.
    pub fn with_shapes(
        mut self,
        request: Option<crate::registry::Value>,
        response: Option<crate::registry::Value>,
    ) -> Self {
        self.endpoint.request = request;
        self.endpoint.response = response;
        self
    }

    /// Keeps the request's and response's JSON Schemas (text) in the endpoint's metadata,
    /// under [`schema::REQUEST_SCHEMA`](crate::schema::REQUEST_SCHEMA) and
    /// [`schema::RESPONSE_SCHEMA`](crate::schema::RESPONSE_SCHEMA).
    pub fn with_schemas(mut self, request: Option<String>, response: Option<String>) -> Self {
        for (key, schema) in [
            (crate::schema::REQUEST_SCHEMA, request),
            (crate::schema::RESPONSE_SCHEMA, response),
        ] {
            if let Some(schema) = schema {
                self.endpoint.metadata.insert(key.to_string(), schema);
            }
        }
        self
    }
}

impl Subscription {
    /// A subscriber of `topic` decoding each message as `T` (by its `Content-Type`).
    /// `queue` = `None` gets every message; a queue group shares them.
    pub fn new<T, F, Fut>(topic: impl Into<String>, queue: Option<String>, f: F) -> Subscription
    where
        T: Payload,
        F: Fn(Context, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let topic = topic.into();
        let f = Arc::new(f);
        let mut endpoint = Endpoint {
            name: topic.clone(),
            ..Default::default()
        };
        endpoint.metadata.insert("topic".into(), topic.clone());
        endpoint.metadata.insert("subscriber".into(), "true".into());
        if let Some(q) = &queue {
            endpoint.metadata.insert("queue".into(), q.clone());
        }
        Subscription {
            topic,
            queue,
            handler: Arc::new(move |delivery: broker::Delivery| {
                let f = f.clone();
                Box::pin(async move {
                    let content_type = delivery
                        .message
                        .header
                        .iter()
                        .find(|(k, _)| {
                            k.eq_ignore_ascii_case(crate::transport::headers::CONTENT_TYPE)
                        })
                        .map(|(_, v)| v.as_str())
                        .unwrap_or("");
                    let format = Format::from_content_type(content_type)?;
                    let message = T::decode(format, &delivery.message.body)?;
                    let mut context = Context::new();
                    for (k, v) in &delivery.message.header {
                        if !crate::transport::headers::is_reserved(k) {
                            context.metadata.insert(k.clone(), v.clone());
                        }
                    }
                    f(context, message).await
                })
            }),
            endpoint,
        }
    }
}
