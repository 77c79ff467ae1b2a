//! The accept loop shared by the transport's and the broker's HTTP servers: HTTP/1.1 and h2c
//! on one port, one task per connection; accepting stops when one token is cancelled, the
//! connections shut down gracefully when another is. Each connection is watched for the
//! [`Timeouts`]: a request head begun and not complete in time, or no request for too long,
//! closes it.

use crate::watch::{Activity, Expired, Timeouts, Tracked, Watched};
use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use micro_core::logger::Logger;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Accepts connections on `tcp` until `accepting` is cancelled (then closes the socket) and
/// serves each with `handle` until `token` is cancelled (then shuts it down gracefully:
/// requests already received are answered); `what` names the server in log lines.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn accept_loop<H, F, B>(
    tcp: TcpListener,
    builder: auto::Builder<TokioExecutor>,
    timeouts: Timeouts,
    accepting: CancellationToken,
    token: CancellationToken,
    logger: Logger,
    what: &'static str,
    handle: H,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let builder = Arc::new(builder);
    loop {
        let accepted = tokio::select! {
            _ = accepting.cancelled() => return,
            accepted = tcp.accept() => accepted,
        };
        let (socket, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                logger.in_scope(|| tracing::warn!(error = %err, "{what}: accept failed"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (builder, token, logger, handle) = (
            builder.clone(),
            token.clone(),
            logger.clone(),
            handle.clone(),
        );
        tokio::spawn(async move {
            // Small frames matter more than packet counts for RPC.
            let _ = socket.set_nodelay(true);
            let activity = Activity::new(timeouts);
            let requests = activity.clone();
            let service = hyper::service::service_fn(move |request| {
                // Called as soon as the head is complete: the connection is busy from here
                // until the response is written.
                let request_guard = requests.request();
                let response = handle(request, peer);
                async move {
                    let response = response.await;
                    Ok::<_, Infallible>(response.map(|body| Tracked {
                        body,
                        _request: request_guard,
                    }))
                }
            });
            let io = TokioIo::new(Watched::new(socket, activity.clone()));
            let connection = builder.serve_connection(io, service);
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = token.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
                expired = activity.expired() => {
                    let why = match expired {
                        Expired::Head => "no complete request head within read_timeout",
                        Expired::Idle => "no request within idle_timeout",
                    };
                    logger.in_scope(|| tracing::debug!(%peer, "{what}: closing the connection: {why}"));
                    if expired == Expired::Head {
                        // The head is unfinished: nothing to answer, close at once.
                        return;
                    }
                    connection.as_mut().graceful_shutdown();
                    // Nothing is in flight; a request that starts now gets a bounded time.
                    let grace = crate::watch::limit(timeouts.read).unwrap_or(CLOSE_GRACE);
                    match tokio::time::timeout(grace, connection).await {
                        Ok(result) => result,
                        Err(_) => return,
                    }
                }
            };
            if let Err(err) = result {
                logger
                    .in_scope(|| tracing::debug!(%peer, error = %err, "{what}: connection ended"));
            }
        });
    }
}

/// How long an idle connection being closed may take to finish a request begun meanwhile,
/// when `read_timeout` is 0.
const CLOSE_GRACE: Duration = Duration::from_secs(30);
