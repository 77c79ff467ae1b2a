//! In-process transport: listeners and connections inside one [`MemoryTransport`] value,
//! frames passed as values (no sockets, no encoding).
//!
//! Semantics:
//! - `listen` on an empty address or one ending in `:0` (`127.0.0.1:0`, `:0`, `memory:0`)
//!   picks a fresh address `memory:N` from a counter inside the value; any other address is
//!   used as given, and 409 is returned if a listener already holds it.
//! - `dial` finds the listener in the same value (clones share it); an address nobody
//!   listens on is a 503 naming the address. The dial options' timeout does not apply: a
//!   memory dial never waits.
//! - Every [`Connection::open_stream`] makes a stream pair and queues the server side for the
//!   listener's `serve` (up to [`ACCEPT_BACKLOG`] streams waiting, then `open_stream`
//!   waits). Each direction of a stream is independent: dropping (or closing) a sender ends
//!   that direction and the peer's `recv` returns `None`; dropping a receiver makes the
//!   peer's `send` fail.
//! - Dropping the listener frees its address: new dials fail and `open_stream` on existing
//!   connections fails with 503. Streams already accepted keep working.

use micro_core::transport::{
    Connection, DialOptions, Drain, ExchangeHandler, Listener, Message, Stream, StreamIo,
    Transport, serve_streams, stream_pair,
};
use micro_core::{Error, Plugin, Result};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::sync::mpsc;

/// Streams opened but not yet accepted, per listener, before `open_stream` waits.
pub const ACCEPT_BACKLOG: usize = 128;

const ID: &str = "go.micro.transport";

/// An in-process transport; cheap to clone, clones share listeners.
#[derive(Clone)]
pub struct MemoryTransport {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    listeners: HashMap<String, Slot>,
    /// Source of listener ids, generated addresses and client addresses.
    counter: u64,
}

struct Slot {
    id: u64,
    streams: mpsc::Sender<Stream>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }
}

impl Default for MemoryTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.lock();
        let mut addresses: Vec<&String> = state.listeners.keys().collect();
        addresses.sort();
        f.debug_struct("MemoryTransport")
            .field("listeners", &addresses)
            .finish()
    }
}

impl MemoryTransport {
    /// A transport with no listeners.
    pub fn new() -> Self {
        MemoryTransport {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
            }),
        }
    }
}

/// Whether `address` asks for a generated address.
fn wants_fresh_address(address: &str) -> bool {
    address.is_empty() || address.ends_with(":0")
}

/// Copies frames the user sent on one side to the user's receiver on the other side, until
/// the sender is dropped (end of stream) or the receiver is.
fn pump(a: StreamIo, b: StreamIo) {
    forward(a.outgoing, b.incoming);
    forward(b.outgoing, a.incoming);
}

/// One direction of a stream; each task owns only its two ends so that ending one direction
/// never holds the other open.
fn forward(mut from: mpsc::Receiver<Message>, to: mpsc::Sender<Result<Message>>) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                frame = from.recv() => match frame {
                    Some(frame) => {
                        if to.send(Ok(frame)).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
                // The receiving user went away: stop now so the sender sees the stream closed.
                _ = to.closed() => break,
            }
        }
    });
}

#[async_trait::async_trait]
impl Transport for MemoryTransport {
    fn name(&self) -> &str {
        "memory"
    }

    async fn dial(&self, address: &str, _options: DialOptions) -> Result<Box<dyn Connection>> {
        let mut state = self.inner.lock();
        let Some(slot) = state.listeners.get(address) else {
            return Err(Error::unavailable(
                ID,
                format!("nothing listens on {address} in this memory transport"),
            ));
        };
        let streams = slot.streams.clone();
        let local = format!("memory:client-{}", state.next());
        Ok(Box::new(MemoryConnection {
            remote: address.to_string(),
            local,
            streams,
        }))
    }

    async fn listen(&self, address: &str) -> Result<Box<dyn Listener>> {
        let mut state = self.inner.lock();
        let address = if wants_fresh_address(address) {
            loop {
                let candidate = format!("memory:{}", state.next());
                if !state.listeners.contains_key(&candidate) {
                    break candidate;
                }
            }
        } else if state.listeners.contains_key(address) {
            return Err(Error::conflict(
                ID,
                format!("{address} is already listened on in this memory transport"),
            ));
        } else {
            address.to_string()
        };
        let id = state.next();
        let (streams, incoming) = mpsc::channel(ACCEPT_BACKLOG);
        state
            .listeners
            .insert(address.clone(), Slot { id, streams });
        Ok(Box::new(MemoryListener {
            listing: Listing {
                address,
                id,
                transport: Arc::downgrade(&self.inner),
            },
            incoming,
        }))
    }
}

/// A client connection to a [`MemoryTransport`] listener.
pub struct MemoryConnection {
    remote: String,
    local: String,
    streams: mpsc::Sender<Stream>,
}

impl fmt::Debug for MemoryConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryConnection")
            .field("remote", &self.remote)
            .field("local", &self.local)
            .field("closed", &self.streams.is_closed())
            .finish()
    }
}

#[async_trait::async_trait]
impl Connection for MemoryConnection {
    async fn open_stream(&self) -> Result<Stream> {
        let closed = || Error::unavailable(ID, format!("listener {} is closed", self.remote));
        if self.streams.is_closed() {
            return Err(closed());
        }
        let (client, client_io) = stream_pair(self.remote.clone());
        let (server, server_io) = stream_pair(self.local.clone());
        self.streams.send(server).await.map_err(|_| closed())?;
        pump(client_io, server_io);
        Ok(client)
    }

    fn remote(&self) -> &str {
        &self.remote
    }

    fn is_closed(&self) -> bool {
        self.streams.is_closed()
    }
}

/// A listener of a [`MemoryTransport`]; dropping it frees the address.
pub struct MemoryListener {
    listing: Listing,
    incoming: mpsc::Receiver<Stream>,
}

/// A listener's entry in its transport's table of addresses; dropping it frees the address.
struct Listing {
    address: String,
    id: u64,
    transport: Weak<Inner>,
}

impl fmt::Debug for MemoryListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryListener")
            .field("address", &self.listing.address)
            .finish()
    }
}

impl Listing {
    /// Frees the address: dials fail; connections already made keep their streams coming.
    fn unlist(&self) {
        if let Some(inner) = self.transport.upgrade() {
            let mut state = inner.lock();
            if state
                .listeners
                .get(&self.address)
                .is_some_and(|s| s.id == self.id)
            {
                state.listeners.remove(&self.address);
            }
        }
    }
}

impl Drop for Listing {
    fn drop(&mut self) {
        self.unlist();
    }
}

#[async_trait::async_trait]
impl Listener for MemoryListener {
    fn address(&self) -> String {
        self.listing.address.clone()
    }

    /// Each stream a connection opens is served on a task of its own. Draining frees the
    /// address (new dials fail); connections already made go on opening streams.
    async fn serve(self: Box<Self>, handler: ExchangeHandler, drain: Drain) {
        let MemoryListener {
            listing,
            mut incoming,
        } = *self;
        serve_streams(&mut incoming, handler, drain, || listing.unlist()).await;
    }
}

/// The plugin-table entry: `transport: {plugin: memory}` builds a new transport; it takes no
/// options.
pub fn plugin() -> Plugin {
    Plugin::transport("memory", "memory", |_| Ok(Arc::new(MemoryTransport::new())))
}
