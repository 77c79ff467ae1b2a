//! The RPC host: endpoints and subscribers, start/stop with registration and draining.

use crate::broker;
use crate::client::{Request, Response};
use crate::registry::Endpoint;
use crate::transport::Stream;
use crate::Result;
use async_trait::async_trait;
use futures::future::BoxFuture;
use std::sync::Arc;

/// Answers a unary request.
pub type UnaryFn = Arc<dyn Fn(Request) -> BoxFuture<'static, Result<Response>> + Send + Sync>;

/// Serves a streaming endpoint: gets the opening request and the stream to talk on.
pub type StreamFn = Arc<dyn Fn(Request, Stream) -> BoxFuture<'static, Result<()>> + Send + Sync>;

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
    /// Listens, registers and serves.
    async fn start(&self) -> Result<()>;
    /// Deregisters, drains in-flight requests and closes.
    async fn stop(&self) -> Result<()>;
    /// The address it listens on, once started.
    fn address(&self) -> Option<String>;
}
