//! The grpc client: picks a node with the selector (only nodes that speak grpc), keeps one
//! HTTP/2 channel per address, and calls `/{package}.{Trait}/{Method}` with the caller's
//! deadline as `grpc-timeout` and its metadata as gRPC metadata.
//!
//! A failed attempt is retried only when the call cannot have run: connecting failed, or
//! the server refused it before dispatch (a stopping server's retryable UNAVAILABLE) — or
//! when the call is idempotent.

use crate::status::from_status;
use crate::wire::{self, RawCodec};
use async_trait::async_trait;
use futures::StreamExt;
use http::HeaderValue;
use http::uri::PathAndQuery;
use micro_core::broker::{self, Broker};
use micro_core::client::{CallOptions, Client, Request, Response};
use micro_core::codec::Format;
use micro_core::config::ClientConfig;
use micro_core::logger::Logger;
use micro_core::middleware::{self, Middleware};
use micro_core::registry::Node;
use micro_core::selector::Selector;
use micro_core::transport::{Message, Stream, headers, stream_pair};
use micro_core::{Error, ErrorKind, Result};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};
use tonic::Status;
use tonic::body::Body;
use tonic::transport::{Channel, Endpoint};

const ID: &str = "go.micro.client";

/// What the client needs besides its config.
pub struct ClientParts {
    /// Picks nodes (optional: then every call must name an address).
    pub selector: Option<Arc<dyn Selector>>,
    /// Where `publish` goes (optional).
    pub broker: Option<Arc<dyn Broker>>,
    /// Call middleware.
    pub middleware: Middleware,
    /// Its logger.
    pub logger: Logger,
}

struct Inner {
    config: ClientConfig,
    parts: ClientParts,
    /// Read on every call, written when a connection is made or dropped.
    channels: RwLock<HashMap<String, Channel>>,
    max_message_size: usize,
}

/// The grpc client. Cheap to clone.
#[derive(Clone)]
pub struct GrpcClient {
    inner: Arc<Inner>,
}

/// A channel that sends the request's gRPC content type (tonic always writes
/// `application/grpc`; JSON messages travel as `application/grpc+json`).
#[derive(Clone)]
struct Typed {
    channel: Channel,
    content_type: HeaderValue,
}

impl tower::Service<http::Request<Body>> for Typed {
    type Response = http::Response<Body>;
    type Error = tonic::transport::Error;
    type Future = <Channel as tower::Service<http::Request<Body>>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::result::Result<(), Self::Error>> {
        tower::Service::poll_ready(&mut self.channel, cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        request
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, self.content_type.clone());
        tower::Service::call(&mut self.channel, request)
    }
}

/// The wait before retry number `attempt` (1-based): 10 ms doubling, capped at 1 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(10)
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(7))
        .min(Duration::from_secs(1))
}

/// Whether a status came from failing to reach the server (the call never left).
fn never_sent(status: &Status) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable
            );
        }
        next = err.source();
    }
    false
}

/// The micro error of a failed call's status. A status with a source was made here, from
/// a connection failure (not received from the server): a 503 transport error, retryable
/// when the call never left.
fn call_error(status: &Status, address: &str) -> Error {
    let Some(source) = std::error::Error::source(status) else {
        return from_status(status, ID);
    };
    let mut detail = format!("calling {address}: {}", status.message());
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(source);
    while let Some(err) = next {
        detail.push_str(&format!(": {err}"));
        next = err.source();
    }
    let error = Error::transport(ID, detail);
    if never_sent(status) {
        error.retryable()
    } else {
        error
    }
}

/// The error ending a stream: a 408 when the caller's deadline passed (tonic's own timer
/// ends the call as CANCELLED), else [`call_error`].
fn stream_error(status: &Status, address: &str, deadline: Option<Instant>) -> Error {
    if deadline.is_some_and(|d| Instant::now() >= d)
        && status
            .metadata()
            .get_bin(crate::status::MICRO_ERROR)
            .is_none()
    {
        return Error::timeout(
            ID,
            "deadline exceeded: the stream was stopped when the caller's timeout ran out",
        );
    }
    call_error(status, address)
}

fn timed_out(request: &Request) -> Error {
    Error::timeout(
        ID,
        format!(
            "call to {} {} timed out: give it a longer timeout (CallOptions request_timeout, \
             client pool_request_timeout) or check that the service is healthy",
            request.service, request.endpoint
        ),
    )
}

impl GrpcClient {
    /// A client with the given config and parts.
    pub fn new(config: ClientConfig, parts: ClientParts) -> Self {
        GrpcClient {
            inner: Arc::new(Inner {
                config,
                parts,
                channels: RwLock::new(HashMap::new()),
                max_message_size: wire::DEFAULT_MAX_MESSAGE_SIZE,
            }),
        }
    }

    /// The node (or named address) for one attempt.
    async fn pick(
        &self,
        request: &Request,
        options: &CallOptions,
    ) -> Result<(String, Option<Node>)> {
        if let Some(address) = &options.address {
            return Ok((address.clone(), None));
        }
        let selector = self.inner.parts.selector.as_ref().ok_or_else(|| {
            Error::bad_request(
                ID,
                "no selector: enable selector or give the call an address",
            )
        })?;
        let mut select = options.select.clone();
        if select.transport.is_none() {
            select.transport = Some(Arc::from("grpc"));
        }
        let node = selector.select(&request.service, &select).await?;
        Ok((node.address.clone(), Some(node)))
    }

    /// The channel to `address`, connected on first use (a failure to connect is
    /// retryable: nothing was sent).
    async fn channel(&self, address: &str, deadline: Option<Instant>) -> Result<Channel> {
        if let Some(channel) = self
            .inner
            .channels
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(address)
        {
            return Ok(channel.clone());
        }
        let uri = if address.contains("://") {
            address.to_string()
        } else {
            format!("http://{address}")
        };
        let mut endpoint = Endpoint::from_shared(uri).map_err(|e| {
            Error::bad_request(ID, format!("invalid grpc address {address:?}: {e}"))
        })?;
        endpoint = endpoint.tcp_nodelay(true);
        if let Some(deadline) = deadline {
            endpoint = endpoint.connect_timeout(deadline.saturating_duration_since(Instant::now()));
        }
        let channel = endpoint.connect().await.map_err(|e| {
            Error::transport(ID, format!("cannot connect to {address}: {e}")).retryable()
        })?;
        self.inner
            .channels
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(address.to_string(), channel.clone());
        Ok(channel)
    }

    fn forget(&self, address: &str) {
        self.inner
            .channels
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(address);
    }

    /// A tonic client on `channel` for `request`'s content type.
    fn grpc(&self, channel: Channel, request: &Request) -> Result<tonic::client::Grpc<Typed>> {
        let format = Format::from_content_type(&request.content_type)?;
        let typed = Typed {
            channel,
            content_type: HeaderValue::from_static(wire::content_type_of(format)),
        };
        Ok(tonic::client::Grpc::new(typed)
            .max_decoding_message_size(self.inner.max_message_size)
            .max_encoding_message_size(self.inner.max_message_size))
    }

    /// The tonic request: metadata and `grpc-timeout` (what is left of the deadline).
    fn tonic_request<T>(
        message: T,
        request: &Request,
        deadline: Option<Instant>,
    ) -> tonic::Request<T> {
        let mut out = tonic::Request::new(message);
        if !request.context.metadata.is_empty() {
            let mut headers = http::HeaderMap::new();
            wire::insert_metadata(&request.context.metadata, &mut headers);
            *out.metadata_mut() = tonic::metadata::MetadataMap::from_headers(headers);
        }
        if let Some(deadline) = deadline {
            out.set_timeout(deadline.saturating_duration_since(Instant::now()));
        }
        out
    }

    fn path(request: &Request, options: &CallOptions) -> Result<PathAndQuery> {
        let path =
            wire::method_path(options.package.as_deref(), &request.endpoint).ok_or_else(|| {
                Error::bad_request(
                    ID,
                    format!(
                        "endpoint {:?} is not Trait.Method: it has no gRPC method path",
                        request.endpoint
                    ),
                )
            })?;
        PathAndQuery::try_from(path.as_str())
            .map_err(|e| Error::bad_request(ID, format!("invalid gRPC method path {path}: {e}")))
    }

    /// One unary attempt on `address`.
    async fn attempt(
        &self,
        address: &str,
        request: &Request,
        options: &CallOptions,
        deadline: Option<Instant>,
    ) -> Result<Response> {
        let path = Self::path(request, options)?;
        let channel = self.channel(address, deadline).await?;
        let mut grpc = self.grpc(channel, request)?;
        grpc.ready().await.map_err(|e| {
            Error::transport(ID, format!("{address} is not ready: {e}")).retryable()
        })?;
        let message = Self::tonic_request(request.body.clone(), request, deadline);
        match grpc.unary(message, path, RawCodec).await {
            Ok(response) => {
                let (metadata, body, _) = response.into_parts();
                Ok(Response {
                    header: wire::metadata_from_headers(&metadata.into_headers()),
                    content_type: request.content_type.clone(),
                    body,
                })
            }
            Err(status) => {
                if std::error::Error::source(&status).is_some() {
                    self.forget(address);
                }
                if deadline.is_some_and(|d| Instant::now() >= d)
                    && status
                        .metadata()
                        .get_bin(crate::status::MICRO_ERROR)
                        .is_none()
                {
                    return Err(timed_out(request));
                }
                Err(call_error(&status, address))
            }
        }
    }

    /// Attempts with retries within the deadline: a failure is retried when the call
    /// cannot have run (or is idempotent); a failing node is reported to the selector.
    async fn call_with_retries(&self, request: Request, options: CallOptions) -> Result<Response> {
        let timeout = options
            .request_timeout
            .unwrap_or(self.inner.config.pool_request_timeout);
        let mut deadline = Instant::now() + timeout;
        if let Some(d) = request.context.deadline {
            deadline = deadline.min(d);
        }
        let retries = options.retries.unwrap_or(self.inner.config.pool_retries);
        let mut last = None;
        for attempt in 0..=retries {
            if attempt > 0 {
                let wait = backoff(attempt);
                if Instant::now() + wait >= deadline {
                    break;
                }
                tokio::time::sleep(wait).await;
            }
            let (address, node) = match self.pick(&request, &options).await {
                Ok(target) => target,
                Err(error) => {
                    last = Some(error);
                    continue;
                }
            };
            let once = self.attempt(&address, &request, &options, Some(deadline));
            let error = match tokio::time::timeout_at(deadline.into(), once).await {
                Ok(Ok(response)) => {
                    self.mark(&request.service, node.as_ref(), Ok(()));
                    return Ok(response);
                }
                Ok(Err(error)) => error,
                Err(_) => return Err(timed_out(&request)),
            };
            if error.retryable || matches!(error.kind(), ErrorKind::Transport) {
                self.mark(&request.service, node.as_ref(), Err(&error));
            }
            let retry = error.retryable || options.idempotent;
            last = Some(error);
            if !retry {
                break;
            }
        }
        Err(last.unwrap_or_else(|| timed_out(&request)))
    }

    fn mark(&self, service: &str, node: Option<&Node>, outcome: std::result::Result<(), &Error>) {
        if let (Some(selector), Some(node)) = (&self.inner.parts.selector, node) {
            selector.mark(service, node, outcome);
        }
    }

    /// Opens the gRPC stream on `address`: the caller's frames become request messages,
    /// the response messages frames; a status ends the stream with an error frame.
    async fn open(
        &self,
        address: &str,
        request: &Request,
        options: &CallOptions,
    ) -> Result<Stream> {
        let deadline = request.context.deadline;
        let path = Self::path(request, options)?;
        let channel = self.channel(address, deadline).await?;
        let mut grpc = self.grpc(channel, request)?;
        grpc.ready().await.map_err(|e| {
            Error::transport(ID, format!("{address} is not ready: {e}")).retryable()
        })?;
        let (user, io) = stream_pair(address);
        // The caller's frames as request messages; an error frame (the caller's request
        // stream failed) or the caller ending its side ends them.
        let requests = futures::stream::unfold(io.outgoing, |mut outgoing| async move {
            let frame = outgoing.recv().await?;
            if frame.header(headers::ERROR).is_some() {
                return None;
            }
            Some((frame.body, outgoing))
        });
        let message = Self::tonic_request(requests, request, deadline);
        let incoming = io.incoming;
        let client = self.clone();
        let address = address.to_string();
        tokio::spawn(async move {
            let error = match grpc.streaming(message, path, RawCodec).await {
                Ok(response) => {
                    let mut messages = response.into_inner();
                    loop {
                        tokio::select! {
                            _ = incoming.closed() => return,
                            next = messages.next() => match next {
                                None => return,
                                Some(Ok(body)) => {
                                    if incoming.send(Ok(Message::new(body))).await.is_err() {
                                        return;
                                    }
                                }
                                Some(Err(status)) => break stream_error(&status, &address, deadline),
                            }
                        }
                    }
                }
                Err(status) => {
                    if std::error::Error::source(&status).is_some() {
                        client.forget(&address);
                    }
                    stream_error(&status, &address, deadline)
                }
            };
            let _ = incoming
                .send(Ok(micro_core::streaming::error_frame(&error)))
                .await;
        });
        Ok(user)
    }
}

#[async_trait]
impl Client for GrpcClient {
    fn name(&self) -> &str {
        "grpc"
    }

    fn content_type(&self) -> &str {
        &self.inner.config.content_type
    }

    async fn call(&self, request: Request, options: CallOptions) -> Result<Response> {
        let layers = &self.inner.parts.middleware;
        if layers.call.is_empty() {
            return self.call_with_retries(request, options).await;
        }
        let client = self.clone();
        let inner = middleware::service_fn(move |req: Request| {
            let client = client.clone();
            let options = options.clone();
            async move { client.call_with_retries(req, options).await }
        });
        middleware::call(&middleware::stack(&layers.call, inner), request).await
    }

    /// Opens a stream; only opening is retried (connecting failed, nothing was sent), and
    /// only the caller's deadline bounds it.
    async fn stream(&self, mut request: Request, options: CallOptions) -> Result<Stream> {
        request.stream = true;
        let retries = options.retries.unwrap_or(self.inner.config.pool_retries);
        let mut last = None;
        for attempt in 0..=retries {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let (address, node) = match self.pick(&request, &options).await {
                Ok(target) => target,
                Err(error) => {
                    last = Some(error);
                    continue;
                }
            };
            match self.open(&address, &request, &options).await {
                Ok(stream) => return Ok(stream),
                Err(error) => {
                    self.mark(&request.service, node.as_ref(), Err(&error));
                    let retry = error.retryable;
                    last = Some(error);
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| timed_out(&request)))
    }

    async fn publish(&self, topic: &str, mut message: broker::Message) -> Result<()> {
        let broker = self.inner.parts.broker.as_ref().ok_or_else(|| {
            Error::bad_request(ID, "cannot publish: the broker is disabled (enable broker)")
        })?;
        let has = |m: &broker::Message, k: &str| m.header.keys().any(|h| h.eq_ignore_ascii_case(k));
        if !has(&message, headers::CONTENT_TYPE) {
            message.header.insert(
                headers::CONTENT_TYPE.into(),
                self.inner.config.content_type.clone(),
            );
        }
        message
            .header
            .insert(headers::TOPIC.into(), topic.to_string());
        if !has(&message, headers::ID) {
            message
                .header
                .insert(headers::ID.into(), uuid::Uuid::new_v4().to_string());
        }
        broker.publish(topic, message).await
    }
}
