//! Software rate limiting for send streams (sans-IO, plus one precise sleep helper).
//!
//! Two virtual clocks track when the bytes sent so far are "due":
//! - the *rate clock* advances by `bytes / rate` per packet and enforces the long-term rate;
//! - the *burst clock* advances by `bytes / (rate * burst_rate_ratio)` and is re-anchored to
//!   the real time at the start of every burst, so that a stream behind schedule catches up
//!   no faster than the burst rate.
//!
//! Packets go out in bursts of up to `burst_size` bytes without waiting; after each burst
//! the next one may start at the later of the two clocks. Counted bytes are whole packets
//! (header, item pointers and payload), as spead2 counts them. When the stream runs dry,
//! `restart` moves both clocks up to the present, so idle time is never "caught up" (spead2
//! 4.5.1 behaves the same: a burst after an idle second is sent at the nominal rate).

use std::time::{Duration, Instant};

/// Sleeps shorter than this are spun instead: the kernel's wake-up latency is tens of µs,
/// which at 5 Gb/s is a sizeable part of a 64 KiB burst interval.
const SPIN_MARGIN: Duration = Duration::from_micros(50);

pub struct RateLimiter {
    epoch: Instant,
    burst_size: usize,
    burst_rate_ratio: f64,
    /// Seconds after `epoch` at which everything sent so far is due at the nominal rate.
    rate_time: f64,
    /// Seconds after `epoch` at which everything sent in this burst is due at the burst rate.
    burst_time: f64,
    /// Rate-limited bytes counted in the current burst.
    burst_bytes: usize,
}

impl RateLimiter {
    pub fn new(burst_size: usize, burst_rate_ratio: f64, now: Instant) -> Self {
        RateLimiter {
            epoch: now,
            burst_size,
            burst_rate_ratio,
            rate_time: 0.0,
            burst_time: 0.0,
            burst_bytes: 0,
        }
    }

    fn seconds(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.epoch).as_secs_f64()
    }

    fn instant(&self, seconds: f64) -> Instant {
        self.epoch + Duration::from_secs_f64(seconds.max(0.0))
    }

    /// Called when work arrives after the stream was idle: time spent idle is not owed.
    pub fn restart(&mut self, now: Instant) {
        let now = self.seconds(now);
        self.rate_time = self.rate_time.max(now);
        self.burst_time = self.burst_time.max(now);
    }

    /// Counts a packet of `bytes` sent at `rate` bytes/s (0 = unlimited, not counted).
    /// Returns true when the current burst is full and `end_burst` should be called.
    pub fn add(&mut self, bytes: usize, rate: f64) -> bool {
        if rate > 0.0 && rate.is_finite() {
            let b = bytes as f64;
            self.rate_time += b / rate;
            self.burst_time += b / (rate * self.burst_rate_ratio);
            self.burst_bytes += bytes;
        }
        self.burst_full()
    }

    /// True if the bytes counted since the last `end_burst` fill a burst.
    pub fn burst_full(&self) -> bool {
        self.burst_bytes > 0 && self.burst_bytes >= self.burst_size
    }

    /// Closes the current burst (whose packets have been written by `now`). Returns when
    /// the next burst may start, or None if it may start at once.
    pub fn end_burst(&mut self, now: Instant) -> Option<Instant> {
        self.burst_bytes = 0;
        let now = self.seconds(now);
        let start = self.rate_time.max(self.burst_time);
        // The next burst starts no earlier than this; when behind schedule that is now,
        // which re-anchors the burst clock and caps the catch-up at the burst rate.
        self.burst_time = start.max(now);
        (start > now).then(|| self.instant(start))
    }
}

/// Sleeps until `deadline` precisely: the OS sleeps for most of the interval and the final
/// `SPIN_MARGIN` is spun, since oversleeping shows directly in the achieved rate.
pub fn sleep_until(deadline: Instant) {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let remaining = deadline - now;
        if remaining > SPIN_MARGIN {
            std::thread::sleep(remaining - SPIN_MARGIN);
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Reduces this thread's timer slack (default 50 µs) so that `sleep_until` wakes close to
/// the requested time and spins less.
pub fn reduce_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer argument and no pointers; it only changes
    // the calling thread's timer slack.
    let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
    if rc != 0 {
        log::debug!(
            "could not reduce timer slack: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(t0: Instant, micros: u64) -> Instant {
        t0 + Duration::from_micros(micros)
    }

    /// The wait in µs after the burst, relative to t0.
    fn wait_us(t0: Instant, deadline: Option<Instant>) -> Option<u128> {
        deadline.map(|d| ((d - t0).as_nanos() + 500) / 1000)
    }

    #[test]
    fn packets_within_a_burst_do_not_wait() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(3000, 1.05, t0);
        assert!(!r.add(1000, 1e6));
        assert!(!r.add(1000, 1e6));
        assert!(r.add(1000, 1e6));
        // 3000 bytes at 1 MB/s are due after 3 ms.
        assert_eq!(wait_us(t0, r.end_burst(us(t0, 10))), Some(3000));
    }

    #[test]
    fn zero_burst_size_waits_after_every_packet() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(0, 1.05, t0);
        assert!(r.add(1472, 1e6));
        assert_eq!(wait_us(t0, r.end_burst(t0)), Some(1472));
        // Woke 100 µs late: the next packet is still due on the nominal schedule.
        assert!(r.add(1472, 1e6));
        assert_eq!(wait_us(t0, r.end_burst(us(t0, 1572))), Some(2944));
    }

    #[test]
    fn unlimited_packets_are_not_counted() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(0, 1.05, t0);
        assert!(!r.add(1_000_000, 0.0));
        assert!(!r.burst_full());
        assert_eq!(r.end_burst(t0), None);
    }

    #[test]
    fn catch_up_is_capped_at_the_burst_rate() {
        let t0 = Instant::now();
        // Ratio 2: behind schedule, bursts of 1000 bytes at 1 MB/s may go every 500 µs.
        let mut r = RateLimiter::new(1000, 2.0, t0);
        assert!(r.add(1000, 1e6));
        // The write took 5 ms: 4 ms behind the nominal schedule.
        assert_eq!(r.end_burst(us(t0, 5000)), None);
        // Each burst then waits until the returned deadline exactly. The burst clock
        // (anchored at 5 ms, +500 µs per burst) governs until the nominal schedule (+1 ms
        // per burst) overtakes it at the 10th burst.
        let mut now = us(t0, 5000);
        let mut deadlines = Vec::new();
        for _ in 0..9 {
            assert!(r.add(1000, 1e6));
            let deadline = r.end_burst(now).expect("a wait");
            deadlines.push(wait_us(t0, Some(deadline)).unwrap());
            now = deadline;
        }
        assert_eq!(
            deadlines,
            [5500, 6000, 6500, 7000, 7500, 8000, 8500, 9000, 10000]
        );
    }

    #[test]
    fn idle_time_is_not_caught_up() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(1000, 2.0, t0);
        r.add(1000, 1e6);
        assert_eq!(wait_us(t0, r.end_burst(t0)), Some(1000));
        // Idle for a second, then a new heap arrives.
        r.restart(us(t0, 1_000_000));
        r.add(1000, 1e6);
        assert_eq!(wait_us(t0, r.end_burst(us(t0, 1_000_000))), Some(1_001_000));
    }

    #[test]
    fn restart_keeps_debt_from_recent_bytes() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(100_000, 1.05, t0);
        r.add(50_000, 1e6);
        // Queue ran dry mid-burst; new work 10 ms later still owes the first 50 ms.
        r.restart(us(t0, 10_000));
        assert!(r.add(50_000, 1e6));
        assert_eq!(wait_us(t0, r.end_burst(us(t0, 10_000))), Some(100_000));
    }

    #[test]
    fn per_packet_rates_mix() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(0, 1.05, t0);
        r.add(1000, 1e6);
        assert_eq!(wait_us(t0, r.end_burst(t0)), Some(1000));
        r.add(1000, 1e5);
        assert_eq!(wait_us(t0, r.end_burst(us(t0, 1000))), Some(11_000));
    }

    #[test]
    fn sleep_until_never_returns_early() {
        let deadline = Instant::now() + Duration::from_micros(300);
        sleep_until(deadline);
        assert!(Instant::now() >= deadline);
    }
}
