//! The server half of the reader: streams the peer opens (with `max_streams` and
//! `first_message_timeout`) and UNARY requests (with `max_unary`).

use super::{Exit, Reader};
use crate::conn::{Control, Outgoing, fail};
use crate::frame::Frame;
use micro_core::Error;
use micro_core::transport::{Exchange, Stream, StreamReceiver, reply_once, stream_pair};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

impl Reader {
    /// A UNARY frame: on the server a whole request, on the client a whole answer.
    pub(super) async fn on_unary(&mut self, frame: Frame) -> Result<(), Exit> {
        let id = frame.stream;
        if self.accept.is_none() {
            self.answer_call(frame);
            return Ok(());
        }
        if self.streams.contains_key(&id) {
            return Err(Exit::Protocol(Error::bad_request(
                crate::ID,
                format!("UNARY frame on stream {id}, which is already open"),
            )));
        }
        if self.unary.as_ref().is_some_and(|u| u.get().is_some()) {
            // At the limit, reading waits here until an answer was written.
            let permit = self.unary_slot().await?;
            // A unary exchange: no stream state; its one answer is written as a UNARY frame.
            let control = self.control.clone();
            let sender = reply_once(move |message| {
                control
                    .send(Control::Answer(Frame::unary(id, message), permit))
                    .map_err(|_| Error::transport(crate::ID, "the connection closed"))
            });
            let exchange = Exchange {
                first: frame.message,
                stream: Stream {
                    sender,
                    receiver: StreamReceiver::ended(),
                    remote: self.remote.clone(),
                },
            };
            // Served here when the handler finishes at once (no task, no wake-up);
            // otherwise on a task of its own, so a slow handler never holds up the reader.
            let Some(handler) = self.unary.as_ref().and_then(|u| u.get()) else {
                return Ok(()); // set once and never unset: checked above
            };
            let mut served = handler(exchange);
            if futures::poll!(served.as_mut()).is_pending() {
                tokio::spawn(served);
            }
            return Ok(());
        }
        if self.streams.len() >= self.limits.max_streams {
            // The request ended the peer's direction: nothing to wait for after the RESET.
            return self.refuse(id, false);
        }
        // No unary handler: a stream with one message, already ended by the peer.
        let stream = self.open(id)?;
        if let Some(entry) = self.streams.get_mut(&id) {
            entry.remote_done = true;
            if let Some(tx) = entry.incoming.take() {
                // A new stream's channel has room.
                let _ = tx.try_send(Ok(frame.message));
            }
        }
        self.hand_over(stream).await
    }

    /// A slot for one more UNARY request: at once, or — with `max_unary` in flight — once
    /// an answer was written, handling events meanwhile (a close among them ends the wait).
    async fn unary_slot(&mut self) -> Result<OwnedSemaphorePermit, Exit> {
        // Only server connections take UNARY requests, and they always have slots.
        let Some(slots) = &self.slots else {
            return Err(Exit::Protocol(Error::bad_request(
                crate::ID,
                "UNARY request sent to a client connection: send requests to the server",
            )));
        };
        if let Ok(permit) = slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let acquire = slots.clone().acquire_owned();
        tokio::pin!(acquire);
        loop {
            tokio::select! {
                biased;
                permit = &mut acquire => {
                    return permit.map_err(|_| Exit::Closed(self.gone("closed")));
                }
                event = self.events.recv() => match event {
                    Some(event) => self.on_event(event)?,
                    None => return Err(Exit::Closed(self.gone("closed"))),
                },
            }
        }
    }

    /// Refuses stream `id` (one over `max_streams`) with RESET 429. `tombstone`: the peer
    /// may still send on it, so its frames are dropped until its END or RESET; a peer that
    /// leaves as many refused streams as it may have open is closed.
    pub(super) fn refuse(&mut self, id: u32, tombstone: bool) -> Result<(), Exit> {
        let max = self.limits.max_streams;
        if tombstone {
            if self.refused.len() >= max {
                return Err(Exit::Protocol(Error::too_many_requests(
                    crate::ID,
                    format!(
                        "the peer kept opening streams: {max} were refused for being over \
                         the limit of {max} per connection (transport.max_streams) and \
                         not ended; end or reset each refused stream before opening more, \
                         or raise transport.max_streams on the server"
                    ),
                )));
            }
            self.refused.insert(id);
        }
        let error = Error::too_many_requests(
            crate::ID,
            format!(
                "stream {id} refused: the connection already has {max} streams open, the \
                 limit (transport.max_streams); end streams before opening more, use another \
                 connection, or raise the option"
            ),
        );
        let _ = self.control.send(Control::Reset(id, error));
        Ok(())
    }

    /// Opens a stream the peer started (server side); the caller hands it to the listener.
    pub(super) fn open(&mut self, id: u32) -> Result<Stream, Exit> {
        let (stream, io) = stream_pair(self.remote.clone());
        let (outgoing, abort) = Outgoing::new(id, io.outgoing);
        if self.control.send(Control::Register(id, outgoing)).is_err() {
            return Err(Exit::Closed(self.gone("writer stopped")));
        }
        self.streams
            .insert(id, super::Entry::new(io.incoming, abort));
        self.timers.busy();
        Ok(stream)
    }

    /// Stream `id` was just opened: unless the peer already ended it, its next frame must
    /// come within `first_message_timeout`.
    pub(super) fn await_next(&mut self, id: u32) {
        if !self.timers.limits_first() {
            return;
        }
        let Some(entry) = self.streams.get_mut(&id) else {
            return;
        };
        if entry.remote_done {
            return;
        }
        entry.awaiting = true;
        let streams = &self.streams;
        self.timers
            .opened(id, |old| !streams.get(&old).is_some_and(|e| e.awaiting));
    }

    /// The time for stream `id`'s next frame is over: if it still waits, it is reset (408)
    /// on both sides.
    pub(super) fn first_overdue(&mut self, id: u32) {
        let Some(entry) = self.streams.get_mut(&id) else {
            return;
        };
        if !entry.awaiting {
            return;
        }
        entry.awaiting = false;
        let limit = self.limits.first_message.unwrap_or_default();
        let error = Error::timeout(
            crate::ID,
            format!(
                "stream {id}: nothing came after the frame that opened it within {limit:?} \
                 (transport.first_message_timeout); send the first message right after \
                 opening a stream, or raise the option"
            ),
        );
        entry.abort.abort();
        if let Some(tx) = entry.incoming.take() {
            fail(tx, error.clone());
        }
        if !entry.reset_sent {
            entry.local_done = true;
            entry.reset_sent = true;
            let _ = self.control.send(Control::Reset(id, error));
        }
    }

    /// Gives a stream the peer opened to the listener's `accept`.
    pub(super) async fn hand_over(&mut self, stream: Stream) -> Result<(), Exit> {
        let Some(accept) = self.accept.clone() else {
            return Ok(());
        };
        let accepted = match accept.try_send(stream) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(stream)) => self.wait_send(accept, stream).await?,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        };
        if accepted {
            Ok(())
        } else {
            Err(Exit::Closed(self.gone("listener closed")))
        }
    }
}
