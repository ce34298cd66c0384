//! Tells a socket reader that keeps falling behind a fast stream from one that is merely idle,
//! so that the worker can nap and poll rather than block (see `thread_pool::NAP`).

use crate::thread_pool::Progress;

/// Counts what a reader took from its socket between two empty reads, with hysteresis: a
/// stream turns "fast" when one such stretch reaches `enter` units (datagrams, bytes) and
/// stays fast while every stretch reaches `stay`.
#[derive(Debug)]
pub struct Backlog {
    since_empty: usize,
    enter: usize,
    stay: usize,
    fast: bool,
}

impl Backlog {
    pub const fn new(enter: usize, stay: usize) -> Backlog {
        Backlog {
            since_empty: 0,
            enter,
            stay,
            fast: false,
        }
    }

    /// Records `n` units read.
    pub fn read(&mut self, n: usize) {
        self.since_empty = self.since_empty.saturating_add(n);
    }

    /// The socket is empty: `Drained` while the stream is fast, else `Idle`. Starts counting
    /// afresh.
    pub fn empty(&mut self) -> Progress {
        let needed = if self.fast { self.stay } else { self.enter };
        self.fast = self.since_empty >= needed;
        self.since_empty = 0;
        if self.fast {
            Progress::Drained
        } else {
            Progress::Idle
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_from_a_large_stretch_while_stretches_stay_large() {
        let mut backlog = Backlog::new(64, 8);
        assert_eq!(backlog.empty(), Progress::Idle);
        backlog.read(63);
        assert_eq!(backlog.empty(), Progress::Idle);
        // One stretch of 64 (over several reads) makes it fast ...
        backlog.read(60);
        backlog.read(4);
        assert_eq!(backlog.empty(), Progress::Drained);
        // ... and stretches of 8 keep it so, counted afresh after each empty read.
        backlog.read(8);
        assert_eq!(backlog.empty(), Progress::Drained);
        backlog.read(7);
        assert_eq!(backlog.empty(), Progress::Idle);
        // Once slow, 8 is not enough again.
        backlog.read(8);
        assert_eq!(backlog.empty(), Progress::Idle);
        backlog.read(usize::MAX);
        backlog.read(1);
        assert_eq!(backlog.empty(), Progress::Drained);
        assert_eq!(backlog.empty(), Progress::Idle);
    }
}
