//! The writer task of a connection: merges the outgoing frames of every stream, encodes all
//! that are ready into one buffer and writes it with one call.
//!
//! No task per stream: every stream's outgoing channel sits in one `SelectAll`, polled
//! round-robin by this task, so a frame goes user → channel → socket buffer. Frames that
//! become ready while a write is in progress are written together by the next call. Small
//! bodies are copied into the batch buffer (reused, no allocation per frame); bodies of
//! [`LARGE_BODY`] bytes or more are written from their own `Bytes` by a vectored write.

use crate::conn::{Closed, Control, Event, IdBuild, Outgoing};
use crate::frame::{self, Frame, FrameError};
use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::{Abortable, SelectAll};
use micro_core::Error;
use micro_core::transport::Message;
use std::collections::{HashSet, VecDeque};
use std::io::IoSlice;
use std::task::{Context, Poll};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

/// Bodies at least this large are not copied into the batch buffer.
const LARGE_BODY: usize = 16 * 1024;
/// A batch is written once it holds this many bytes, even if more frames are ready.
const BATCH_LIMIT: usize = 256 * 1024;
/// Initial capacity of the batch buffer.
const BUFFER: usize = 16 * 1024;
/// Most slices given to one vectored write.
const MAX_SLICES: usize = 64;

/// What to do after gathering.
enum Step {
    /// Write the batch.
    Write,
    /// Write the batch and this connection error, then close.
    Fatal(Error),
    /// Write the batch, then close.
    Stop,
}

/// Encoded frames waiting to be written.
#[derive(Default)]
struct Batch {
    /// Small frames, and the heads of frames with large bodies.
    buf: BytesMut,
    /// Ready-to-write pieces when a large body is in the batch, in order; `buf` follows them.
    chunks: VecDeque<Bytes>,
    /// Bytes in `chunks`.
    chunked: usize,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.buf.is_empty() && self.chunks.is_empty()
    }

    fn is_full(&self) -> bool {
        self.buf.len() + self.chunked >= BATCH_LIMIT
    }

    /// Adds one frame; on error nothing is added.
    fn push(&mut self, frame: &Frame) -> Result<(), FrameError> {
        let body = &frame.message.body;
        if body.len() < LARGE_BODY {
            return frame::encode(frame, &mut self.buf);
        }
        frame::encode_head(frame, &mut self.buf, 0)?;
        let head = self.buf.split().freeze();
        self.chunked += head.len() + body.len();
        self.chunks.push_back(head);
        self.chunks.push_back(body.clone());
        Ok(())
    }

    /// Writes everything and empties the batch.
    async fn write_to(&mut self, out: &mut OwnedWriteHalf) -> std::io::Result<()> {
        if self.chunks.is_empty() {
            out.write_all(&self.buf).await?;
            self.buf.clear();
            return Ok(());
        }
        if !self.buf.is_empty() {
            let tail = self.buf.split().freeze();
            self.chunks.push_back(tail);
        }
        while !self.chunks.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for (slot, chunk) in slices.iter_mut().zip(self.chunks.iter()) {
                *slot = IoSlice::new(chunk);
                count += 1;
            }
            let mut written = out.write_vectored(&slices[..count]).await?;
            if written == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            while written > 0 {
                let Some(front) = self.chunks.front_mut() else {
                    break;
                };
                if written >= front.len() {
                    written -= front.len();
                    self.chunks.pop_front();
                } else {
                    front.advance(written);
                    written = 0;
                }
            }
        }
        self.chunked = 0;
        Ok(())
    }
}

/// The writer task's state.
pub(crate) struct Writer {
    write: OwnedWriteHalf,
    control: mpsc::UnboundedReceiver<Control>,
    events: mpsc::UnboundedSender<Event>,
    /// Completes when the reader stops the writer.
    kill: oneshot::Receiver<()>,
    closed: Closed,
    state: State,
}

/// What gathering frames touches (apart from the socket and the token).
struct State {
    streams: SelectAll<Abortable<Outgoing>>,
    /// Streams for which neither END nor RESET was written yet.
    live: HashSet<u32, IdBuild>,
    batch: Batch,
    max: usize,
    control_closed: bool,
    /// Slots of the unary answers in the batch, merged into one and released at once when
    /// the batch is written.
    permits: Option<OwnedSemaphorePermit>,
}

impl Writer {
    /// A writer for one connection.
    pub fn new(
        write: OwnedWriteHalf,
        control: mpsc::UnboundedReceiver<Control>,
        events: mpsc::UnboundedSender<Event>,
        kill: oneshot::Receiver<()>,
        closed: Closed,
        max: usize,
    ) -> Self {
        Writer {
            write,
            control,
            events,
            kill,
            closed,
            state: State {
                streams: SelectAll::new(),
                live: HashSet::default(),
                batch: Batch {
                    buf: BytesMut::with_capacity(BUFFER),
                    ..Batch::default()
                },
                max,
                control_closed: false,
                permits: None,
            },
        }
    }

    /// Runs until the connection closes.
    pub async fn run(mut self) {
        loop {
            let Writer {
                control,
                events,
                kill,
                state,
                ..
            } = &mut self;
            let step = tokio::select! {
                biased;
                _ = kill => return,
                step = std::future::poll_fn(|cx| state.gather(cx, control, events)) => step,
            };
            let last = match step {
                Step::Write => false,
                Step::Fatal(error) => {
                    // Best effort: the connection is closed whatever happens.
                    let _ = self.state.batch.push(&Frame::connection_error(&error));
                    true
                }
                Step::Stop => true,
            };
            let flushed = self.flush().await;
            self.state.permits = None;
            match flushed {
                Ok(()) if !last => {}
                Ok(()) => {
                    // Killed or not, the connection is over: a failed shutdown changes nothing.
                    let _ = tokio::select! {
                        biased;
                        _ = &mut self.kill => Ok(()),
                        done = self.write.shutdown() => done,
                    };
                    return;
                }
                Err(None) => return,
                Err(Some(error)) => {
                    self.closed.set();
                    let _ = self.events.send(Event::Close(error));
                    return;
                }
            }
        }
    }

    /// Writes the batch unless the writer is stopped meanwhile (`Err(None)`).
    async fn flush(&mut self) -> Result<(), Option<Error>> {
        if self.state.batch.is_empty() {
            return Ok(());
        }
        tokio::select! {
            biased;
            _ = &mut self.kill => Err(None),
            written = self.state.batch.write_to(&mut self.write) => written.map_err(|e| {
                Some(Error::unavailable(crate::ID, format!("writing to the connection: {e}")))
            }),
        }
    }
}

impl State {
    /// Takes everything ready (control messages first, then frames of every stream) into the
    /// batch; ready when there is something to write.
    fn gather(
        &mut self,
        cx: &mut Context<'_>,
        control: &mut mpsc::UnboundedReceiver<Control>,
        events: &mpsc::UnboundedSender<Event>,
    ) -> Poll<Step> {
        while !self.control_closed && !self.batch.is_full() {
            match control.poll_recv(cx) {
                Poll::Ready(Some(Control::Frame(frame))) => self.whole(frame),
                Poll::Ready(Some(Control::Answer(frame, permit))) => {
                    self.whole(frame);
                    match &mut self.permits {
                        Some(held) => held.merge(permit),
                        None => self.permits = Some(permit),
                    }
                }
                Poll::Ready(Some(Control::Register(id, outgoing))) => {
                    self.live.insert(id);
                    self.streams.push(outgoing);
                }
                Poll::Ready(Some(Control::Reset(id, reason))) => {
                    // Also after END: RESET then asks the peer to stop sending. The reader
                    // asks once per stream; a duplicate (racing a failed send) is harmless.
                    self.live.remove(&id);
                    // A reason too long for a frame is not worth failing over.
                    if self.batch.push(&Frame::reset(id, &reason)).is_err() {
                        let _ = self.batch.push(&Frame {
                            stream: id,
                            flags: frame::RESET,
                            message: Message::default(),
                        });
                    }
                }
                Poll::Ready(Some(Control::Fatal(error))) => return Poll::Ready(Step::Fatal(error)),
                Poll::Ready(Some(Control::Shutdown)) => return Poll::Ready(Step::Stop),
                Poll::Ready(None) => self.control_closed = true,
                Poll::Pending => break,
            }
        }
        while !self.batch.is_full() {
            match self.streams.poll_next_unpin(cx) {
                Poll::Ready(Some((id, Some(message)))) => self.data(id, message, events),
                Poll::Ready(Some((id, None))) => {
                    if self.live.remove(&id) {
                        let _ = self.batch.push(&Frame::end(id));
                        let _ = events.send(Event::LocalEnd(id));
                    }
                }
                Poll::Ready(None) | Poll::Pending => break,
            }
        }
        if !self.batch.is_empty() {
            Poll::Ready(Step::Write)
        } else if self.control_closed && self.streams.is_empty() {
            Poll::Ready(Step::Stop)
        } else {
            Poll::Pending
        }
    }

    /// Adds `frame` to the batch unless it is over the size limit or cannot be encoded.
    fn push_within(&mut self, frame: &Frame) -> Result<(), FrameError> {
        frame::length_within(frame, self.max)?;
        self.batch.push(frame)
    }

    /// Adds a frame sent as it is (UNARY), or RESET with the reason when it cannot be sent.
    fn whole(&mut self, frame: Frame) {
        if let Err(failure) = self.push_within(&frame) {
            let _ = self
                .batch
                .push(&Frame::reset(frame.stream, &failure.to_error()));
        }
    }

    /// Adds a data frame, or — if it cannot be sent — RESET, and tells the reader.
    fn data(&mut self, id: u32, message: Message, events: &mpsc::UnboundedSender<Event>) {
        if !self.live.contains(&id) {
            return;
        }
        if let Err(failure) = self.push_within(&Frame::data(id, message)) {
            let error = failure.to_error();
            self.live.remove(&id);
            let _ = self.batch.push(&Frame::reset(id, &error));
            let _ = events.send(Event::SendFailed(id, error));
        }
    }
}
