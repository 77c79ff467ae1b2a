//! `micro api`: the HTTP API gateway (axum), routing as go-micro's does: a resolver turns the
//! path into a service and endpoint, a handler turns the request into a call (or a
//! published event, or a proxied request).
//!
//! [`Gateway::router`] is a plain `axum::Router`, so it can be served by `micro api` or
//! mounted in an application's own axum server. See the crate README for every handler.

mod openapi;
mod proxy;
pub mod resolver;
mod routes;
mod rpc;
mod stream;

use crate::commands::Commands;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use micro::Error;
use resolver::{ID, Resolver};
use std::sync::Arc;

/// How requests become calls.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HandlerKind {
    /// By the endpoint's `handler` metadata in the registry; `rpc` when it has none.
    #[default]
    Meta,
    /// The body (JSON, protobuf, a form, or the query of a GET) is the request.
    Rpc,
    /// The whole HTTP request as go-micro's `api.Request` envelope; the endpoint answers an
    /// `api.Response` (status, headers, body).
    Api,
    /// Publishes the request as an event on `namespace.<first segment>`.
    Event,
    /// A reverse proxy to a node of the service the first path segment names.
    Http,
    /// The same as `http`.
    Proxy,
    /// `http` plus websocket upgrades passed through.
    Web,
}

/// The gateway's options: flags `--address` ... and env `MICRO_API_*`.
#[derive(clap::Args, Debug, Clone)]
pub struct ApiOptions {
    /// Where to listen.
    #[arg(long, env = "MICRO_API_ADDRESS", default_value = "127.0.0.1:8080")]
    pub address: String,
    /// How requests become calls.
    #[arg(long, env = "MICRO_API_HANDLER", value_enum, default_value_t)]
    pub handler: HandlerKind,
    /// Prefix of the services' names (go-micro's gateway used `go.micro.api`).
    #[arg(long, env = "MICRO_API_NAMESPACE", default_value = "")]
    pub namespace: String,
    /// How paths become services and endpoints.
    #[arg(long, env = "MICRO_API_RESOLVER", value_enum, default_value_t)]
    pub resolver: Resolver,
    /// Serve `POST /rpc` (`{"service", "endpoint", "request", "address"}`).
    #[arg(long = "enable_rpc", env = "MICRO_API_ENABLE_RPC")]
    pub enable_rpc: bool,
    /// Answer CORS preflights and allow any origin.
    #[arg(long = "enable_cors", env = "MICRO_API_ENABLE_CORS")]
    pub enable_cors: bool,
    /// Largest request body in bytes; larger ones get 413.
    #[arg(long = "max_body", env = "MICRO_API_MAX_BODY", default_value_t = 10 << 20)]
    pub max_body: usize,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            address: "127.0.0.1:8080".into(),
            handler: HandlerKind::default(),
            namespace: String::new(),
            resolver: Resolver::default(),
            enable_rpc: false,
            enable_cors: false,
            max_body: 10 << 20,
        }
    }
}

/// A check run before each request is dispatched: allow it (`Ok`) or refuse it with an
/// error whose code becomes the HTTP status (401, 403). The auth issue supplies a real one
/// (bearer token → `Auth::inspect` + rules); the default allows everything.
#[micro::__private::async_trait]
pub trait AuthHook: Send + Sync + 'static {
    /// Checks a request (its method, path and headers; the body is not read yet).
    async fn check(&self, request: &axum::http::request::Parts) -> Result<(), Error>;
}

/// Allows every request.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

#[micro::__private::async_trait]
impl AuthHook for AllowAll {
    async fn check(&self, _request: &axum::http::request::Parts) -> Result<(), Error> {
        Ok(())
    }
}

/// The gateway: options, the registry and client it calls through, and the auth hook.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    options: ApiOptions,
    commands: Commands,
    auth: Arc<dyn AuthHook>,
    proxy: proxy::ProxyClient,
    next_node: std::sync::atomic::AtomicUsize,
    routes: routes::RouteTable,
}

impl Gateway {
    /// A gateway over `commands` (registry and client) with `options`, allowing everything.
    pub fn new(commands: Commands, options: ApiOptions) -> Self {
        Self::with_auth(commands, options, Arc::new(AllowAll))
    }

    /// A gateway whose requests first pass `auth`.
    pub fn with_auth(commands: Commands, options: ApiOptions, auth: Arc<dyn AuthHook>) -> Self {
        Gateway {
            inner: Arc::new(Inner {
                options,
                commands,
                auth,
                proxy: proxy::client(),
                next_node: Default::default(),
                routes: Default::default(),
            }),
        }
    }

    /// The options.
    pub fn options(&self) -> &ApiOptions {
        &self.inner.options
    }

    pub(crate) fn commands(&self) -> &Commands {
        &self.inner.commands
    }

    fn routes(&self) -> &routes::RouteTable {
        &self.inner.routes
    }

    fn proxy_client(&self) -> &proxy::ProxyClient {
        &self.inner.proxy
    }

    /// The address of a node of `service`, taking them in turn.
    async fn pick_node(&self, service: &str) -> Result<String, Error> {
        let mut nodes = self.inner.routes.nodes(&self.inner.commands, service).await;
        if nodes.is_empty() {
            // Not in the last read (or newer than it): ask the registry, which also says
            // when the service is unknown (a 404 naming close names).
            nodes = self
                .inner
                .commands
                .get_service(service)
                .await?
                .iter()
                .flat_map(|v| v.nodes.iter().map(|n| n.address.clone()))
                .collect();
        }
        if nodes.is_empty() {
            return Err(Error::unavailable(
                ID,
                format!("service {service} has no nodes: start one, or check its registry"),
            ));
        }
        let turn = self
            .inner
            .next_node
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(nodes[turn % nodes.len()].clone())
    }

    /// The routes: `GET /` (the version), `POST /rpc` with `enable_rpc`, everything else
    /// through the resolver and the handler; the body limit; CORS with `enable_cors`.
    pub fn router(&self) -> Router {
        let options = &self.inner.options;
        let mut router = Router::new()
            .route("/", get(version))
            .route("/openapi.json", get(openapi::serve));
        if options.enable_rpc {
            router = router.route("/rpc", post(rpc::rpc_endpoint));
        }
        let mut router = router
            .fallback(any(dispatch))
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                check_auth,
            ))
            .layer(DefaultBodyLimit::max(options.max_body))
            .with_state(self.clone());
        if options.enable_cors {
            router = router.layer(axum::middleware::from_fn(cors));
        }
        router
    }

    /// Serves on `listener` until `shutdown` completes.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// `GET /`: `{"version": "..."}`.
async fn version() -> Response {
    json_response(
        StatusCode::OK,
        serde_json::json!({ "version": env!("CARGO_PKG_VERSION") }).to_string(),
    )
}

/// Runs the auth hook before anything else.
async fn check_auth(State(gateway): State<Gateway>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    if let Err(e) = gateway.inner.auth.check(&parts).await {
        return error_response(&e);
    }
    next.run(Request::from_parts(parts, body)).await
}

/// Every path but `/` and `/rpc`: by the configured handler.
async fn dispatch(State(gateway): State<Gateway>, request: Request) -> Response {
    let result = match gateway.inner.options.handler {
        HandlerKind::Rpc => rpc::rpc(&gateway, request).await,
        HandlerKind::Meta => rpc::meta(&gateway, request).await,
        HandlerKind::Api => rpc::api(&gateway, request).await,
        HandlerKind::Event => rpc::event(&gateway, request).await,
        HandlerKind::Http | HandlerKind::Proxy => Ok(proxy::proxy(&gateway, request, false).await),
        HandlerKind::Web => Ok(proxy::proxy(&gateway, request, true).await),
    };
    result.unwrap_or_else(|e| error_response(&e))
}

/// A micro error as the response: status = its code (0 or out of range → 500), body = the
/// error JSON.
pub fn error_response(error: &Error) -> Response {
    let status = StatusCode::from_u16(error.code)
        .ok()
        .filter(|s| s.as_u16() >= 400)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, error.to_json())
}

pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// go-micro's CORS: the request's origin echoed, fixed methods and headers, preflights
/// answered at once.
async fn cors(request: Request, next: Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let mut response = if request.method() == Method::OPTIONS {
        StatusCode::OK.into_response()
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    if let Some(origin) = origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, PATCH, GET, OPTIONS, PUT, DELETE"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(
            "Accept, Content-Type, Content-Length, Accept-Encoding, X-CSRF-Token, Authorization",
        ),
    );
    response
}

/// The body of a request, or the 413/400 of reading it.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, Error> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.to_string().contains("length limit"))
            || e.to_string().contains("length limit");
        if too_large {
            Error::too_large(
                ID,
                format!("the body is larger than {limit} bytes (--max_body)"),
            )
        } else {
            Error::bad_request(ID, format!("reading the body: {e}"))
        }
    })
}
