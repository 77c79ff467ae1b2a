//! The dialling side's connection: each stream opened on a [`HttpConnection`] is one HTTP/2
//! request on the shared h2c connection ([`crate::conn`]); a unary call without a stream
//! goes out as a plain POST ([`crate::plain`]). See docs/protocol-http.md.

use crate::ID;
use crate::conn::{ClientConn, answer_message, status_error};
use crate::frame::{self, Decoder};
use crate::headers::{MICRO_ERROR, MICRO_STREAM};
use bytes::Bytes;
use futures::FutureExt;
use h2::{RecvStream, SendStream};
use http::Request;
use micro_core::transport::{Connection, Message, Stream, StreamIo, call_on_stream, stream_pair};
use micro_core::{Error, Result};
use std::fmt;
use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long the rest of a response body is read after its END (or RESET) frame, waiting for
/// the server's END_STREAM. The server sends it right after END; one that does not is
/// dropped (reset) after this long.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A client connection of the HTTP transport (cheap: it shares the h2c connection cached per
/// address in the [`crate::HttpTransport`]).
pub struct HttpConnection {
    conn: Arc<ClientConn>,
    plain: crate::plain::PlainClient,
}

impl HttpConnection {
    pub(crate) fn new(conn: Arc<ClientConn>, plain: crate::plain::PlainClient) -> Self {
        HttpConnection { conn, plain }
    }
}

impl fmt::Debug for HttpConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConnection")
            .field("remote", &self.conn.remote)
            .field("closed", &self.conn.is_closed())
            .finish()
    }
}

#[async_trait::async_trait]
impl Connection for HttpConnection {
    async fn open_stream(&self) -> Result<Stream> {
        if self.conn.is_closed() {
            return Err(Error::unavailable(
                ID,
                format!("connection to {} is closed", self.conn.remote),
            ));
        }
        let (stream, io) = stream_pair(self.conn.remote.clone());
        tokio::spawn(drive(self.conn.clone(), io));
        Ok(stream)
    }

    /// A plain POST over a pooled HTTP/1.1 keep-alive connection (see [`crate::plain`]),
    /// unless the frame asks for a stream.
    async fn call(&self, message: Message) -> micro_core::Result<Message> {
        if message.header(MICRO_STREAM).is_some() {
            return call_on_stream(self, message).await;
        }
        crate::plain::call(&self.plain, &self.conn, message).await
    }

    fn remote(&self) -> &str {
        &self.conn.remote
    }

    fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }
}

/// Runs one stream: waits for the user's first frame, then makes the HTTP/2 request.
async fn drive(conn: Arc<ClientConn>, io: StreamIo) {
    let StreamIo {
        incoming,
        mut outgoing,
    } = io;
    let first = tokio::select! {
        first = outgoing.recv() => first,
        _ = incoming.closed() => None,
    };
    // Ended (or dropped) before sending anything: no request at all.
    let Some(first) = first else { return };
    let mut rest = None;
    let result = if conn.plain_unary && first.header(MICRO_STREAM).is_none() {
        drop(outgoing);
        match unary(&conn, first).await {
            Ok(answer) => {
                let _ = incoming.send(Ok(answer)).await;
                Ok(())
            }
            Err(err) => Err(err),
        }
    } else {
        framed(&conn, first, outgoing, &incoming, &mut rest).await
    };
    if let Err(err) = result {
        let _ = incoming.send(Err(err)).await;
    }
    // The user's stream ends here (`None`), whatever is left to read of the HTTP/2 stream.
    drop(incoming);
    if let Some(body) = rest {
        drain(&conn, body).await;
    }
}

/// Reads the rest of a response body whose micro stream is over (its END or RESET frame
/// arrived), up to the server's END_STREAM, so that the HTTP/2 stream closes instead of being
/// reset. h2 resets a stream whose `RecvStream` is dropped before END_STREAM (RST_STREAM
/// CANCEL); under load the END_STREAM then often arrives after h2 forgot the stream, and h2
/// counts it as a protocol error of the server: past 1024 it closes the whole connection and
/// every call on it fails. Bounded: a server that sends more than `max_body_size` bytes after
/// END, or no END_STREAM within [`DRAIN_TIMEOUT`], is dropped (reset).
async fn drain(conn: &ClientConn, mut body: RecvStream) {
    let mut left = conn.max_body_size;
    let read = async {
        while let Some(chunk) = body.data().await {
            let Ok(chunk) = chunk else {
                // Reset by the server or a broken connection: nothing left to read.
                return true;
            };
            let _ = body.flow_control().release_capacity(chunk.len());
            match left.checked_sub(chunk.len()) {
                Some(rest) => left = rest,
                None => return false,
            }
        }
        if !body.is_end_stream() {
            let _ = body.trailers().await;
        }
        true
    };
    if !matches!(tokio::time::timeout(DRAIN_TIMEOUT, read).await, Ok(true)) {
        conn.logger.in_scope(|| {
            tracing::debug!(
                remote = %conn.remote,
                "http transport: no END_STREAM after the END frame; stopped reading the response"
            )
        });
    }
}

/// Opens the HTTP/2 request; `end` when the request has no body.
async fn start(
    conn: &ClientConn,
    request: Request<()>,
    end: bool,
) -> Result<(h2::client::ResponseFuture, SendStream<Bytes>)> {
    let mut send = conn
        .send
        .clone()
        .ready()
        .await
        .map_err(|e| conn.broken(&e))?;
    send.send_request(request, end).map_err(|e| conn.broken(&e))
}

/// Sends `data`, waiting for flow-control capacity, with END_STREAM on its last DATA frame
/// when `end`; `false` when the stream is gone.
async fn send_all(body: &mut SendStream<Bytes>, mut data: Bytes, end: bool) -> bool {
    if data.is_empty() {
        return !end || body.send_data(Bytes::new(), true).is_ok();
    }
    while !data.is_empty() {
        body.reserve_capacity(data.len());
        match poll_fn(|cx| body.poll_capacity(cx)).await {
            Some(Ok(0)) => continue,
            Some(Ok(n)) => {
                let chunk = data.split_to(n.min(data.len()));
                if body.send_data(chunk, end && data.is_empty()).is_err() {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

/// A streaming exchange: every frame, the first included, goes in the request body.
///
/// Once the response's micro stream is over (END or RESET frame, malformed frame), the
/// response body is left in `rest` to be read up to its END_STREAM (see [`drain`]). When the
/// user drops the receiver before that, the frames that already arrived are still looked at:
/// if the END frame is among them the stream is drained as well (micro's client drops its
/// stream after the one reply frame); otherwise the stream is cancelled at once (dropping
/// the body resets the HTTP/2 stream once the request side is done too).
async fn framed(
    conn: &ClientConn,
    first: Message,
    outgoing: mpsc::Receiver<Message>,
    incoming: &mpsc::Sender<Result<Message>>,
    rest: &mut Option<RecvStream>,
) -> Result<()> {
    let request = conn.request(&first, true);
    let first_bytes = frame::encode(0, first, conn.max_body_size)?;
    let (response, body) = start(conn, request, false).await?;
    tokio::spawn(write_frames(
        body,
        first_bytes,
        outgoing,
        conn.max_body_size,
        incoming.downgrade(),
    ));
    let response = tokio::select! {
        response = response => response.map_err(|e| conn.broken(&e))?,
        // The user dropped the receiver: the request still goes out, nobody reads replies.
        _ = incoming.closed() => return Ok(()),
    };
    let (parts, mut body) = response.into_parts();
    if parts.status != http::StatusCode::OK {
        let text = collect(conn, &mut body).await.unwrap_or_default();
        return Err(status_error(parts.status, &parts.headers, &text));
    }
    let mut decoder = Decoder::new(conn.max_body_size);
    // The user dropped the receiver: frames are decoded (to find END) but not delivered.
    let mut abandoned = false;
    loop {
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) if frame.is_reset() => {
                    *rest = Some(body);
                    return Err(frame
                        .message
                        .header(MICRO_ERROR)
                        .map(Error::parse)
                        .unwrap_or_else(|| Error::unavailable(ID, "stream reset by the server")));
                }
                Ok(Some(frame)) => {
                    let end = frame.is_end();
                    if !abandoned
                        && (!end || frame::has_message(&frame))
                        && incoming.send(Ok(frame.message)).await.is_err()
                    {
                        abandoned = true;
                    }
                    if end {
                        *rest = Some(body);
                        return Ok(());
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    *rest = Some(body);
                    return Err(Error::new(ID, 502, err.detail));
                }
            }
        }
        let next = if abandoned {
            // Only what already arrived; nothing more is waited for.
            match body.data().now_or_never() {
                Some(next) => next,
                None => return Ok(()),
            }
        } else {
            tokio::select! {
                next = body.data() => next,
                _ = incoming.closed() => {
                    abandoned = true;
                    continue;
                }
            }
        };
        match next {
            Some(Ok(chunk)) => {
                let _ = body.flow_control().release_capacity(chunk.len());
                decoder.push(&chunk);
            }
            Some(Err(err)) => return Err(conn.broken(&err)),
            None if decoder.has_partial() => {
                return Err(Error::new(
                    ID,
                    502,
                    "malformed frame: the response body ended inside a frame",
                ));
            }
            None => return Ok(()),
        }
    }
}

/// User frames → request body, then END (or RESET if a frame cannot be encoded) in the DATA
/// frame that ends the HTTP/2 stream, so the server never sees one without the other.
async fn write_frames(
    mut body: SendStream<Bytes>,
    first: Bytes,
    mut outgoing: mpsc::Receiver<Message>,
    max: usize,
    user: mpsc::WeakSender<Result<Message>>,
) {
    if !send_all(&mut body, first, false).await {
        return;
    }
    loop {
        let next = tokio::select! {
            next = outgoing.recv() => next,
            // The server reset the stream: stop, so the user's sends fail.
            _ = poll_fn(|cx| body.poll_reset(cx)) => return,
        };
        let Some(message) = next else {
            send_all(&mut body, frame::end(), true).await;
            return;
        };
        match frame::encode(0, message, max) {
            Ok(bytes) => {
                if !send_all(&mut body, bytes, false).await {
                    return;
                }
            }
            Err(err) => {
                send_all(&mut body, frame::reset(&err), true).await;
                if let Some(user) = user.upgrade() {
                    let _ = user.send(Err(err)).await;
                }
                return;
            }
        }
    }
}

/// A plain POST: the first frame is the whole request; the response is one frame.
async fn unary(conn: &ClientConn, first: Message) -> Result<Message> {
    let empty = first.body.is_empty();
    let (response, mut body) = start(conn, conn.request(&first, false), empty).await?;
    if !empty && !send_all(&mut body, first.body, true).await {
        return Err(Error::unavailable(
            ID,
            format!("connection to {}: request not sent", conn.remote),
        ));
    }
    let response = response.await.map_err(|e| conn.broken(&e))?;
    let (parts, mut body) = response.into_parts();
    let payload = collect(conn, &mut body).await?;
    answer_message(parts.status, &parts.headers, payload)
}

/// A whole response body, up to the size limit.
async fn collect(conn: &ClientConn, body: &mut RecvStream) -> Result<Bytes> {
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|e| conn.broken(&e))?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if out.len() + chunk.len() > conn.max_body_size {
            return Err(crate::body::too_large(ID, "response", conn.max_body_size));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}
