//! Server-side connection time limits: `read_timeout` for a request head begun (HTTP/1.1)
//! and `idle_timeout` for a connection with no request (both protocols). The socket is
//! wrapped in [`Watched`], which records when bytes arrive; requests hold an [`InFlight`]
//! guard until their response is written; [`Activity::expired`] says when a limit passed.

use hyper::body::{Body, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The time limits of a server's connections; zero = never.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// A request head begun must be complete within this; a request body (or a stream
    /// frame) begun, too.
    pub read: Duration,
    /// A connection with no request in flight and no bytes received for this long is closed.
    pub idle: Duration,
}

impl Timeouts {
    /// The timeouts of the transport's options.
    pub(crate) fn of(options: &crate::HttpTransportOptions) -> Self {
        Timeouts {
            read: options.read_timeout,
            idle: options.idle_timeout,
        }
    }
}

impl Default for Timeouts {
    /// The `transport:` defaults (`read_timeout`, `idle_timeout`), one place for them.
    fn default() -> Self {
        Timeouts::of(&crate::HttpTransportOptions::default())
    }
}

/// `Some(limit)` unless `limit` is zero (never).
pub(crate) fn limit(limit: Duration) -> Option<Duration> {
    (!limit.is_zero()).then_some(limit)
}

/// Why a connection is to be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expired {
    /// A request head begun was not complete within `read_timeout`.
    Head,
    /// No request and no bytes for `idle_timeout`.
    Idle,
}

struct State {
    in_flight: usize,
    /// Bytes last arrived, or the last response was done.
    last: Instant,
    /// When the first bytes of a request head arrived, while no request was in flight.
    head_since: Option<Instant>,
    /// The connection speaks HTTP/2 (its first bytes were the h2 preface): heads are frames
    /// that h2 reads itself, so no head timer.
    h2: Option<bool>,
    /// The first read was too short to tell.
    last_was_short: bool,
}

/// What one connection's socket wrapper, requests and watchdog share.
pub(crate) struct Activity {
    state: Mutex<State>,
    changed: Notify,
    timeouts: Timeouts,
}

impl Activity {
    pub(crate) fn new(timeouts: Timeouts) -> Arc<Self> {
        Arc::new(Activity {
            state: Mutex::new(State {
                in_flight: 0,
                last: Instant::now(),
                head_since: None,
                h2: None,
                last_was_short: false,
            }),
            changed: Notify::new(),
            timeouts,
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request head was received: the connection is busy until the guard is dropped.
    pub(crate) fn request(self: &Arc<Self>) -> InFlight {
        let mut state = self.state();
        state.in_flight += 1;
        state.head_since = None;
        InFlight(self.clone())
    }

    fn received(&self, bytes: &[u8]) {
        let now = Instant::now();
        let mut state = self.state();
        state.last = now;
        if state.h2.is_none() {
            // Undecided while the first bytes could still be the start of the preface.
            // (a later read after such a short one is taken for the rest of it).
            let prefix = &b"PRI "[..bytes.len().min(4)];
            state.h2 = if state.last_was_short {
                Some(true)
            } else if !bytes.starts_with(prefix) {
                Some(false)
            } else if bytes.len() >= 4 {
                Some(true)
            } else {
                None
            };
            state.last_was_short = state.h2.is_none();
        }
        if state.in_flight == 0 && state.head_since.is_none() && state.h2 == Some(false) {
            state.head_since = Some(now);
            drop(state);
            // The watchdog may be sleeping towards a later (idle) deadline.
            self.changed.notify_one();
        }
    }

    /// Waits until a limit passed and says which; never returns when both are zero.
    pub(crate) async fn expired(&self) -> Expired {
        let read = limit(self.timeouts.read);
        let idle = limit(self.timeouts.idle);
        loop {
            let now = Instant::now();
            let next = {
                let state = self.state();
                let head = state.head_since.zip(read).map(|(since, read)| since + read);
                if head.is_some_and(|at| at <= now) {
                    return Expired::Head;
                }
                let quiet = (state.in_flight == 0)
                    .then_some(())
                    .and(idle)
                    .map(|idle| state.last + idle);
                if quiet.is_some_and(|at| at <= now) {
                    return Expired::Idle;
                }
                // While requests are in flight, look again one idle period later.
                let busy = idle.filter(|_| state.in_flight > 0).map(|idle| now + idle);
                [head, quiet, busy].into_iter().flatten().min()
            };
            match next {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = self.changed.notified() => {}
                    }
                }
                None => self.changed.notified().await,
            }
        }
    }
}

/// A request in flight; dropping it (when its response was written) ends it.
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            state.last = Instant::now();
            drop(state);
            self.0.changed.notify_one();
        }
    }
}

/// A response body that keeps its request in flight until hyper is done with it.
pub(crate) struct Tracked<B> {
    pub body: B,
    pub _request: InFlight,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A socket that reports the bytes it receives to its connection's [`Activity`].
pub(crate) struct Watched<S> {
    socket: S,
    activity: Arc<Activity>,
}

impl<S> Watched<S> {
    pub(crate) fn new(socket: S, activity: Arc<Activity>) -> Self {
        Watched { socket, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.socket).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.received(&buf.filled()[before..]);
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().socket).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().socket).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_shutdown(cx)
    }
}
