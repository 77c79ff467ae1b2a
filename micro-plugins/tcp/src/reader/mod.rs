//! The reader task of a connection: reads the socket in large chunks, decodes every complete
//! frame and routes it by stream id. It owns the stream table.
//!
//! Stream life cycle (both sides): a stream id is forgotten once this side has both sent a
//! terminal frame (END or RESET) and received one. A data frame for a stream whose user
//! dropped the receiver makes this side abort the stream with RESET (also after its own END:
//! it tells the peer to stop sending); receiving RESET fails the user's receiver, stops the
//! user's sender and, unless this side already sent END or RESET, answers with RESET.
//!
//! Delivery waits when a stream's receiver is full, which pauses reading the whole
//! connection (TCP flow control does the rest); events are still handled meanwhile. So does
//! a UNARY request when `max_unary` are in flight. The server half (opening streams, limits,
//! unary requests) is in [`server`].

mod server;

use crate::conn::{Closed, Control, Event, IdBuild, Pending, Settings, Side, fail};
use crate::frame::{self, Frame};
use crate::limits::{Limits, WarnLimit};
use crate::timers::Timers;
use bytes::BytesMut;
use futures::stream::AbortHandle;
use micro_core::logger::Logger;
use micro_core::transport::{ExchangeHandler, Message, Stream};
use micro_core::{Error, Result};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Bytes asked of each read when the buffer runs low. Below 64 KiB on purpose: glibc
/// consolidates its whole heap whenever a chunk of 64 KiB or more is freed, and read buffers
/// are freed often (decoded bodies keep them alive only until they are dropped).
const READ_CHUNK: usize = 32 * 1024;
/// Free space below which the buffer grows before reading.
const MIN_FREE: usize = 4 * 1024;
/// How long a connection that sent a bad frame is drained after the error frame, so that
/// closing it does not reset the connection (and destroy the error frame) in the peer; also
/// how long a graceful close waits for the writer to flush.
const LINGER: Duration = Duration::from_secs(1);
/// Bytes drained at most during [`LINGER`].
const LINGER_BYTES: usize = 1 << 20;

/// One stream as the reader tracks it.
struct Entry {
    /// The user's receiver's channel; `None` once the peer ended (or the user stopped
    /// reading).
    incoming: Option<mpsc::Sender<Result<Message>>>,
    /// Stops the writer forwarding the user's frames.
    abort: AbortHandle,
    /// This side sent END or RESET.
    local_done: bool,
    /// This side sent RESET.
    reset_sent: bool,
    /// The peer sent END or RESET.
    remote_done: bool,
    /// Server: the peer opened it and has sent nothing since (`first_message_timeout`).
    awaiting: bool,
}

impl Entry {
    fn new(incoming: mpsc::Sender<Result<Message>>, abort: AbortHandle) -> Self {
        Entry {
            incoming: Some(incoming),
            abort,
            local_done: false,
            reset_sent: false,
            remote_done: false,
            awaiting: false,
        }
    }
}

/// Why the reader stopped.
enum Exit {
    /// Connection lost or closed: fail open streams with this error.
    Closed(Error),
    /// The peer broke the protocol: tell it (stream 0), fail open streams, close.
    Protocol(Error),
    /// Nothing open and nobody needs the connection (idle or orphaned): close gracefully.
    Quiet,
    /// The listener closed: reset open streams with this error, flush, close.
    Shutdown(Error),
}

/// What woke the reader up.
enum Wake {
    Event(Option<Event>),
    Timer,
    Read(std::io::Result<usize>),
}

/// The reader task's state.
pub(crate) struct Reader {
    read: OwnedReadHalf,
    buf: BytesMut,
    remote: String,
    max: usize,
    streams: HashMap<u32, Entry, IdBuild>,
    events: mpsc::UnboundedReceiver<Event>,
    control: mpsc::UnboundedSender<Control>,
    /// Dropping it stops the writer.
    kill: oneshot::Sender<()>,
    closed: Closed,
    /// Server side: where new streams go.
    accept: Option<mpsc::Sender<Stream>>,
    /// Server side: the listener's unary handler, once it has one.
    unary: Option<Arc<OnceLock<ExchangeHandler>>>,
    /// Client side: unary calls waiting for their answer.
    pending: Pending,
    /// Client side: the last handle is gone.
    orphaned: bool,
    /// Idle close, partial frames, new streams' first frames.
    timers: Timers,
    limits: Limits,
    /// Server side: ids of streams refused (RESET) whose END or RESET has not arrived.
    refused: HashSet<u32, IdBuild>,
    /// Server side: one permit per UNARY request handled or answered but not yet written.
    slots: Option<Arc<Semaphore>>,
    logger: Logger,
    warnings: Arc<WarnLimit>,
}

/// The reader's links to the rest of its connection.
pub(crate) struct Links {
    /// Messages to the reader.
    pub events: mpsc::UnboundedReceiver<Event>,
    /// Messages to the writer.
    pub control: mpsc::UnboundedSender<Control>,
    /// Dropping it stops the writer.
    pub kill: oneshot::Sender<()>,
    /// The connection's closed flag.
    pub closed: Closed,
    /// The connection's waiting unary calls.
    pub pending: Pending,
}

impl Reader {
    /// A reader for one connection.
    pub fn new(
        read: OwnedReadHalf,
        remote: String,
        side: Side,
        links: Links,
        settings: &Settings,
    ) -> Self {
        let Links {
            events,
            control,
            kill,
            closed,
            pending,
        } = links;
        let limits = settings.limits;
        let (accept, unary, timers, slots) = match side {
            Side::Client { idle } => (None, None, Timers::new(idle, limits.read, None), None),
            Side::Server { accept, unary } => (
                Some(accept),
                Some(unary),
                Timers::new(limits.idle, limits.read, limits.first_message),
                Some(Arc::new(Semaphore::new(limits.max_unary))),
            ),
        };
        Reader {
            read,
            buf: BytesMut::with_capacity(READ_CHUNK),
            remote,
            max: settings.max_frame_size,
            streams: HashMap::default(),
            events,
            control,
            kill,
            closed,
            accept,
            unary,
            pending,
            orphaned: false,
            timers,
            limits,
            refused: HashSet::default(),
            slots,
            logger: settings.logger.clone(),
            warnings: settings.warnings.clone(),
        }
    }

    /// Runs until the connection ends, then fails what is still open. Returning drops the
    /// `kill` sender, which stops the writer.
    pub async fn run(mut self) {
        let exit = self.serve().await;
        self.closed.set();
        match exit {
            Exit::Quiet => {
                self.log_debug("closing unused connection");
                self.finish(Error::unavailable(crate::ID, "connection closed"));
                // Let the writer flush the last END frames and send FIN.
                let _ = self.control.send(Control::Shutdown);
                let _ = tokio::time::timeout(LINGER, self.kill.closed()).await;
            }
            Exit::Closed(error) => {
                self.log_debug(&error.detail);
                self.finish(error);
            }
            Exit::Shutdown(error) => {
                self.log_debug(&error.detail);
                // The peer learns why each open stream ends; answers already queued go first.
                for (&id, entry) in &self.streams {
                    if !entry.local_done {
                        let _ = self.control.send(Control::Reset(id, error.clone()));
                    }
                }
                let _ = self.control.send(Control::Shutdown);
                self.finish(error);
                let _ = tokio::time::timeout(LINGER, self.kill.closed()).await;
            }
            Exit::Protocol(error) => {
                self.log_protocol_error(&error);
                // The writer sends the error frame, then closes its half.
                let _ = self.control.send(Control::Fatal(error.clone()));
                self.finish(error);
                self.linger().await;
            }
        }
    }

    /// The main loop.
    async fn serve(&mut self) -> Exit {
        loop {
            let mut progressed = false;
            loop {
                match frame::decode(&mut self.buf, self.max) {
                    Ok(Some(frame)) => {
                        progressed = true;
                        if let Err(exit) = self.on_frame(frame).await {
                            return exit;
                        }
                    }
                    Ok(None) => break,
                    Err(error) => return Exit::Protocol(error.to_error()),
                }
            }
            self.timers.partial(!self.buf.is_empty(), progressed);
            if self.orphaned && self.streams.is_empty() {
                return Exit::Quiet;
            }
            self.reserve();
            // Reading comes before the timer: after a pause (back-pressure) what the peer
            // sent meanwhile is read before any of its time limits is judged.
            let wake = tokio::select! {
                biased;
                event = self.events.recv() => Wake::Event(event),
                read = self.read.read_buf(&mut self.buf) => Wake::Read(read),
                _ = self.timers.wait() => Wake::Timer,
            };
            match wake {
                Wake::Event(Some(event)) => {
                    if let Err(exit) = self.on_event(event) {
                        return exit;
                    }
                }
                // The writer holds a sender until it ends, and the reader ends it.
                Wake::Event(None) => return Exit::Closed(self.gone("closed")),
                Wake::Timer => {
                    if let Err(exit) = self.on_timer() {
                        return exit;
                    }
                }
                Wake::Read(Ok(0)) if self.buf.is_empty() => {
                    return Exit::Closed(self.gone("closed by the peer"));
                }
                Wake::Read(Ok(0)) => {
                    return Exit::Protocol(Error::bad_request(
                        crate::ID,
                        format!(
                            "truncated frame: connection closed with {} bytes of a frame unread",
                            self.buf.len()
                        ),
                    ));
                }
                Wake::Read(Ok(_)) => self.timers.touched(),
                Wake::Read(Err(error)) => return Exit::Closed(self.gone(&error.to_string())),
            }
        }
    }

    /// The error open streams get when the connection ends.
    fn gone(&self, why: &str) -> Error {
        Error::unavailable(crate::ID, format!("connection to {}: {why}", self.remote))
    }

    /// Makes room for the next read: the whole pending frame if its size is known.
    fn reserve(&mut self) {
        let free = self.buf.capacity() - self.buf.len();
        let want = match frame::peek_size(&self.buf) {
            // decode already checked the size against the limit.
            Some(size) if size > self.buf.len() => (size - self.buf.len()).max(MIN_FREE),
            _ => MIN_FREE,
        };
        if free < want {
            self.buf.reserve(want.max(READ_CHUNK));
        }
    }

    /// Routes one decoded frame.
    async fn on_frame(&mut self, frame: Frame) -> Result<(), Exit> {
        let id = frame.stream;
        if id == frame::CONNECTION {
            // The only stream-0 frame defined is the connection error; others are ignored.
            return match frame.error() {
                Some(error) => Err(Exit::Closed(error)),
                None => Ok(()),
            };
        }
        if frame.is_unary() {
            return self.on_unary(frame).await;
        }
        let mut opened = None;
        if !self.streams.contains_key(&id) {
            // A stream this client just opened may still be queued as an event.
            while let Ok(event) = self.events.try_recv() {
                self.on_event(event)?;
            }
            if !self.streams.contains_key(&id) {
                if self.accept.is_none() {
                    // The answer of a unary call the peer served as a stream, or a late
                    // frame of a forgotten stream.
                    self.answer_call(frame);
                    return Ok(());
                }
                if frame.is_reset() {
                    // A late frame of a forgotten stream, or the answer to a refusal.
                    self.refused.remove(&id);
                    return Ok(());
                }
                if !self.refused.is_empty() && self.refused.contains(&id) {
                    // A stream this side refused: dropped until the peer ends it.
                    if frame.is_end() {
                        self.refused.remove(&id);
                    }
                    return Ok(());
                }
                if self.streams.len() >= self.limits.max_streams {
                    return self.refuse(id, !frame.is_end());
                }
                opened = Some(self.open(id)?);
            }
        }
        let Some(entry) = self.streams.get_mut(&id) else {
            return Ok(());
        };
        if opened.is_none() {
            entry.awaiting = false;
        }
        if frame.is_reset() {
            entry.remote_done = true;
            if let Some(tx) = entry.incoming.take() {
                let reason = frame
                    .error()
                    .unwrap_or_else(|| Error::unavailable(crate::ID, "stream reset by peer"));
                fail(tx, reason);
            }
            self.stop_sending(id, Reset::Answer);
        } else if frame.is_end() {
            entry.remote_done = true;
            entry.incoming = None;
        } else if let Some(tx) = &entry.incoming {
            let delivered = match tx.try_send(Ok(frame.message)) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Closed(_)) => false,
                Err(mpsc::error::TrySendError::Full(item)) => {
                    let tx = tx.clone();
                    self.wait_send(tx, item).await?
                }
            };
            if !delivered {
                if let Some(entry) = self.streams.get_mut(&id) {
                    entry.incoming = None;
                }
                self.stop_sending(id, Reset::StoppedReceiving);
            }
        }
        // A data frame after END, or for a stream this side reset, is dropped.
        self.forget_if_done(id);
        match opened {
            // Handed over only now, with its first frame already in it: a user who drops
            // the stream at once does not make this side reset it for that frame.
            Some(stream) => {
                self.await_next(id);
                self.hand_over(stream).await
            }
            None => Ok(()),
        }
    }

    /// Client side: hands a frame for an id without a stream to the unary call waiting on
    /// it (data or UNARY: the answer; RESET: the error); anything else is dropped.
    fn answer_call(&mut self, frame: Frame) {
        if frame.is_end() {
            return;
        }
        let Some(answer) = self.pending.take(frame.stream) else {
            return;
        };
        let result = if frame.is_reset() {
            Err(frame
                .error()
                .unwrap_or_else(|| Error::unavailable(crate::ID, "stream reset by peer")))
        } else {
            Ok(frame.message)
        };
        let _ = answer.send(result);
        self.timers.touched();
    }

    /// Sends on a full channel: waits for room, handling events meanwhile (a close among
    /// them ends the wait). `Ok(false)`: the receiver is gone.
    async fn wait_send<T>(&mut self, tx: mpsc::Sender<T>, item: T) -> Result<bool, Exit> {
        let send = tx.send(item);
        tokio::pin!(send);
        loop {
            tokio::select! {
                biased;
                sent = &mut send => return Ok(sent.is_ok()),
                event = self.events.recv() => match event {
                    Some(event) => self.on_event(event)?,
                    None => return Err(Exit::Closed(self.gone("closed"))),
                },
            }
        }
    }

    /// Stops the user's sending direction of `id` and makes the writer send RESET when
    /// `why` calls for it.
    fn stop_sending(&mut self, id: u32, why: Reset) {
        let Some(entry) = self.streams.get_mut(&id) else {
            return;
        };
        entry.abort.abort();
        let send = match why {
            Reset::Answer => !entry.local_done,
            Reset::StoppedReceiving => !entry.reset_sent,
        };
        if send {
            entry.local_done = true;
            entry.reset_sent = true;
            let reason = match why {
                Reset::Answer => "stream reset by peer",
                Reset::StoppedReceiving => "the peer stopped receiving",
            };
            let _ = self
                .control
                .send(Control::Reset(id, Error::unavailable(crate::ID, reason)));
        }
    }

    /// Handles a message from a handle, the listener or the writer.
    fn on_event(&mut self, event: Event) -> Result<(), Exit> {
        match event {
            Event::Open {
                id,
                incoming,
                abort,
            } => {
                self.streams.insert(id, Entry::new(incoming, abort));
                self.timers.busy();
            }
            Event::LocalEnd(id) => {
                if let Some(entry) = self.streams.get_mut(&id) {
                    entry.local_done = true;
                    self.forget_if_done(id);
                }
            }
            Event::SendFailed(id, error) => {
                if let Some(entry) = self.streams.get_mut(&id) {
                    entry.local_done = true;
                    entry.reset_sent = true;
                    entry.abort.abort();
                    if let Some(tx) = entry.incoming.take() {
                        fail(tx, error);
                    }
                    self.forget_if_done(id);
                }
            }
            Event::Close(error) => return Err(Exit::Closed(error)),
            Event::Shutdown(error) => return Err(Exit::Shutdown(error)),
            Event::Orphaned => self.orphaned = true,
        }
        Ok(())
    }

    /// Forgets `id` once both directions ended.
    fn forget_if_done(&mut self, id: u32) {
        if self
            .streams
            .get(&id)
            .is_some_and(|e| e.local_done && e.remote_done)
        {
            self.streams.remove(&id);
            if self.streams.is_empty() {
                self.timers.unused();
            }
        }
    }

    /// Fails every open stream (and any stream opened meanwhile) with `error`; afterwards
    /// no stream can be opened on this connection.
    fn finish(&mut self, error: Error) {
        self.pending.close(&error);
        self.events.close();
        while let Ok(event) = self.events.try_recv() {
            if let Event::Open { incoming, .. } = event {
                fail(incoming, error.clone());
            }
        }
        for (_, entry) in self.streams.drain() {
            entry.abort.abort();
            if let Some(tx) = entry.incoming {
                fail(tx, error.clone());
            }
        }
    }

    /// After a protocol error: reads and drops what the peer still sends, for a short while,
    /// so that the close is a clean FIN that lets the peer read the error frame.
    async fn linger(&mut self) {
        let deadline = tokio::time::sleep(LINGER);
        tokio::pin!(deadline);
        let mut drained = 0;
        loop {
            self.buf.clear();
            self.buf.reserve(READ_CHUNK);
            tokio::select! {
                _ = &mut deadline => return,
                read = self.read.read_buf(&mut self.buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        drained += n;
                        if drained > LINGER_BYTES {
                            return;
                        }
                    }
                },
            }
        }
    }

    /// The timer fired: closes an idle connection or one stuck in a frame, resets streams
    /// whose next frame did not come.
    fn on_timer(&mut self) -> Result<(), Exit> {
        let busy = !self.pending.is_empty()
            || self
                .slots
                .as_ref()
                .is_some_and(|s| s.available_permits() < self.limits.max_unary);
        let overdue = self.timers.fired(busy);
        if let Some(limit) = overdue.partial {
            return Err(Exit::Protocol(Error::timeout(
                crate::ID,
                format!(
                    "a frame was not completed within {limit:?} (transport.read_timeout): \
                     {} bytes of it arrived; send each frame whole, or raise the option",
                    self.buf.len()
                ),
            )));
        }
        if overdue.idle {
            return Err(Exit::Quiet);
        }
        for id in overdue.streams {
            self.first_overdue(id);
        }
        Ok(())
    }

    /// Logs a protocol error of the peer: WARN within the listener's rate limit, DEBUG
    /// beyond it.
    fn log_protocol_error(&self, error: &Error) {
        let detail = format!("protocol error from {}: {}", self.remote, error.detail);
        let remote = &self.remote;
        self.logger.in_scope(|| match self.warnings.admit() {
            Some(0) => tracing::warn!(%remote, "{detail}"),
            Some(skipped) => tracing::warn!(
                %remote,
                skipped,
                "{detail} ({skipped} more protocol errors were not logged)"
            ),
            None => tracing::debug!(%remote, "{detail}"),
        });
    }

    fn log_debug(&self, what: &str) {
        self.logger
            .in_scope(|| tracing::debug!(remote = %self.remote, "{what}"));
    }
}

/// Why this side resets a stream.
#[derive(Clone, Copy)]
enum Reset {
    /// The peer reset it: answer unless this side already sent END or RESET.
    Answer,
    /// The user dropped the receiver while the peer still sends: ask it to stop, even after
    /// this side's END.
    StoppedReceiving,
}
