//! What a server connection is allowed (streams, unary requests in flight, time limits), and
//! the rate limit of protocol-error warnings.

use crate::options::TcpTransportOptions;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Limits and time limits of every connection of a transport (server side, except `read`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Streams open at once per connection.
    pub max_streams: usize,
    /// Unary requests handled or answered but not yet written, per connection.
    pub max_unary: usize,
    /// Time for a stream's next frame after the one that opened it.
    pub first_message: Option<Duration>,
    /// Close a server connection after this long without anything open or received.
    pub idle: Option<Duration>,
    /// Time for a frame, once begun, to be complete (both sides).
    pub read: Option<Duration>,
}

/// `None` for zero ("never").
fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

impl Limits {
    /// The limits of `options`; a count of 0 (rejected by configuration) counts as 1.
    pub fn new(options: &TcpTransportOptions) -> Self {
        Limits {
            max_streams: options.max_streams.max(1),
            max_unary: options.max_unary.max(1),
            first_message: nonzero(options.first_message_timeout),
            idle: nonzero(options.idle_timeout),
            read: nonzero(options.read_timeout),
        }
    }
}

/// Protocol-error WARN lines logged per second and [`WarnLimit`]; the others are counted.
pub(crate) const WARNS_PER_SECOND: u32 = 5;

/// Rate limit of protocol-error warnings, one per listener (and one for a transport's
/// dialled connections): a peer spamming bad connections must not flood the log. At most
/// [`WARNS_PER_SECOND`] lines a second; the next line logged says how many were not.
#[derive(Debug, Default)]
pub(crate) struct WarnLimit(Mutex<WarnState>);

#[derive(Debug, Default)]
struct WarnState {
    /// Start of the current one-second window.
    window: Option<Instant>,
    /// Lines logged in it.
    logged: u32,
    /// Lines not logged since the last one that was.
    suppressed: u64,
}

impl WarnLimit {
    /// `Some(n)`: log this one, saying that `n` were not logged before it; `None`: don't.
    pub fn admit(&self) -> Option<u64> {
        let now = Instant::now();
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if state
            .window
            .is_none_or(|start| now.duration_since(start) >= Duration::from_secs(1))
        {
            state.window = Some(now);
            state.logged = 0;
        }
        if state.logged < WARNS_PER_SECOND {
            state.logged += 1;
            Some(std::mem::take(&mut state.suppressed))
        } else {
            state.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_a_few_per_second_and_counts_the_rest() {
        let limit = WarnLimit::default();
        for _ in 0..WARNS_PER_SECOND {
            assert_eq!(limit.admit(), Some(0));
        }
        for _ in 0..10 {
            assert_eq!(limit.admit(), None);
        }
        // A new window: the first line reports what was skipped.
        limit.0.lock().unwrap().window = Instant::now().checked_sub(Duration::from_secs(2));
        assert_eq!(limit.admit(), Some(10));
        assert_eq!(limit.admit(), Some(0));
    }

    #[test]
    fn zero_counts_become_one_and_zero_durations_never() {
        let limits = Limits::new(&TcpTransportOptions {
            max_streams: 0,
            idle_timeout: Duration::ZERO,
            ..TcpTransportOptions::default()
        });
        assert_eq!(limits.max_streams, 1);
        assert_eq!(limits.idle, None);
        assert_eq!(limits.read, Some(Duration::from_secs(30)));
    }
}
