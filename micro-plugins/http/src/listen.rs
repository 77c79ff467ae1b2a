//! The accept loop shared by the transport's and the broker's HTTP servers: HTTP/1.1 and h2c
//! on one port, one task per connection; accepting stops when one token is cancelled, the
//! connections shut down gracefully when another is.

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
pub(crate) async fn accept_loop<H, F, B>(
    tcp: TcpListener,
    builder: auto::Builder<TokioExecutor>,
    accepting: CancellationToken,
    token: CancellationToken,
    logger: Logger,
    what: &'static str,
    handle: H,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
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
            let service = hyper::service::service_fn(move |request| {
                let response = handle(request, peer);
                async move { Ok::<_, Infallible>(response.await) }
            });
            let connection = builder.serve_connection(TokioIo::new(socket), service);
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = token.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = result {
                logger
                    .in_scope(|| tracing::debug!(%peer, error = %err, "{what}: connection ended"));
            }
        });
    }
}
