//! The RPC caller: unary calls, streams and publishing, with per-call options.
//!
//! [`Request`] and [`Response`] are shared with the server: they are what middleware (tower
//! layers) sees on both sides.

use crate::broker;
use crate::context::{Context, Metadata};
use crate::selector::SelectOptions;
use crate::transport::Stream;
use crate::Result;
use async_trait::async_trait;
use bytes::Bytes;
use std::time::Duration;

/// A call to an endpoint of a service, with its encoded body and call context.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Service name, e.g. `greeter`.
    pub service: String,
    /// Endpoint, e.g. `Greeter.Hello`.
    pub endpoint: String,
    /// Content type of `body` (and of the expected response).
    pub content_type: String,
    /// Encoded request.
    pub body: Bytes,
    /// Metadata and deadline.
    pub context: Context,
    /// Whether the endpoint streams.
    pub stream: bool,
}

impl Request {
    /// A request to `service`'s `endpoint` with a JSON body.
    pub fn new(service: impl Into<String>, endpoint: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Request {
            service: service.into(),
            endpoint: endpoint.into(),
            content_type: crate::codec::JSON.to_string(),
            body: body.into(),
            ..Default::default()
        }
    }
}

/// The answer to a unary call.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// Headers the server sent back.
    pub header: Metadata,
    /// Content type of `body`.
    pub content_type: String,
    /// Encoded response.
    pub body: Bytes,
}

/// Options of one call; unset fields take the client's configured values.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// Call this address directly instead of asking the selector.
    pub address: Option<String>,
    /// Retries after the first attempt.
    pub retries: Option<u32>,
    /// Overall time limit of the call (tightened by the context's deadline).
    pub request_timeout: Option<Duration>,
    /// The endpoint is safe to run twice, so any failure may be retried.
    pub idempotent: bool,
    /// Filters and strategy for node selection.
    pub select: SelectOptions,
}

/// Calls services.
#[async_trait]
pub trait Client: Send + Sync + 'static {
    /// Plugin name, e.g. `mucp`.
    fn name(&self) -> &str;
    /// A unary call.
    async fn call(&self, request: Request, options: CallOptions) -> Result<Response>;
    /// Opens a stream to the endpoint; the first frame carries the request.
    async fn stream(&self, request: Request, options: CallOptions) -> Result<Stream>;
    /// Publishes a message on a topic through the broker.
    async fn publish(&self, topic: &str, message: broker::Message) -> Result<()>;
}
