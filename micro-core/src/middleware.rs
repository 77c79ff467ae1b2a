//! Middleware: tower layers around calls (whole call, each attempt) and around handlers and
//! subscribers, all over the typed [`Request`]/[`Response`].
//!
//! Any tower layer whose service keeps `Request -> Response` fits: tower's timeout,
//! concurrency limit, rate limit and load shed included. Their errors become
//! `micro::Error`s (an elapsed timeout is 408, an overloaded service 503).

use crate::Error;
use crate::client::{Request, Response};
use std::sync::Arc;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

/// Errors inside a middleware stack.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A call or handler as a boxed tower service.
pub type RpcService = BoxCloneSyncService<Request, Response, BoxError>;

/// A layer, boxed so stacks can be chosen at run time.
#[derive(Clone)]
pub struct RpcLayer(Arc<dyn Fn(RpcService) -> RpcService + Send + Sync>);

impl std::fmt::Debug for RpcLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RpcLayer")
    }
}

impl RpcLayer {
    /// Boxes a tower layer.
    pub fn new<L>(layer: L) -> Self
    where
        L: Layer<RpcService> + Send + Sync + 'static,
        L::Service: Service<Request, Response = Response> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Error: Into<BoxError> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        RpcLayer(Arc::new(move |inner| {
            BoxCloneSyncService::new(layer.layer(inner).map_err(Into::into))
        }))
    }

    /// Wraps `service` in this layer.
    pub fn apply(&self, service: RpcService) -> RpcService {
        (self.0)(service)
    }
}

/// Wraps `service` in `layers`, the first one outermost.
pub fn stack(layers: &[RpcLayer], service: RpcService) -> RpcService {
    layers.iter().rev().fold(service, |s, l| l.apply(s))
}

/// Boxes an async function as the innermost service of a stack.
pub fn service_fn<F, Fut>(f: F) -> RpcService
where
    F: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Response, Error>> + Send + 'static,
{
    BoxCloneSyncService::new(tower::service_fn(move |req| {
        let f = f.clone();
        async move { f(req).await.map_err(BoxError::from) }
    }))
}

/// Turns a middleware error back into a `micro::Error`.
pub fn into_error(err: BoxError) -> Error {
    let err = match err.downcast::<Error>() {
        Ok(e) => return *e,
        Err(other) => other,
    };
    if err.is::<tower::timeout::error::Elapsed>() {
        return Error::timeout("go.micro.middleware", "request timed out in middleware");
    }
    if err.is::<tower::load_shed::error::Overloaded>() {
        return Error::unavailable("go.micro.middleware", "service overloaded: try again later");
    }
    Error::internal("go.micro.middleware", err.to_string())
}

/// Runs `request` through `service`.
pub async fn call(service: &RpcService, request: Request) -> Result<Response, Error> {
    service.clone().oneshot(request).await.map_err(into_error)
}

/// The middleware of a service, given to the client and server plugins.
#[derive(Clone, Default, Debug)]
pub struct Middleware {
    /// Around a whole client call (all attempts).
    pub call: Vec<RpcLayer>,
    /// Around each attempt of a client call.
    pub attempt: Vec<RpcLayer>,
    /// Around each unary handler.
    pub handler: Vec<RpcLayer>,
    /// Around each subscriber delivery (`endpoint` = topic).
    pub subscriber: Vec<RpcLayer>,
}
