//! The receiving side of the broker: one HTTP server (HTTP/1.1 and h2c on one port, as the
//! transport's) that hands each delivery POST to the subscription its `Micro-Subscriber`
//! header names. See docs/protocol-http.md ("Broker").

use super::{ID, Route, SUBSCRIBER_HEADER};
use crate::headers;
use bytes::Bytes;
use futures::FutureExt;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use micro_core::broker::{Delivery, Message, NoAck};
use micro_core::logger::Logger;
use micro_core::transport::headers::TOPIC;
use micro_core::{Error, Result};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, RwLock};
use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, DropGuard};

/// The subscriptions of one broker, by node id; shared by the broker and its server.
#[derive(Default)]
pub(crate) struct Routes {
    map: RwLock<HashMap<String, Arc<Route>>>,
}

impl Routes {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Route>>> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Route>>> {
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn insert(&self, route: Arc<Route>) {
        self.write().insert(route.id.clone(), route);
    }

    pub(crate) fn remove(&self, id: &str) -> Option<Arc<Route>> {
        self.write().remove(id)
    }

    pub(crate) fn drain(&self) -> Vec<Arc<Route>> {
        self.write().drain().map(|(_, r)| r).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.read().len()
    }

    fn get(&self, id: &str) -> Option<Arc<Route>> {
        self.read().get(id).cloned()
    }
}

/// A running broker server; dropping it shuts the server down gracefully (new connections
/// are refused, deliveries in progress finish).
pub(crate) struct Running {
    /// The address registered for its subscribers.
    pub(crate) address: String,
    _shutdown: DropGuard,
}

struct Shared {
    routes: Arc<Routes>,
    max_body_size: usize,
    logger: Logger,
}

/// Binds `bind` and serves deliveries to `routes` until the result is dropped.
pub(crate) async fn start(
    bind: &str,
    advertise: &str,
    routes: Arc<Routes>,
    max_body_size: usize,
    logger: Logger,
) -> Result<Running> {
    let tcp = TcpListener::bind(bind)
        .await
        .map_err(|e| crate::io_error(e, &format!("http broker: listen on {bind}")))
        .map_err(|e| Error::new(ID, e.code, e.detail))?;
    let local = tcp
        .local_addr()
        .map_err(|e| Error::internal(ID, format!("http broker: listen on {bind}: {e}")))?;
    let address = advertised(local, advertise, &logger);
    logger.in_scope(|| tracing::debug!(%local, %address, "http broker: listening"));
    let token = CancellationToken::new();
    let shared = Arc::new(Shared {
        routes,
        max_body_size,
        logger,
    });
    let logger = shared.logger.clone();
    tokio::spawn(crate::listen::accept_loop(
        tcp,
        builder(),
        crate::watch::Timeouts::default(),
        token.clone(),
        token.clone(),
        logger,
        "http broker",
        move |request, _peer| {
            let shared = shared.clone();
            async move { handle(request, &shared).await }
        },
    ));
    Ok(Running {
        address,
        _shutdown: token.drop_guard(),
    })
}

/// The address to register: `advertise` when set; the bound address otherwise, with an
/// unspecified IP (0.0.0.0, ::) replaced by loopback (with a warning: other hosts cannot
/// use it).
fn advertised(local: SocketAddr, advertise: &str, logger: &Logger) -> String {
    let advertise = advertise.trim();
    if !advertise.is_empty() {
        return advertise.to_string();
    }
    if !local.ip().is_unspecified() {
        return local.to_string();
    }
    let loopback = match local {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::LOCALHOST, local.port())),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::LOCALHOST, local.port())),
    };
    logger.in_scope(|| {
        tracing::warn!(
            bound = %local,
            registered = %loopback,
            "http broker: bound to every interface; registering the loopback address, which other \
             hosts cannot reach: set broker.advertise (--broker_advertise) to a reachable host:port"
        )
    });
    loopback.to_string()
}

fn builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Head and idle time limits are the accept loop's (hyper's head timer also runs while
    // a keep-alive connection waits for its next request).
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(None);
    builder.http2().timer(TokioTimer::new());
    builder
}

type Reply = Response<Full<Bytes>>;

fn error(err: &Error) -> Reply {
    headers::error_response(err)
}

/// One delivery: route it, read it, run the handler, answer 200 or an error.
async fn handle(request: Request<Incoming>, shared: &Shared) -> Reply {
    if request.method() != Method::POST {
        let err = Error::method_not_allowed(
            ID,
            format!(
                "method {} is not allowed: deliver a message with a POST",
                request.method()
            ),
        );
        let mut response = error(&err);
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let Some(id) = request.headers().get(SUBSCRIBER_HEADER) else {
        return error(&Error::bad_request(
            ID,
            format!("no {SUBSCRIBER_HEADER} header: name the subscriber's registry node id"),
        ));
    };
    let Ok(id) = id.to_str() else {
        return error(&Error::bad_request(
            ID,
            format!("the {SUBSCRIBER_HEADER} header is not text"),
        ));
    };
    let Some(route) = shared.routes.get(id) else {
        return error(&Error::not_found(
            ID,
            format!("no subscriber {id} on this broker (it unsubscribed or never existed)"),
        ));
    };
    let header: HashMap<String, String> = match headers::from_http(request.headers()) {
        Ok(header) => header
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case(SUBSCRIBER_HEADER))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        Err(err) => return error(&Error::new(ID, err.code, err.detail)),
    };
    let topic = header
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(TOPIC))
        .map(|(_, v)| v.clone());
    if let Some(topic) = &topic
        && *topic != route.topic
    {
        return error(&Error::bad_request(
            ID,
            format!(
                "subscriber {id} listens to topic {:?}, not {topic:?}",
                route.topic
            ),
        ));
    }
    let body = match crate::body::request_body(request, shared.max_body_size, ID, "message").await {
        Ok(body) => body,
        Err(err) => return error(&err),
    };
    let delivery = Delivery::new(
        route.topic.clone(),
        Message { header, body },
        Arc::new(NoAck),
    );
    match call(&route, delivery).await {
        Ok(()) => Response::new(Full::new(Bytes::new())),
        Err(err) => {
            shared.logger.in_scope(|| {
                tracing::debug!(subscriber = %route.id, topic = %route.topic, error = %err, "http broker: handler failed")
            });
            error(&err)
        }
    }
}

/// Runs the handler unless the subscription is closed; a handler error or panic becomes a
/// 500 error naming the subscriber, with the handler's error in the detail.
async fn call(route: &Route, delivery: Delivery) -> Result<()> {
    let failed = |what: String| {
        Error::internal(
            ID,
            format!(
                "subscriber {} (topic {}) did not take the message: {what}",
                route.id, route.topic
            ),
        )
    };
    let future = {
        let active = route.active.read().unwrap_or_else(|e| e.into_inner());
        if !*active {
            return Err(Error::not_found(
                ID,
                format!("subscriber {} has unsubscribed", route.id),
            ));
        }
        std::panic::catch_unwind(AssertUnwindSafe(|| (route.handler)(delivery)))
    };
    let Ok(future) = future else {
        return Err(failed("the handler panicked".to_string()));
    };
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(failed(format!(
            "the handler returned error {} ({}): {}",
            err.code, err.id, err.detail
        ))),
        Err(_) => Err(failed("the handler panicked".to_string())),
    }
}
