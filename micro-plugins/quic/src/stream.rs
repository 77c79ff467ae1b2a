//! One QUIC bidirectional stream as micro's [`Stream`]: frames in micro's frame format
//! (`micro_core::transport::frame`), one after another on the QUIC stream; finishing the
//! QUIC stream ends that direction; a frame with the RESET flag carries an error.

use crate::ID;
use bytes::BytesMut;
use futures::future::BoxFuture;
use micro_core::transport::frame::{self, Frame};
use micro_core::transport::{
    FrameSink, FrameSource, Message, Stream, StreamReceiver, StreamSender,
};
use micro_core::{Error, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Bytes asked of QUIC per read.
const READ_CHUNK: usize = 64 * 1024;

/// Error code with which a receiver that is dropped early stops the peer's sending.
const STOP_CODE: u32 = 0;

/// The stream id written in frames: streams are QUIC's, so it only tells a reader of a
/// packet capture which QUIC stream the frame belongs to (low 32 bits).
fn frame_id(id: quinn::StreamId) -> u32 {
    u64::from(quinn::VarInt::from(id)) as u32
}

/// Makes micro's stream of a QUIC stream pair.
pub(crate) fn stream(
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    connection: quinn::Connection,
    remote: String,
    max_frame_size: usize,
) -> Stream {
    let sink = QuicSink {
        id: frame_id(send.id()),
        send: tokio::sync::Mutex::new(send),
        closed: AtomicBool::new(false),
        connection: connection.clone(),
        remote: remote.clone(),
        max_frame_size,
    };
    let source = QuicSource {
        recv,
        buf: BytesMut::new(),
        max_frame_size,
        connection,
        remote: remote.clone(),
        done: false,
    };
    Stream {
        sender: StreamSender::from_sink(Arc::new(sink)),
        receiver: StreamReceiver::from_source(Box::new(source)),
        remote,
    }
}

/// The error of a stream whose connection failed.
fn connection_failed(connection: &quinn::Connection, remote: &str) -> Error {
    match connection.close_reason() {
        Some(error) => crate::tls::connection_error(remote, &error),
        None => Error::transport(ID, format!("stream to {remote} failed")),
    }
}

/// The error of a stream sent in 0-RTT data that the server refused: nothing of it ran.
fn zero_rtt_rejected(remote: &str) -> Error {
    Error::transport(
        ID,
        format!(
            "{remote} did not accept this stream's 0-RTT data (the server restarted, is gone, \
             or does not accept early data): the request was not processed; retry"
        ),
    )
    .retryable()
}

/// The sending half: frames written straight onto the QUIC send stream. Dropping the last
/// handle finishes the QUIC stream (quinn does it on drop), which the peer reads as the end.
struct QuicSink {
    id: u32,
    send: tokio::sync::Mutex<quinn::SendStream>,
    closed: AtomicBool,
    connection: quinn::Connection,
    remote: String,
    max_frame_size: usize,
}

impl QuicSink {
    async fn write(&self, message: Message) -> Result<()> {
        let frame = Frame::data(self.id, message);
        frame::length_within(&frame, self.max_frame_size).map_err(|e| e.to_error())?;
        let mut buf = BytesMut::new();
        frame::encode(&frame, &mut buf).map_err(|e| e.to_error())?;
        let mut send = self.send.lock().await;
        match send.write_all(&buf).await {
            Ok(()) => Ok(()),
            Err(error) => {
                self.closed.store(true, Ordering::Relaxed);
                Err(match error {
                    quinn::WriteError::ConnectionLost(e) => {
                        crate::tls::connection_error(&self.remote, &e)
                    }
                    quinn::WriteError::ZeroRttRejected => zero_rtt_rejected(&self.remote),
                    quinn::WriteError::Stopped(_) | quinn::WriteError::ClosedStream => {
                        Error::transport(
                            ID,
                            format!(
                                "stream closed by peer: {} ended the stream or went away; \
                                 open a new stream to retry",
                                self.remote
                            ),
                        )
                    }
                })
            }
        }
    }
}

impl FrameSink for QuicSink {
    fn send(&self, message: Message) -> BoxFuture<'_, Result<()>> {
        Box::pin(self.write(message))
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed) || self.connection.close_reason().is_some()
    }

    fn closed(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let stopped = {
                let send = self.send.lock().await;
                send.stopped()
            };
            let _ = stopped.await;
            self.closed.store(true, Ordering::Relaxed);
        })
    }
}

/// The receiving half: reads the QUIC stream and decodes frames.
struct QuicSource {
    recv: quinn::RecvStream,
    buf: BytesMut,
    max_frame_size: usize,
    connection: quinn::Connection,
    remote: String,
    done: bool,
}

impl QuicSource {
    async fn next(&mut self) -> Option<Result<Message>> {
        if self.done {
            return None;
        }
        loop {
            match frame::decode(&mut self.buf, self.max_frame_size) {
                Ok(Some(frame)) => {
                    if frame.is_reset() {
                        self.done = true;
                        // Whatever the peer says, what it reset may have run in part.
                        let error = frame
                            .error()
                            .unwrap_or_else(|| {
                                Error::transport(ID, format!("{} reset the stream", self.remote))
                            })
                            .with_retryable(false);
                        return Some(Err(error));
                    }
                    return Some(Ok(frame.message));
                }
                Ok(None) => {}
                Err(error) => {
                    self.done = true;
                    let _ = self.recv.stop(quinn::VarInt::from_u32(STOP_CODE));
                    return Some(Err(error.to_error()));
                }
            }
            match self.recv.read_chunk(READ_CHUNK, true).await {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk.bytes),
                Ok(None) => {
                    self.done = true;
                    if self.buf.is_empty() {
                        return None;
                    }
                    return Some(Err(Error::bad_request(
                        ID,
                        format!(
                            "{} ended the stream in the middle of a frame ({} bytes left over)",
                            self.remote,
                            self.buf.len()
                        ),
                    )));
                }
                Err(error) => {
                    self.done = true;
                    return Some(Err(match error {
                        quinn::ReadError::ConnectionLost(_) => {
                            connection_failed(&self.connection, &self.remote)
                        }
                        quinn::ReadError::ZeroRttRejected => zero_rtt_rejected(&self.remote),
                        quinn::ReadError::Reset(_) => {
                            Error::transport(ID, format!("{} reset the stream", self.remote))
                        }
                        other => {
                            Error::transport(ID, format!("reading from {}: {other}", self.remote))
                        }
                    }));
                }
            }
        }
    }
}

impl FrameSource for QuicSource {
    fn recv(&mut self) -> BoxFuture<'_, Option<Result<Message>>> {
        Box::pin(self.next())
    }
}
