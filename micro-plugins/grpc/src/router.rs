//! Serves one HTTP/2 request: routes `/{package}.{Trait}/{Method}` to the micro handler,
//! the health and reflection services to tonic's, and answers everything else (non-gRPC
//! requests, unknown methods, bad `grpc-timeout`, a stopping server) with a gRPC status.
//!
//! gRPC framing (the 5-byte length prefix, size limits, truncated messages, trailers) is
//! tonic's `server::Grpc` with a pass-through codec; the handler decodes the message bytes
//! with micro's codecs (protobuf for `application/grpc`, JSON for `application/grpc+json`).

use crate::status::to_status;
use crate::wire::{self, RawCodec};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use http::{HeaderValue, Response};
use micro_core::client::Request;
use micro_core::codec::Format;
use micro_core::middleware::{self, RpcService};
use micro_core::server::{StreamFn, catch_panic};
use micro_core::streaming;
use micro_core::transport::{Message, headers, stream_pair};
use micro_core::{Context, Error, Result};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tonic::Status;
use tonic::body::Body;
use tower::ServiceExt;

const ID: &str = "go.micro.server";

/// Where a method's requests go.
#[derive(Clone)]
pub(crate) enum Target {
    /// A unary endpoint's middleware stack.
    Unary(RpcService),
    /// A streaming endpoint (client, server or bidirectional).
    Stream(StreamFn),
}

/// One method: its micro endpoint name and handler.
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) endpoint: String,
    pub(crate) target: Target,
}

/// A boxed tonic service (health, reflection) served next to the micro methods.
pub(crate) type ExtraService =
    tower::util::BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Infallible>;

/// Requests in flight, and whether the server stops.
#[derive(Default)]
pub(crate) struct Flight {
    in_flight: AtomicUsize,
    draining: AtomicBool,
    idle: Notify,
}

/// Counts one request in flight while alive.
pub(crate) struct FlightGuard(Arc<Flight>);

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl FlightGuard {
    /// One more count for the same request's work (dropped with it).
    fn clone_guard(&self) -> FlightGuard {
        self.0.begin()
    }
}

impl Flight {
    fn begin(self: &Arc<Self>) -> FlightGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        FlightGuard(self.clone())
    }

    /// Refuses new requests from now on.
    pub(crate) fn drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Requests still running.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Completes when no request is in flight.
    pub(crate) async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Everything a request needs; shared by every connection of one run of the server.
pub(crate) struct Router {
    pub(crate) service: String,
    pub(crate) routes: HashMap<String, Route>,
    /// gRPC service name (`grpc.health.v1.Health`) → its tonic service.
    pub(crate) extra: HashMap<String, ExtraService>,
    pub(crate) max_message_size: usize,
    /// Extra time a unary handler gets to notice its deadline passed.
    pub(crate) grace: Duration,
    pub(crate) flight: Arc<Flight>,
}

/// A response that is only a status (gRPC's "trailers-only" form), with `http` as the HTTP
/// status (200 for gRPC errors; 415 for a request that is not gRPC).
fn status_only(status: &Status, http: http::StatusCode) -> Response<Body> {
    let mut response = status.clone().into_http::<Body>();
    *response.status_mut() = http;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(wire::GRPC),
    );
    response
}

fn error_response(error: &Error) -> Response<Body> {
    status_only(&to_status(error), http::StatusCode::OK)
}

impl Router {
    /// Answers one request; never fails (every problem is a gRPC status).
    pub(crate) async fn serve<B>(self: Arc<Self>, request: http::Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<tonic::codegen::StdError> + Send + 'static,
    {
        let path = request.uri().path().to_string();
        if let Some(extra) = wire::service_of_path(&path).and_then(|s| self.extra.get(s)) {
            let request = request.map(Body::new);
            return match extra.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
        }
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let format = match wire::format_of(content_type) {
            Some(Ok(format)) => format,
            Some(Err(error)) => return error_response(&error),
            None => {
                let error = Error::unsupported_media_type(
                    ID,
                    format!(
                        "not a gRPC request: content-type {content_type:?}; this is a gRPC \
                         server, send application/grpc (protobuf) or application/grpc+json"
                    ),
                );
                return status_only(&to_status(&error), http::StatusCode::UNSUPPORTED_MEDIA_TYPE);
            }
        };
        let Some(route) = self.routes.get(&path).cloned() else {
            // UNIMPLEMENTED for gRPC clients; the 404 of mucp for micro clients.
            let error = Error::not_found(
                ID,
                format!(
                    "service {}: unknown method {path}: the server serves {}",
                    self.service,
                    self.known_methods()
                ),
            );
            let status = crate::status::to_status_as(tonic::Code::Unimplemented, &error);
            return status_only(&status, http::StatusCode::OK);
        };
        if self.flight.draining.load(Ordering::Acquire) {
            return error_response(&crate::server::shutting_down());
        }
        let guard = self.flight.begin();
        let micro_request = match micro_request(&self.service, &route, format, request.headers()) {
            Ok(r) => r,
            Err(error) => return error_response(&error),
        };
        let mut grpc = tonic::server::Grpc::new(RawCodec)
            .max_decoding_message_size(self.max_message_size)
            .max_encoding_message_size(self.max_message_size);
        let mut response = match route.target {
            Target::Unary(service) => {
                let call = UnaryCall {
                    service,
                    request: Some(micro_request),
                    grace: self.grace,
                    guard,
                };
                grpc.unary(call, request).await
            }
            Target::Stream(f) => {
                let call = StreamCall {
                    f,
                    request: micro_request,
                    guard: Arc::new(guard),
                };
                grpc.streaming(call.into_service(), request).await
            }
        };
        if format == Format::Json {
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(wire::GRPC_JSON),
            );
        }
        response
    }

    fn known_methods(&self) -> String {
        let mut paths: Vec<&str> = self.routes.keys().map(String::as_str).collect();
        paths.sort_unstable();
        paths.join(", ")
    }
}

/// The micro request of a gRPC request (body still to come): endpoint, content type,
/// metadata, deadline.
fn micro_request(
    service: &str,
    route: &Route,
    format: Format,
    headers: &http::HeaderMap,
) -> Result<Request> {
    let mut context = Context::new();
    context.metadata = wire::metadata_from_headers(headers);
    if let Some(timeout) = headers.get("grpc-timeout") {
        let text = timeout.to_str().unwrap_or("");
        context = context.with_timeout(wire::parse_timeout(text)?);
    }
    Ok(Request {
        service: service.to_string(),
        endpoint: route.endpoint.clone(),
        content_type: format.content_type().to_string(),
        body: Bytes::new(),
        context,
        stream: matches!(route.target, Target::Stream(_)),
    })
}

/// An error after dispatch: the handler may have run, so it is never retryable.
fn ran(error: Error) -> Error {
    error.with_retryable(false)
}

/// A unary call: tonic decodes the one message, the middleware stack answers it. tonic
/// calls it once; the request is moved into that call.
struct UnaryCall {
    service: RpcService,
    request: Option<Request>,
    grace: Duration,
    guard: FlightGuard,
}

type UnaryFuture =
    futures::future::BoxFuture<'static, std::result::Result<tonic::Response<Bytes>, Status>>;

impl tower::Service<tonic::Request<Bytes>> for UnaryCall {
    type Response = tonic::Response<Bytes>;
    type Error = Status;
    type Future = UnaryFuture;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::result::Result<(), Status>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, message: tonic::Request<Bytes>) -> UnaryFuture {
        let Some(mut request) = self.request.take() else {
            return Box::pin(async { Err(Status::internal("a unary call was called twice")) });
        };
        let service = self.service.clone();
        let grace = self.grace;
        let guard = self.guard.clone_guard();
        Box::pin(async move {
            let _guard = guard;
            request.body = message.into_inner();
            let ctx = request.context.deadline_only();
            let endpoint = request.endpoint.clone();
            let work = middleware::call(&service, request);
            let result = catch_panic(
                micro_core::context::under_deadline(&ctx, work, grace),
                || endpoint,
            )
            .await
            .map_err(ran);
            match result {
                Ok(answer) => {
                    let mut response = tonic::Response::new(answer.body);
                    if !answer.header.is_empty() {
                        let mut headers = http::HeaderMap::new();
                        wire::insert_metadata(&answer.header, &mut headers);
                        *response.metadata_mut() =
                            tonic::metadata::MetadataMap::from_headers(headers);
                    }
                    Ok(response)
                }
                Err(error) => Err(to_status(&error)),
            }
        })
    }
}

type MessageStream = BoxStream<'static, std::result::Result<Bytes, Status>>;

/// A streaming call: the gRPC request messages become the handler's frames, its frames the
/// response messages; an error frame ends the response with its status.
struct StreamCall {
    f: StreamFn,
    request: Request,
    guard: Arc<FlightGuard>,
}

impl StreamCall {
    fn into_service(
        self,
    ) -> impl tower::Service<
        tonic::Request<tonic::Streaming<Bytes>>,
        Response = tonic::Response<MessageStream>,
        Error = Status,
        Future = impl Future<Output = std::result::Result<tonic::Response<MessageStream>, Status>>
                 + Send,
    > + Send {
        let call = Arc::new(self);
        tower::service_fn(move |incoming: tonic::Request<tonic::Streaming<Bytes>>| {
            let call = call.clone();
            async move { Ok(tonic::Response::new(call.start(incoming.into_inner()))) }
        })
    }

    fn start(&self, mut incoming: tonic::Streaming<Bytes>) -> MessageStream {
        let (stream, io) = stream_pair("grpc");
        let request = self.request.clone();
        let ctx = request.context.deadline_only();
        // The caller's messages, to the handler.
        let to_handler = io.incoming.clone();
        let reader = tokio::spawn(async move {
            loop {
                let item = match incoming.next().await {
                    None => break,
                    Some(Ok(body)) => Ok(Message::new(body)),
                    Some(Err(status)) => Err(crate::status::from_status(&status, ID)),
                };
                let failed = item.is_err();
                if to_handler.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        drop(io.incoming);
        // The handler, under the deadline; a failure it did not report itself is sent as
        // an error frame.
        let f = self.f.clone();
        let guard = self.guard.clone();
        let sender = stream.sender.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let endpoint = request.endpoint.clone();
            let work = async {
                tokio::select! {
                    result = catch_panic(f(request, stream), || endpoint) => result,
                    _ = sender.closed() => {
                        ctx.cancel();
                        Err(Error::transport(ID, "the caller went away; the stream was stopped"))
                    }
                }
            };
            let result = micro_core::context::under_deadline(&ctx, work, Duration::ZERO).await;
            if let Err(error) = result {
                let _ = sender.send(streaming::error_frame(&ran(error))).await;
            }
            reader.abort();
        });
        // The handler's frames, to the caller: messages until an error frame or the end.
        futures::stream::unfold(Some(io.outgoing), |state| async move {
            let mut outgoing = state?;
            let frame = outgoing.recv().await?;
            match frame.header(headers::ERROR) {
                Some(json) => Some((Err(to_status(&Error::parse(json))), None)),
                None => Some((Ok(frame.body), Some(outgoing))),
            }
        })
        .boxed()
    }
}
