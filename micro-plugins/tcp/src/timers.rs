//! The reader's time limits behind one timer: the idle close (client `pool_ttl`, server
//! `idle_timeout`), the partial-frame limit (`read_timeout`) and each new stream's wait for
//! its next frame (`first_message_timeout`).
//!
//! The timer is lazy: changes that only push a deadline later (a stream ending again, bytes
//! arriving) record a timestamp without touching it; when it fires, the real deadlines are
//! recomputed and it is set to the earliest. It is only reset early when a deadline appears
//! before the one it is set to.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Closing a connection after `ttl` without anything open.
pub(crate) struct Idle {
    ttl: Duration,
    /// When the connection last became unused; `None` while streams are open.
    since: Option<Instant>,
}

/// What is overdue when the timer fires.
#[derive(Default)]
pub(crate) struct Overdue {
    /// The connection was unused for its idle time.
    pub idle: bool,
    /// A frame begun was not completed within `read_timeout` (its value).
    pub partial: Option<Duration>,
    /// Streams whose wait for their next frame is over (check that they still wait).
    pub streams: Vec<u32>,
}

/// The reader's deadlines and its one timer.
pub(crate) struct Timers {
    timer: Pin<Box<Sleep>>,
    /// When the timer is set to fire; `None`: not set.
    armed: Option<Instant>,
    idle: Option<Idle>,
    read: Option<Duration>,
    /// When the frame being read (its first bytes, or the last progress) began.
    partial_since: Option<Instant>,
    first: Option<Duration>,
    /// Streams waiting for their next frame, by deadline.
    waiting: VecDeque<(Instant, u32)>,
}

impl Timers {
    /// Timers for a new connection (idle from now).
    pub fn new(idle: Option<Duration>, read: Option<Duration>, first: Option<Duration>) -> Self {
        let now = Instant::now();
        let mut timers = Timers {
            timer: Box::pin(tokio::time::sleep_until(now)),
            armed: None,
            idle: idle.map(|ttl| Idle {
                ttl,
                since: Some(now),
            }),
            read,
            partial_since: None,
            first,
            waiting: VecDeque::new(),
        };
        if let Some(ttl) = idle {
            timers.arm(now + ttl);
        }
        timers
    }

    /// Sets the timer to `at` unless it fires earlier already.
    fn arm(&mut self, at: Instant) {
        if self.armed.is_none_or(|armed| at < armed) {
            self.timer.as_mut().reset(at);
            self.armed = Some(at);
        }
    }

    /// Waits for the timer; forever when it is not set.
    pub async fn wait(&mut self) {
        if self.armed.is_some() {
            self.timer.as_mut().await;
        } else {
            std::future::pending::<()>().await;
        }
    }

    /// Something is open now (a stream): no idle close.
    pub fn busy(&mut self) {
        if let Some(idle) = &mut self.idle {
            idle.since = None;
        }
    }

    /// Nothing is open any more: the idle time starts.
    pub fn unused(&mut self) {
        let Some(idle) = &mut self.idle else { return };
        let now = Instant::now();
        let was = idle.since.replace(now);
        let ttl = idle.ttl;
        if was.is_none() {
            self.arm(now + ttl);
        }
    }

    /// Bytes or an answer arrived: an unused connection's idle time starts again.
    pub fn touched(&mut self) {
        if let Some(Idle {
            since: Some(since), ..
        }) = &mut self.idle
        {
            *since = Instant::now();
        }
    }

    /// After decoding: `pending` = part of a frame is buffered; `progressed` = frames were
    /// decoded (the rest belongs to a newer frame).
    pub fn partial(&mut self, pending: bool, progressed: bool) {
        let Some(limit) = self.read else { return };
        if !pending {
            self.partial_since = None;
        } else if progressed || self.partial_since.is_none() {
            let now = Instant::now();
            self.partial_since = Some(now);
            self.arm(now + limit);
        }
    }

    /// Stream `id` was opened by the peer and waits for its next frame; `stale` tells which
    /// older entries no longer wait (they are dropped from the front of the queue).
    pub fn opened(&mut self, id: u32, stale: impl Fn(u32) -> bool) {
        let Some(limit) = self.first else { return };
        while self.waiting.front().is_some_and(|&(_, old)| stale(old)) {
            self.waiting.pop_front();
        }
        let at = Instant::now() + limit;
        self.waiting.push_back((at, id));
        self.arm(at);
    }

    /// Whether streams get a time limit for their next frame.
    pub fn limits_first(&self) -> bool {
        self.first.is_some()
    }

    /// The timer fired: what is overdue (`busy` = calls in flight keep the connection used);
    /// sets the timer to the next deadline.
    pub fn fired(&mut self, busy: bool) -> Overdue {
        let now = Instant::now();
        self.armed = None;
        let mut overdue = Overdue::default();
        let mut next: Option<Instant> = None;
        let mut consider = |at: Instant| next = Some(next.map_or(at, |n| n.min(at)));
        if let Some(idle) = &mut self.idle
            && let Some(since) = idle.since
        {
            if busy {
                idle.since = Some(now);
                consider(now + idle.ttl);
            } else if now.duration_since(since) >= idle.ttl {
                overdue.idle = true;
            } else {
                consider(since + idle.ttl);
            }
        }
        if let (Some(limit), Some(since)) = (self.read, self.partial_since) {
            if now.duration_since(since) >= limit {
                overdue.partial = Some(limit);
            } else {
                consider(since + limit);
            }
        }
        while let Some(&(at, id)) = self.waiting.front() {
            if at > now {
                consider(at);
                break;
            }
            overdue.streams.push(id);
            self.waiting.pop_front();
        }
        if let Some(at) = next {
            self.arm(at);
        }
        overdue
    }
}
