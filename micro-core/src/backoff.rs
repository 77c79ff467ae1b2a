//! The pace of a plugin's background loop that keeps talking to a backend which may go away
//! (a consumer pulling events, a subscriber reading a queue): wait longer after each failure
//! in a row, from [`Backoff::MIN`] doubling up to [`Backoff::MAX`], and say whether a failure
//! starts a run (log it at WARN once, the rest at DEBUG) and whether a success ends one.

use std::time::Duration;

/// Failures in a row and the next wait. Starts with no failure.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    failing: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    /// The first wait after a failure.
    pub const MIN: Duration = Duration::from_millis(100);
    /// The longest wait.
    pub const MAX: Duration = Duration::from_secs(5);

    /// No failure yet.
    pub fn new() -> Self {
        Backoff {
            next: Self::MIN,
            failing: false,
        }
    }

    /// Records a failure: whether it is the first of a run, and how long to wait now.
    pub fn failed(&mut self) -> (bool, Duration) {
        let first = !self.failing;
        self.failing = true;
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        (first, wait)
    }

    /// Records a success: whether it ends a run of failures.
    pub fn succeeded(&mut self) -> bool {
        self.next = Self::MIN;
        std::mem::take(&mut self.failing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_max_and_a_success_starts_over() {
        let mut backoff = Backoff::new();
        assert!(!backoff.succeeded(), "no run of failures to end");
        assert_eq!(backoff.failed(), (true, Backoff::MIN));
        assert_eq!(backoff.failed(), (false, Backoff::MIN * 2));
        for _ in 0..10 {
            backoff.failed();
        }
        assert_eq!(backoff.failed(), (false, Backoff::MAX));
        assert!(backoff.succeeded(), "the success ends the run");
        assert_eq!(backoff.failed(), (true, Backoff::MIN));
    }
}
