//! Tells a socket reader that keeps falling behind a fast stream from one that is merely idle,
//! so that its worker can nap and poll rather than block (see `thread_pool::NAP`).

use std::time::{Duration, Instant};

use crate::thread_pool::Progress;

/// Counts the datagrams a reader took from its socket between two empty reads, with
/// hysteresis: a stream turns fast when one such stretch reaches `enter`, and stays fast while
/// every stretch reaches `stay` and follows the previous one within `gap`.
#[derive(Debug)]
pub struct Backlog {
    enter: usize,
    stay: usize,
    gap: Duration,
    since_empty: usize,
    fast: bool,
    last_empty: Option<Instant>,
}

impl Backlog {
    pub const fn new(enter: usize, stay: usize, gap: Duration) -> Backlog {
        Backlog {
            enter,
            stay,
            gap,
            since_empty: 0,
            fast: false,
            last_empty: None,
        }
    }

    /// Records `n` datagrams read.
    pub fn read(&mut self, n: usize) {
        self.since_empty = self.since_empty.saturating_add(n);
    }

    /// The socket is empty: `Drained` while the stream is fast, else `Idle`. Starts counting
    /// afresh.
    pub fn empty(&mut self) -> Progress {
        self.empty_at(Instant::now())
    }

    fn empty_at(&mut self, now: Instant) -> Progress {
        let recent = self
            .last_empty
            .is_some_and(|last| now.saturating_duration_since(last) <= self.gap);
        let needed = if self.fast && recent {
            self.stay
        } else {
            self.enter
        };
        self.fast = self.since_empty >= needed;
        self.since_empty = 0;
        self.last_empty = Some(now);
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

    const GAP: Duration = Duration::from_millis(1);

    /// Reads `n` then finds the socket empty, `after` the previous empty read.
    fn stretch(backlog: &mut Backlog, clock: &mut Instant, after: Duration, n: usize) -> Progress {
        *clock += after;
        backlog.read(n);
        backlog.empty_at(*clock)
    }

    #[test]
    fn fast_from_a_large_stretch_while_stretches_stay_large_and_close() {
        let mut backlog = Backlog::new(64, 8, GAP);
        let mut t = Instant::now();
        let soon = Duration::from_micros(100);
        assert_eq!(stretch(&mut backlog, &mut t, soon, 0), Progress::Idle);
        assert_eq!(stretch(&mut backlog, &mut t, soon, 63), Progress::Idle);
        // One stretch of 64 (over several reads) makes it fast ...
        backlog.read(60);
        assert_eq!(stretch(&mut backlog, &mut t, soon, 4), Progress::Drained);
        // ... and stretches of 8 keep it so, counted afresh after each empty read ...
        assert_eq!(stretch(&mut backlog, &mut t, soon, 8), Progress::Drained);
        assert_eq!(stretch(&mut backlog, &mut t, GAP, 8), Progress::Drained);
        assert_eq!(stretch(&mut backlog, &mut t, soon, 7), Progress::Idle);
        // ... and once slow, 8 is not enough again.
        assert_eq!(stretch(&mut backlog, &mut t, soon, 8), Progress::Idle);
        backlog.read(usize::MAX);
        assert_eq!(stretch(&mut backlog, &mut t, soon, 1), Progress::Drained);
        assert_eq!(stretch(&mut backlog, &mut t, soon, 0), Progress::Idle);
    }

    #[test]
    fn a_pause_longer_than_the_gap_ends_a_fast_stream() {
        let mut backlog = Backlog::new(64, 8, GAP);
        let mut t = Instant::now();
        assert_eq!(stretch(&mut backlog, &mut t, GAP, 64), Progress::Drained);
        // A burst of 63 after a pause is a burst, not a fast stream ...
        let pause = GAP + Duration::from_micros(1);
        assert_eq!(stretch(&mut backlog, &mut t, pause, 63), Progress::Idle);
        // ... while a full backlog after one still is.
        assert_eq!(stretch(&mut backlog, &mut t, pause, 64), Progress::Drained);
    }
}
