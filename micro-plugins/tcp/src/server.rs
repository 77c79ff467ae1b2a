//! The listening side: an accept loop task, one reader and writer per accepted connection,
//! and the [`TcpListener`] that yields the streams peers open.

use crate::conn::{self, Event, Settings, Side};
use micro_core::transport::{Drain, ExchangeHandler, Listener, Stream, serve_streams};
use micro_core::{Error, Result};
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Streams opened by peers but not yet accepted; beyond this, connections stop reading.
pub const ACCEPT_BACKLOG: usize = 128;

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// A listening socket. Draining it (see [`Listener::serve`]) closes the socket and keeps
/// serving the connections it accepted; dropping it closes them too: each writes what was
/// already queued, resets its open streams with 503 and closes.
pub struct TcpListener {
    address: String,
    streams: mpsc::Receiver<Stream>,
    /// Shared with every accepted connection.
    unary: Arc<OnceLock<ExchangeHandler>>,
    /// Stops accepting (a child of the close token: closing stops accepting too).
    accepting: CancellationToken,
    _stop: DropGuard,
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("address", &self.address)
            .finish()
    }
}

#[async_trait::async_trait]
impl Listener for TcpListener {
    fn address(&self) -> String {
        self.address.clone()
    }

    /// UNARY requests are served inside their connection (no stream, no channel); each
    /// stream on a task of its own. Draining closes the listening socket only.
    async fn serve(mut self: Box<Self>, handler: ExchangeHandler, drain: Drain) {
        let _ = self.unary.set(handler.clone());
        let accepting = self.accepting.clone();
        serve_streams(&mut self.streams, handler, drain, || accepting.cancel()).await;
    }
}

/// Binds `address` and starts accepting.
pub(crate) async fn listen(address: &str, settings: &Settings) -> Result<TcpListener> {
    let socket = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| {
            let detail = format!("cannot listen on {address}: {error}");
            match error.kind() {
                std::io::ErrorKind::AddrInUse => Error::conflict(crate::ID, detail),
                std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::InvalidInput => {
                    Error::bad_request(crate::ID, detail)
                }
                _ => Error::internal(crate::ID, detail),
            }
        })?;
    let bound = socket
        .local_addr()
        .map_err(|error| Error::internal(crate::ID, format!("listening on {address}: {error}")))?
        .to_string();
    let stop = CancellationToken::new();
    let accepting = stop.child_token();
    let (accept, streams) = mpsc::channel(ACCEPT_BACKLOG);
    let unary = Arc::new(OnceLock::new());
    // Each listener rate-limits the warnings of its own connections.
    let settings = Settings {
        warnings: Arc::default(),
        ..settings.clone()
    };
    tokio::spawn(accept_loop(
        socket,
        accept,
        unary.clone(),
        Tokens {
            accepting: accepting.clone(),
            stop: stop.clone(),
        },
        settings,
    ));
    Ok(TcpListener {
        address: bound,
        streams,
        unary,
        accepting,
        _stop: stop.drop_guard(),
    })
}

/// When the accept loop stops accepting, and when it closes the connections.
struct Tokens {
    /// Stop accepting (close the socket); the connections go on.
    accepting: CancellationToken,
    /// Close the connections.
    stop: CancellationToken,
}

/// Accepts connections until `accepting` is cancelled, then closes the socket and waits for
/// `stop` to close the connections. Each connection has its own tasks, so one bad connection
/// never affects the others or this loop.
async fn accept_loop(
    socket: tokio::net::TcpListener,
    accept: mpsc::Sender<Stream>,
    unary: Arc<OnceLock<ExchangeHandler>>,
    tokens: Tokens,
    settings: Settings,
) {
    let Tokens { accepting, stop } = tokens;
    // The live connections, to close when the listener goes (weak: ended ones drop out).
    let mut connections: Vec<mpsc::WeakUnboundedSender<Event>> = Vec::new();
    let mut prune_at = 64;
    loop {
        let accepted = tokio::select! {
            _ = accepting.cancelled() => break,
            accepted = socket.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Nagle only delays frames; failing to turn it off is harmless.
                let _ = stream.set_nodelay(true);
                let handles = conn::spawn(
                    stream,
                    peer.to_string(),
                    Side::Server {
                        accept: accept.clone(),
                        unary: unary.clone(),
                    },
                    &settings,
                );
                connections.push(handles.events.downgrade());
                if connections.len() >= prune_at {
                    connections.retain(|c| c.strong_count() > 0);
                    prune_at = (connections.len() * 2).max(64);
                }
            }
            Err(error) => {
                settings
                    .logger
                    .in_scope(|| tracing::warn!(%error, "accepting a connection failed"));
                tokio::select! {
                    _ = accepting.cancelled() => break,
                    _ = tokio::time::sleep(ACCEPT_RETRY) => {}
                }
            }
        }
    }
    drop(socket);
    stop.cancelled().await;
    for connection in connections {
        if let Some(events) = connection.upgrade() {
            let _ = events.send(Event::Shutdown(Error::unavailable(
                crate::ID,
                "the server closed the connection: it stopped before the stream ended; \
                 the call may have run in part",
            )));
        }
    }
}
