//! The mucp client: picks a node, dials it through the transport, sends the request frame
//! and waits for the answer within the caller's deadline.
//!
//! Better than go-micro: each attempt gets what is left of the deadline (no hidden
//! per-connection timeout); a failed attempt is retried only when the request cannot have
//! reached a handler (no node, connect refused, the server refused before dispatch) or the
//! endpoint is idempotent; backoff is exponential with jitter and a cap.

use crate::wire;
use async_trait::async_trait;
use micro_core::broker::{self, Broker};
use micro_core::client::{CallOptions, Client, Request, Response};
use micro_core::config::ClientConfig;
use micro_core::logger::Logger;
use micro_core::middleware::{self, Middleware};
use micro_core::registry::Node;
use micro_core::selector::Selector;
use micro_core::transport::{
    ByteString, Connection, DialOptions, Message, Stream, Transport, headers,
};
use micro_core::{Error, ErrorKind, Result};
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ID: &str = "go.micro.client";
/// First retry waits about this long; each next one twice as long.
const BACKOFF_BASE: Duration = Duration::from_millis(10);
/// No retry waits longer than this.
const BACKOFF_CAP: Duration = Duration::from_secs(1);

/// What the client needs besides its config.
pub struct ClientParts {
    /// Picks nodes (optional: then every call must name an address).
    pub selector: Option<Arc<dyn Selector>>,
    /// How to reach nodes.
    pub transport: Arc<dyn Transport>,
    /// Where `publish` goes (optional).
    pub broker: Option<Arc<dyn Broker>>,
    /// Call and attempt middleware.
    pub middleware: Middleware,
    /// Its logger.
    pub logger: Logger,
}

struct Inner {
    config: ClientConfig,
    parts: ClientParts,
    /// Request ids are `<random prefix>-<counter>`: unique without a random draw per call.
    id_prefix: String,
    next_id: std::sync::atomic::AtomicU64,
    /// The transport's name: only nodes that speak it are selected.
    transport: Arc<str>,
}

impl Inner {
    fn request_id(&self) -> ByteString {
        let n = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ByteString::from(format!("{}-{n}", self.id_prefix).into_boxed_str())
    }
}

/// Where an attempt goes: the address the call names, or a node the selector chose.
enum Target<'a> {
    Named(&'a str),
    Selected(Node),
}

impl Target<'_> {
    fn address(&self) -> &str {
        match self {
            Target::Named(address) => address,
            Target::Selected(node) => &node.address,
        }
    }
}

/// The mucp client. Cheap to clone.
#[derive(Clone)]
pub struct MucpClient {
    inner: Arc<Inner>,
}

/// Whether a failed attempt says the node is broken (the selector should avoid it).
fn node_broken(error: &Error) -> bool {
    error.retryable || matches!(error.kind(), ErrorKind::Transport | ErrorKind::Unavailable)
}

/// The wait before retry number `attempt` (1-based): exponential, capped, with jitter.
pub fn backoff(attempt: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(BACKOFF_CAP);
    let half = capped / 2;
    half + rand::rng().random_range(Duration::ZERO..=half)
}

fn deadline_error(service: &str, endpoint: &str) -> Error {
    Error::timeout(
        ID,
        format!(
            "call to {service} {endpoint} timed out: give it a longer timeout \
             (CallOptions request_timeout, client pool_request_timeout) or check that the service is healthy"
        ),
    )
}

impl MucpClient {
    /// A client with the given config and parts.
    pub fn new(config: ClientConfig, parts: ClientParts) -> Self {
        MucpClient {
            inner: Arc::new(Inner {
                transport: Arc::from(parts.transport.name()),
                config,
                parts,
                id_prefix: uuid::Uuid::new_v4().simple().to_string(),
                next_id: std::sync::atomic::AtomicU64::new(1),
            }),
        }
    }

    async fn pick<'a>(&self, request: &Request, options: &'a CallOptions) -> Result<Target<'a>> {
        if let Some(address) = &options.address {
            return Ok(Target::Named(address));
        }
        let selector = self.inner.parts.selector.as_ref().ok_or_else(|| {
            Error::bad_request(
                ID,
                "no selector: enable selector or give the call an address",
            )
        })?;
        let node = if options.select.transport.is_some() {
            selector.select(&request.service, &options.select).await?
        } else {
            let mut select = options.select.clone();
            select.transport = Some(self.inner.transport.clone());
            selector.select(&request.service, &select).await?
        };
        Ok(Target::Selected(node))
    }

    /// Tells the selector how a call to a node it chose went.
    fn mark(&self, service: &str, target: &Target<'_>, outcome: std::result::Result<(), &Error>) {
        if let (Some(selector), Target::Selected(node)) = (&self.inner.parts.selector, target) {
            selector.mark(service, node, outcome);
        }
    }

    /// Dials the attempt's address within what is left of the deadline; returns the
    /// connection and the request frame, whose `Timeout` header carries that time.
    async fn dial(&self, at: &AttemptAt<'_>) -> Result<(Box<dyn Connection>, Message)> {
        let left = at
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()));
        let mut options = DialOptions::default();
        options.timeout = left;
        let connection = self
            .inner
            .parts
            .transport
            .dial(at.address, options)
            .await
            .map_err(Error::retryable)?;
        Ok((connection, wire::request_frame(at.request, at.id, left)))
    }

    /// Opens a transport stream and sends the opening frame.
    async fn open(&self, at: &AttemptAt<'_>) -> Result<Stream> {
        let (connection, frame) = self.dial(at).await?;
        let stream = connection.open_stream().await.map_err(Error::retryable)?;
        stream.sender.send(frame).await.map_err(Error::retryable)?;
        Ok(stream)
    }

    /// One attempt of a unary call: a unary exchange on a connection to the address. The
    /// error is [`retryable`](Error::retryable) when the request cannot have reached a
    /// handler (not sent, or refused by a server before dispatch).
    async fn attempt(&self, at: &AttemptAt<'_>) -> Result<Response> {
        let (connection, frame) = self.dial(at).await?;
        wire::response_from_frame(connection.call(frame).await?)
    }

    /// One attempt, inside the attempt middleware when there is any. A failure raised by the
    /// middleware itself (e.g. a timeout layer) is not retryable: it counts as started.
    async fn run_attempt(&self, at: &AttemptAt<'_>) -> Result<Response> {
        let layers = &self.inner.parts.middleware.attempt;
        if layers.is_empty() {
            return self.attempt(at).await;
        }
        let deadline = at.deadline;
        let (client, address, id) = (self.clone(), at.address.to_string(), at.id.clone());
        let inner = middleware::service_fn(move |req: Request| {
            let (client, address, id) = (client.clone(), address.clone(), id.clone());
            async move {
                let at = AttemptAt {
                    address: &address,
                    request: &req,
                    deadline,
                    id: &id,
                };
                client.attempt(&at).await
            }
        });
        middleware::call(&middleware::stack(layers, inner), at.request.clone()).await
    }

    /// Attempts with retries, none past the deadline (when there is one). A failed attempt
    /// is retried when the request cannot have reached a handler, or when the call is
    /// idempotent; the waits between attempts back off.
    async fn with_retries<A: Attempt>(
        &self,
        what: A,
        request: &Request,
        options: &CallOptions,
        deadline: Option<Instant>,
    ) -> Result<A::Output> {
        let retries = options.retries.unwrap_or(self.inner.config.pool_retries);
        let id = self.inner.request_id();
        let mut last = None;
        for attempt in 0..=retries {
            if attempt > 0 {
                let wait = backoff(attempt);
                if deadline.is_some_and(|d| Instant::now() + wait >= d) {
                    break;
                }
                tokio::time::sleep(wait).await;
            }
            let target = match self.pick(request, options).await {
                Ok(target) => target,
                Err(error) => {
                    last = Some(error);
                    continue;
                }
            };
            let at = AttemptAt {
                address: target.address(),
                request,
                deadline,
                id: &id,
            };
            let once = what.once(self, &at);
            let outcome = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline.into(), once).await,
                None => Ok(once.await),
            };
            let error = match outcome {
                Ok(Ok(output)) => {
                    self.mark(&request.service, &target, Ok(()));
                    return Ok(output);
                }
                Ok(Err(error)) => error,
                Err(_) => return Err(what.timed_out(request)),
            };
            if node_broken(&error) {
                self.mark(&request.service, &target, Err(&error));
            }
            let retry = error.retryable || options.idempotent;
            last = Some(error);
            if !retry {
                break;
            }
        }
        // The first attempt always sets `last` or returns; this is for the type only.
        Err(last.unwrap_or_else(|| what.timed_out(request)))
    }

    /// A unary call with retries, within the call's timeout and the caller's deadline.
    async fn call_with_retries(&self, request: Request, options: CallOptions) -> Result<Response> {
        let timeout = options
            .request_timeout
            .unwrap_or(self.inner.config.pool_request_timeout);
        let mut deadline = Instant::now() + timeout;
        if let Some(d) = request.context.deadline {
            deadline = deadline.min(d);
        }
        self.with_retries(UnaryCall, &request, &options, Some(deadline))
            .await
    }
}

/// Where and what one attempt sends.
struct AttemptAt<'a> {
    address: &'a str,
    request: &'a Request,
    /// The end of the whole call (all attempts), if it has one.
    deadline: Option<Instant>,
    id: &'a ByteString,
}

/// What the retry loop attempts: a unary call ([`UnaryCall`]) or opening a stream
/// ([`OpenStream`]).
trait Attempt {
    /// What a successful attempt gives.
    type Output;
    /// One attempt.
    async fn once(&self, client: &MucpClient, at: &AttemptAt<'_>) -> Result<Self::Output>;
    /// The error when the deadline passed, saying which setting bounds it.
    fn timed_out(&self, request: &Request) -> Error;
}

/// A unary call, inside the attempt middleware.
struct UnaryCall;

impl Attempt for UnaryCall {
    type Output = Response;

    async fn once(&self, client: &MucpClient, at: &AttemptAt<'_>) -> Result<Response> {
        client.run_attempt(at).await
    }

    fn timed_out(&self, request: &Request) -> Error {
        deadline_error(&request.service, &request.endpoint)
    }
}

/// Opening a stream and sending its first frame.
struct OpenStream;

impl Attempt for OpenStream {
    type Output = Stream;

    async fn once(&self, client: &MucpClient, at: &AttemptAt<'_>) -> Result<Stream> {
        client.open(at).await
    }

    fn timed_out(&self, request: &Request) -> Error {
        Error::timeout(
            ID,
            format!(
                "opening a stream to {} {} timed out: the caller's context deadline passed; \
                 give the context a later deadline or check that the service is healthy",
                request.service, request.endpoint
            ),
        )
    }
}

#[async_trait]
impl Client for MucpClient {
    fn name(&self) -> &str {
        "mucp"
    }

    fn content_type(&self) -> &str {
        &self.inner.config.content_type
    }

    async fn call(&self, request: Request, options: CallOptions) -> Result<Response> {
        let layers = &self.inner.parts.middleware;
        if layers.call.is_empty() && layers.attempt.is_empty() {
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

    /// Opens a stream with retries. Only the caller's deadline bounds it (a stream lives as
    /// long as its caller wants). Every failure to open (dial, open, send the first frame)
    /// counts as not having reached a handler and is retried, as go-micro does.
    async fn stream(&self, mut request: Request, options: CallOptions) -> Result<Stream> {
        request.stream = true;
        let deadline = request.context.deadline;
        self.with_retries(OpenStream, &request, &options, deadline)
            .await
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
                .insert(headers::ID.into(), self.inner.request_id().into());
        }
        broker.publish(topic, message).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_errors_name_the_setting_that_bounds_them() {
        let request = Request::new("greeter", "Greeter.Count", "{}");
        let call = UnaryCall.timed_out(&request);
        assert_eq!(call.code, 408);
        assert!(call.detail.contains("request_timeout"), "{call}");
        let stream = OpenStream.timed_out(&request);
        assert_eq!(stream.code, 408);
        assert!(stream.detail.contains("context deadline"), "{stream}");
        assert!(!stream.detail.contains("request_timeout"), "{stream}");
    }

    #[test]
    fn backoff_grows_with_jitter_under_the_cap() {
        for attempt in 1..30 {
            let wait = backoff(attempt);
            assert!(wait <= BACKOFF_CAP, "attempt {attempt}: {wait:?}");
        }
        let first = backoff(1);
        assert!(first >= BACKOFF_BASE / 2 && first <= BACKOFF_BASE);
        let fourth = backoff(4);
        assert!(fourth >= BACKOFF_BASE * 4 && fourth <= BACKOFF_BASE * 8);
    }
}
