//! The dialing side: connecting, and the [`TcpConnection`] handle that opens streams.

use crate::conn::{self, Control, Event, Handles, Outgoing, Pending, Settings, Side};
use crate::frame::{self, Frame};
use micro_core::transport::{Connection, Message, Stream, stream_pair};
use micro_core::{Error, Result};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;

/// A live dialled connection, shared by the pool and every handle to it.
pub(crate) struct Shared {
    remote: String,
    /// The next stream id; ids count up from 1 and are never reused.
    next_id: AtomicU32,
    handles: Handles,
    /// Largest frame written.
    max_frame_size: usize,
    /// A second handle on the socket, only to look for a peer that closed (see
    /// [`Shared::peer_closed`]).
    probe: Option<std::net::TcpStream>,
}

impl Shared {
    /// Whether the connection ended (or can open no more streams).
    pub fn is_closed(&self) -> bool {
        self.handles.closed.get() || self.next_id.load(Ordering::Relaxed) == u32::MAX
    }

    /// Whether unary calls are waiting for answers (then a closed peer shows at once).
    pub fn busy(&self) -> bool {
        !self.handles.pending.is_empty()
    }

    /// The error of an operation on a closed connection.
    fn closed_error(&self) -> Error {
        Error::unavailable(
            crate::ID,
            format!("connection to {} is closed", self.remote),
        )
    }

    /// The next stream id; fails once the connection closed or ran out of ids.
    fn next_id(&self) -> Result<u32> {
        if self.handles.closed.get() {
            return Err(self.closed_error());
        }
        self.next_id
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |id| {
                (id < u32::MAX).then_some(id + 1)
            })
            .map_err(|_| {
                Error::unavailable(
                    crate::ID,
                    format!("connection to {}: stream ids used up", self.remote),
                )
            })
    }

    /// Whether the peer already closed the connection, even if the reader task has not seen
    /// it yet: a non-blocking peek that finds the end of the stream. A pooled connection to a
    /// process that died while the connection sat idle is then never handed out, so a
    /// request is not sent into it (where its failure could not be told apart from a server
    /// dying mid-request, and so could not be retried safely).
    pub fn peer_closed(&self) -> bool {
        let Some(probe) = &self.probe else {
            return false;
        };
        let mut byte = [0u8; 1];
        match probe.peek(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        }
    }
}

impl Drop for Shared {
    /// The last handle is gone: the reader closes the connection once no stream is open.
    fn drop(&mut self) {
        let _ = self.handles.events.send(Event::Orphaned);
    }
}

/// Connects to `address` within `timeout` and starts the connection's tasks. Connections
/// without open streams close after `idle` (when given).
pub(crate) async fn connect(
    address: &str,
    timeout: Duration,
    idle: Option<Duration>,
    settings: &Settings,
) -> Result<Arc<Shared>> {
    let socket = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Ok(socket)) => socket,
        Ok(Err(error)) => {
            return Err(Error::unavailable(
                crate::ID,
                format!("cannot connect to {address}: {error}"),
            ));
        }
        Err(_) => {
            return Err(Error::timeout(
                crate::ID,
                format!("connecting to {address}: no answer within {timeout:?}"),
            ));
        }
    };
    socket.set_nodelay(true).map_err(|error| {
        Error::unavailable(crate::ID, format!("connection to {address}: {error}"))
    })?;
    let (socket, probe) = with_probe(socket, address)?;
    let handles = conn::spawn(socket, address.to_string(), Side::Client { idle }, settings);
    Ok(Arc::new(Shared {
        remote: address.to_string(),
        next_id: AtomicU32::new(1),
        handles,
        max_frame_size: settings.max_frame_size,
        probe,
    }))
}

/// The socket and a duplicate handle on it for [`Shared::peer_closed`] (none if the
/// duplicate cannot be made; the connection works the same without it).
fn with_probe(
    socket: TcpStream,
    address: &str,
) -> Result<(TcpStream, Option<std::net::TcpStream>)> {
    let unavailable = |error: std::io::Error| {
        Error::unavailable(crate::ID, format!("connection to {address}: {error}"))
    };
    let std_socket = socket.into_std().map_err(unavailable)?;
    let probe = std_socket.try_clone().ok();
    Ok((TcpStream::from_std(std_socket).map_err(unavailable)?, probe))
}

/// A handle to a dialled connection (possibly pooled and shared with other callers).
/// Dropping it does not close the connection: the pool keeps it until it is idle for the
/// pool TTL; an unpooled connection closes once its last handle is dropped and its last
/// stream ended.
#[derive(Clone)]
pub struct TcpConnection {
    shared: Arc<Shared>,
}

impl TcpConnection {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        TcpConnection { shared }
    }

    /// Whether two handles share one connection.
    pub fn same_connection(&self, other: &TcpConnection) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl fmt::Debug for TcpConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpConnection")
            .field("remote", &self.shared.remote)
            .field("closed", &self.shared.is_closed())
            .finish()
    }
}

#[async_trait::async_trait]
impl Connection for TcpConnection {
    async fn open_stream(&self) -> Result<Stream> {
        let shared = &self.shared;
        let closed = || shared.closed_error();
        let id = shared.next_id()?;
        let (stream, io) = stream_pair(shared.remote.clone());
        let (outgoing, abort) = Outgoing::new(id, io.outgoing);
        // The reader learns of the stream before the writer can send its first frame, so a
        // reply never finds the id unknown.
        shared
            .handles
            .events
            .send(Event::Open {
                id,
                incoming: io.incoming,
                abort,
            })
            .map_err(|_| closed())?;
        shared
            .handles
            .control
            .send(Control::Register(id, outgoing))
            .map_err(|_| closed())?;
        Ok(stream)
    }

    /// One UNARY frame each way: the answer goes straight from the reader to this call,
    /// with no stream, channel pair or writer registration.
    async fn call(&self, message: Message) -> Result<Message> {
        let shared = &self.shared;
        let id = shared.next_id().map_err(Error::retryable)?;
        let request = Frame::unary(id, message);
        frame::length_within(&request, shared.max_frame_size)
            .map_err(|error| error.to_error().retryable())?;
        let (answer, answered) = tokio::sync::oneshot::channel();
        let pending = &shared.handles.pending;
        pending.insert(id, answer).map_err(Error::retryable)?;
        // A call given up (deadline, cancelled) stops waiting for its answer.
        let mut waiting = Waiting {
            pending,
            id: Some(id),
        };
        if shared
            .handles
            .control
            .send(Control::Frame(request))
            .is_err()
        {
            return Err(shared.closed_error().retryable());
        }
        let result = answered.await;
        waiting.id = None; // the reader took it
        match result {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => Err(error.with_retryable(false)),
            Err(_) => Err(shared.closed_error()),
        }
    }

    fn remote(&self) -> &str {
        &self.shared.remote
    }

    fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}

/// Removes a unary call from the waiting table when it is dropped before its answer came.
struct Waiting<'a> {
    pending: &'a Pending,
    id: Option<u32>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.pending.take(id);
        }
    }
}
