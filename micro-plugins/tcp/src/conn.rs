//! One TCP connection, either side: a reader task that decodes frames and routes them to
//! streams, a writer task that batches frames onto the socket, and the messages between
//! them and the handles that open streams.
//!
//! Ownership: the reader task owns the stream table (id → the user's incoming channel and
//! the state of both directions), so routing a frame takes no lock. The writer task owns
//! every stream's outgoing channel, merged in one `SelectAll`, so sending takes no extra
//! task or channel hop. They talk over two unbounded channels ([`Event`] to the reader,
//! [`Control`] to the writer); neither ever waits for the other, so they cannot deadlock.
//!
//! Closing: everything that ends a connection (the listener dropped, the last client handle
//! dropped, a write failure) is an [`Event`] to the reader, which fails the open streams and
//! then stops the writer by dropping its `kill` sender. The loops therefore wait only on
//! channels and the socket (no cancellation token, whose waiting takes a lock per poll).

use crate::limits::{Limits, WarnLimit};
use crate::reader::{Links, Reader};
use crate::writer::Writer;
use futures::stream::{AbortHandle, Abortable};
use micro_core::logger::Logger;
use micro_core::transport::{ExchangeHandler, Message, Stream};
use micro_core::{Error, Result};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

/// Settings every connection of a transport shares.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// Largest frame (bytes after the length prefix) read or written.
    pub max_frame_size: usize,
    /// Limits and time limits of a connection.
    pub limits: Limits,
    /// Where connection problems are logged.
    pub logger: Logger,
    /// Rate limit of protocol-error warnings (one per listener, one for dialled connections).
    pub warnings: Arc<WarnLimit>,
}

/// What the dialing or accepting code asks of a new connection.
pub(crate) enum Side {
    /// A dialled connection: frames with unknown ids are ignored.
    Client {
        /// Close after this long without open streams (`None` = never).
        idle: Option<Duration>,
    },
    /// An accepted connection: a frame with an unknown id opens a stream, sent here.
    Server {
        /// The listener's queue of new streams.
        accept: mpsc::Sender<Stream>,
        /// The listener's handler, once it serves: UNARY requests go straight to it.
        unary: Arc<OnceLock<ExchangeHandler>>,
    },
}

/// To the reader task.
pub(crate) enum Event {
    /// The client opened a stream: route its frames to `incoming`.
    Open {
        /// Stream id.
        id: u32,
        /// The user's receiver's channel.
        incoming: mpsc::Sender<Result<Message>>,
        /// Stops the stream's outgoing direction.
        abort: AbortHandle,
    },
    /// The writer wrote END for this stream.
    LocalEnd(u32),
    /// A frame of this stream could not be sent; the writer wrote RESET instead.
    SendFailed(u32, Error),
    /// Close the connection, failing open streams with this error (write failure).
    Close(Error),
    /// The listener was dropped: reset open streams with this error, write what is queued,
    /// then close.
    Shutdown(Error),
    /// The last client handle is gone: close once no stream is open.
    Orphaned,
}

/// To the writer task.
pub(crate) enum Control {
    /// Start forwarding the outgoing frames of stream `.0`.
    Register(u32, Abortable<Outgoing>),
    /// Write this frame as it is (UNARY requests and answers). A frame over the size limit
    /// is replaced by RESET with 413.
    Frame(crate::frame::Frame),
    /// Write this answer to a UNARY request like [`Control::Frame`]; the permit, which
    /// counts the request against `max_unary`, is released once it is written.
    Answer(crate::frame::Frame, OwnedSemaphorePermit),
    /// Write RESET for this stream (with the reason as `Micro-Error`) and drop its frames.
    Reset(u32, Error),
    /// Write this connection-level error (stream 0), then close the connection.
    Fatal(Error),
    /// Write what is queued, then close the connection (nothing is open any more).
    Shutdown,
}

/// The handles of a running connection.
pub(crate) struct Handles {
    /// To the reader.
    pub events: mpsc::UnboundedSender<Event>,
    /// To the writer.
    pub control: mpsc::UnboundedSender<Control>,
    /// Set once the connection is ending.
    pub closed: Closed,
    /// Unary calls waiting for their answer (client side).
    pub pending: Pending,
}

/// What a unary call waits on: its answer, or why there is none.
pub(crate) type Answer = oneshot::Sender<Result<Message>>;

/// The unary calls of a client connection waiting for their answer, by stream id. Shared
/// by the callers (insert, remove on cancel) and the reader (take on answer, fail all on
/// close); a call is never inserted after the connection closed.
#[derive(Clone, Default)]
pub(crate) struct Pending(Arc<Mutex<PendingTable>>);

#[derive(Default)]
struct PendingTable {
    calls: HashMap<u32, Answer, IdBuild>,
    /// Set when the connection ended: why.
    closed: Option<Error>,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, PendingTable> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the answer of `id`; fails when the connection already ended.
    pub fn insert(&self, id: u32, answer: Answer) -> Result<()> {
        let mut table = self.lock();
        if let Some(error) = &table.closed {
            return Err(error.clone());
        }
        table.calls.insert(id, answer);
        Ok(())
    }

    /// The waiting call of `id`, if any (removed).
    pub fn take(&self, id: u32) -> Option<Answer> {
        self.lock().calls.remove(&id)
    }

    /// Whether no call is waiting.
    pub fn is_empty(&self) -> bool {
        self.lock().calls.is_empty()
    }

    /// Fails every waiting call with `error`; later inserts fail with it too.
    pub fn close(&self, error: &Error) {
        let calls = {
            let mut table = self.lock();
            table.closed = Some(error.clone());
            std::mem::take(&mut table.calls)
        };
        for (_, answer) in calls {
            let _ = answer.send(Err(error.clone()));
        }
    }
}

/// A flag set once a connection is ending; no stream can be opened on it any more.
#[derive(Clone, Debug, Default)]
pub(crate) struct Closed(Arc<AtomicBool>);

impl Closed {
    /// Marks the connection closed.
    pub fn set(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the connection is closed.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Starts the reader and writer tasks of `socket`.
pub(crate) fn spawn(socket: TcpStream, remote: String, side: Side, settings: &Settings) -> Handles {
    let (read, write) = socket.into_split();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let (kill_tx, kill_rx) = oneshot::channel();
    let closed = Closed::default();
    let pending = Pending::default();
    let writer = Writer::new(
        write,
        control_rx,
        events_tx.clone(),
        kill_rx,
        closed.clone(),
        settings.max_frame_size,
    );
    let links = Links {
        events: events_rx,
        control: control_tx.clone(),
        kill: kill_tx,
        closed: closed.clone(),
        pending: pending.clone(),
    };
    let reader = Reader::new(read, remote, side, links, settings);
    tokio::spawn(writer.run());
    tokio::spawn(reader.run());
    Handles {
        events: events_tx,
        control: control_tx,
        closed,
        pending,
    }
}

/// One stream's outgoing direction as the writer sees it: `(id, Some(frame))` per frame the
/// user sent, then `(id, None)` once when the user dropped the sender, then the end.
#[derive(Debug)]
pub(crate) struct Outgoing {
    id: u32,
    frames: Option<mpsc::Receiver<Message>>,
}

impl Outgoing {
    /// The outgoing direction of stream `id`, abortable by the reader.
    pub fn new(id: u32, frames: mpsc::Receiver<Message>) -> (Abortable<Outgoing>, AbortHandle) {
        let (handle, registration) = AbortHandle::new_pair();
        (
            Abortable::new(
                Outgoing {
                    id,
                    frames: Some(frames),
                },
                registration,
            ),
            handle,
        )
    }
}

impl futures::Stream for Outgoing {
    type Item = (u32, Option<Message>);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let id = self.id;
        let Some(frames) = self.frames.as_mut() else {
            return Poll::Ready(None);
        };
        match frames.poll_recv(cx) {
            Poll::Ready(Some(message)) => Poll::Ready(Some((id, Some(message)))),
            Poll::Ready(None) => {
                self.frames = None;
                Poll::Ready(Some((id, None)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Hashes stream ids (`u32`) with one multiplication: ids are small consecutive numbers,
/// and the table is consulted once per frame.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, id: u32) {
        self.0 = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// `BuildHasher` of [`IdHasher`].
pub(crate) type IdBuild = BuildHasherDefault<IdHasher>;

/// Hands `error` to a stream's receiver as its last item, without blocking the caller.
pub(crate) fn fail(tx: mpsc::Sender<Result<Message>>, error: Error) {
    if let Err(mpsc::error::TrySendError::Full(item)) = tx.try_send(Err(error)) {
        // The user has frames to read first; deliver the error after them.
        tokio::spawn(async move {
            let _ = tx.send(item).await;
        });
    }
}
