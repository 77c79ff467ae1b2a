//! The listening side: a QUIC server endpoint; every bidirectional stream a peer opens is
//! one exchange for the listener's handler.

use crate::{ID, stream};
use micro_core::logger::Logger;
use micro_core::transport::{Drain, ExchangeHandler, Listener, serve_stream};
use micro_core::{Error, Result};
use std::fmt;
use std::net::SocketAddr;

/// Closes the endpoint (and so every connection it carries) when dropped.
struct CloseOnDrop(quinn::Endpoint);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close(crate::CLOSE_STOPPING, b"server stopped");
    }
}

/// A QUIC server endpoint. Draining it (see [`Listener::serve`]) refuses new connections
/// and keeps serving the streams of the open ones; dropping it (or its serve future) closes
/// every connection: open streams fail with 503.
pub struct QuicListener {
    endpoint: CloseOnDrop,
    address: String,
    max_frame_size: usize,
    logger: Logger,
}

impl fmt::Debug for QuicListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuicListener")
            .field("address", &self.address)
            .finish()
    }
}

impl QuicListener {
    /// Binds a server endpoint on `local`.
    pub(crate) fn bind(
        config: quinn::ServerConfig,
        local: SocketAddr,
        max_frame_size: usize,
        logger: Logger,
    ) -> Result<QuicListener> {
        let endpoint = quinn::Endpoint::server(config, local).map_err(|error| {
            let detail = format!("cannot listen on {local} (UDP): {error}");
            match error.kind() {
                std::io::ErrorKind::AddrInUse => Error::conflict(ID, detail),
                std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::InvalidInput => {
                    Error::bad_request(ID, detail)
                }
                _ => Error::internal(ID, detail),
            }
        })?;
        let address = endpoint
            .local_addr()
            .map_err(|e| Error::internal(ID, format!("listening on {local}: {e}")))?
            .to_string();
        Ok(QuicListener {
            endpoint: CloseOnDrop(endpoint),
            address,
            max_frame_size,
            logger,
        })
    }
}

#[async_trait::async_trait]
impl Listener for QuicListener {
    fn address(&self) -> String {
        self.address.clone()
    }

    /// Each connection on a task of its own, each stream on a task of its own. Draining
    /// refuses new connections (the peer sees CONNECTION_REFUSED).
    async fn serve(self: Box<Self>, handler: ExchangeHandler, drain: Drain) {
        let QuicListener {
            endpoint,
            max_frame_size,
            logger,
            ..
        } = *self;
        let mut accepting = true;
        loop {
            let incoming = tokio::select! {
                incoming = endpoint.0.accept() => incoming,
                _ = drain.started(), if accepting => {
                    accepting = false;
                    continue;
                }
            };
            let Some(incoming) = incoming else { return };
            if !accepting {
                incoming.refuse();
                continue;
            }
            tokio::spawn(serve_connection(
                incoming,
                handler.clone(),
                max_frame_size,
                logger.clone(),
            ));
        }
    }
}

/// Completes the handshake, then hands every stream the peer opens to `handler`.
async fn serve_connection(
    incoming: quinn::Incoming,
    handler: ExchangeHandler,
    max_frame_size: usize,
    logger: Logger,
) {
    let peer = incoming.remote_address().to_string();
    let connection = match incoming.accept() {
        Ok(connecting) => match connecting.into_0rtt() {
            // 0-RTT is only possible when the server config allows early data (zero_rtt).
            Ok((connection, _)) => connection,
            Err(connecting) => match connecting.await {
                Ok(connection) => connection,
                Err(error) => {
                    let error = crate::tls::connection_error(&peer, &error);
                    logger.in_scope(|| tracing::warn!(%peer, %error, "quic handshake failed"));
                    return;
                }
            },
        },
        Err(error) => {
            logger.in_scope(|| tracing::warn!(%peer, %error, "quic connection not accepted"));
            return;
        }
    };
    loop {
        let (send, recv) = match connection.accept_bi().await {
            Ok(pair) => pair,
            Err(_) => return,
        };
        let stream = stream::stream(send, recv, connection.clone(), peer.clone(), max_frame_size);
        let handler = handler.clone();
        tokio::spawn(async move { serve_stream(stream, &handler).await });
    }
}
