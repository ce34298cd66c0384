//! A bounded queue from worker threads to the consumer, with a readiness fd for event loops.
//!
//! The fd is an eventfd in semaphore mode whose count equals the number of queued items, so a
//! level-triggered poll (asyncio's `add_reader`) sees it readable exactly while `get_nowait`
//! would succeed. Once stopped, it is made permanently readable so waiters wake to see `Stopped`.
//! The count is kept only from the first call to `fd`: a consumer that never polls (a plain
//! iterator) then pays no eventfd syscalls, two per item otherwise.
//!
//! A producer may also push *quietly* and wake consumers later, once for several items
//! (`try_push_quiet`, then `wake`). Waking a sleeping thread on another CPU costs the producer
//! more than a small heap's worth of work (an inter-processor interrupt, dearer still in a VM),
//! so a worker that outpaces its consumer wakes it once per few heaps instead of once per heap.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Condvar, Mutex, MutexGuard};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PopError {
    /// Nothing queued right now.
    Empty,
    /// Stopped and drained.
    Stopped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushError {
    Full,
    Stopped,
}

struct State<T> {
    items: VecDeque<T>,
    stopped: bool,
    /// Someone asked for the fd, so its count must track `items`.
    fd_active: bool,
    /// Threads blocked in `pop`/`push`: a condvar notify is a syscall, so skip it when no one
    /// waits (the common case at high heap rates).
    consumers_waiting: usize,
    producers_waiting: usize,
    /// Items pushed quietly whose consumers have not been woken yet.
    unnotified: usize,
    /// Items pushed quietly and not yet added to the eventfd count (while `fd_active`):
    /// the count plus this always equals `items.len()` until stopped.
    unsignalled: u64,
}

pub struct Ringbuffer<T> {
    capacity: usize,
    state: Mutex<State<T>>,
    data_available: Condvar,
    space_available: Condvar,
    ready_fd: OwnedFd,
}

/// Which consumers a push or `wake` must notify, decided under the lock, done after it.
enum Wake {
    Nobody,
    One,
    All,
}

/// What `pop_locked` found; `Empty` hands the lock back so the caller can wait on it.
enum Popped<'a, T> {
    Item(T),
    Stopped,
    Empty(MutexGuard<'a, State<T>>),
}

/// Count written at stop: keeps the semaphore readable however many waiters decrement it.
const STOPPED_COUNT: u64 = 1 << 48;

impl<T> Ringbuffer<T> {
    pub fn new(capacity: usize) -> io::Result<Self> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a new fd we own.
        let fd = unsafe {
            libc::eventfd(
                0,
                libc::EFD_CLOEXEC | libc::EFD_NONBLOCK | libc::EFD_SEMAPHORE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just created above and is owned by nothing else.
        let ready_fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Ringbuffer {
            capacity,
            state: Mutex::new(State {
                items: VecDeque::with_capacity(capacity),
                stopped: false,
                fd_active: false,
                consumers_waiting: 0,
                producers_waiting: 0,
                unnotified: 0,
                unsignalled: 0,
            }),
            data_available: Condvar::new(),
            space_available: Condvar::new(),
            ready_fd,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn size(&self) -> usize {
        self.lock().items.len()
    }

    pub fn is_stopped(&self) -> bool {
        self.lock().stopped
    }

    /// The readiness fd; from now on its count tracks the queue.
    pub fn fd(&self) -> RawFd {
        let mut state = self.lock();
        if !state.fd_active {
            state.fd_active = true;
            state.unsignalled = 0;
            let count = if state.stopped {
                STOPPED_COUNT
            } else {
                state.items.len() as u64
            };
            if count > 0 {
                self.signal(count);
            }
        }
        self.ready_fd.as_raw_fd()
    }

    fn signal(&self, count: u64) {
        let bytes = count.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live local array to our own eventfd.
        let _ = unsafe { libc::write(self.ready_fd.as_raw_fd(), bytes.as_ptr().cast(), 8) };
    }

    fn consume_signal(&self) {
        let mut bytes = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live local array from our own eventfd.
        let _ = unsafe { libc::read(self.ready_fd.as_raw_fd(), bytes.as_mut_ptr().cast(), 8) };
    }

    /// Queues `item` and settles the eventfd; returns whom to wake once the lock is released
    /// (a thread woken while we hold it would only block again on the mutex).
    fn push_locked(&self, state: &mut State<T>, item: T) -> Wake {
        Self::push_quiet_locked(state, item);
        self.wake_locked(state)
    }

    fn push_quiet_locked(state: &mut State<T>, item: T) {
        state.items.push_back(item);
        state.unnotified += 1;
        state.unsignalled += u64::from(state.fd_active);
    }

    /// Counts every item pushed so far on the eventfd and says which consumers to wake.
    fn wake_locked(&self, state: &mut State<T>) -> Wake {
        if state.unsignalled > 0 {
            self.signal(std::mem::take(&mut state.unsignalled));
        }
        let unnotified = std::mem::take(&mut state.unnotified);
        match (state.consumers_waiting, unnotified) {
            (0, _) | (_, 0) => Wake::Nobody,
            (1, _) | (_, 1) => Wake::One,
            _ => Wake::All,
        }
    }

    fn wake_consumers(&self, wake: Wake) {
        match wake {
            Wake::Nobody => {}
            Wake::One => self.data_available.notify_one(),
            Wake::All => self.data_available.notify_all(),
        }
    }

    pub fn try_push(&self, item: T) -> Result<(), (PushError, T)> {
        let mut state = match self.lock_for_push() {
            Ok(state) => state,
            Err(e) => return Err((e, item)),
        };
        let wake = self.push_locked(&mut state, item);
        drop(state);
        self.wake_consumers(wake);
        Ok(())
    }

    /// Like `try_push`, but consumers only learn of the item at the next `wake` (or at the
    /// next push that wakes, or when a producer blocks on a full ring).
    pub fn try_push_quiet(&self, item: T) -> Result<(), (PushError, T)> {
        let mut state = match self.lock_for_push() {
            Ok(state) => state,
            Err(e) => return Err((e, item)),
        };
        Self::push_quiet_locked(&mut state, item);
        Ok(())
    }

    /// The lock, if an item can be pushed now.
    fn lock_for_push(&self) -> Result<MutexGuard<'_, State<T>>, PushError> {
        let state = self.lock();
        if state.stopped {
            Err(PushError::Stopped)
        } else if state.items.len() >= self.capacity {
            Err(PushError::Full)
        } else {
            Ok(state)
        }
    }

    /// Wakes consumers for items pushed quietly.
    pub fn wake(&self) {
        let mut state = self.lock();
        if state.unnotified > 0 || state.unsignalled > 0 {
            let wake = self.wake_locked(&mut state);
            drop(state);
            self.wake_consumers(wake);
        }
    }

    /// Blocks while full; fails only once stopped.
    pub fn push(&self, item: T) -> Result<(), (PushError, T)> {
        let mut state = self.lock();
        loop {
            if state.stopped {
                return Err((PushError::Stopped, item));
            }
            if state.items.len() < self.capacity {
                let wake = self.push_locked(&mut state, item);
                drop(state);
                self.wake_consumers(wake);
                return Ok(());
            }
            // Consumers asleep on items pushed quietly must be woken to make room.
            let wake = self.wake_locked(&mut state);
            self.wake_consumers(wake);
            state.producers_waiting += 1;
            state = self
                .space_available
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
            state.producers_waiting -= 1;
        }
    }

    /// Takes the oldest item; the lock is released before a blocked producer is woken.
    fn pop_locked<'a>(&'a self, mut state: MutexGuard<'a, State<T>>) -> Popped<'a, T> {
        match state.items.pop_front() {
            Some(item) => {
                if state.unsignalled > 0 {
                    state.unsignalled -= 1;
                } else if state.fd_active {
                    self.consume_signal();
                }
                state.unnotified = state.unnotified.min(state.items.len());
                let wake_producer = state.producers_waiting > 0;
                drop(state);
                if wake_producer {
                    self.space_available.notify_one();
                }
                Popped::Item(item)
            }
            None if state.stopped => Popped::Stopped,
            None => Popped::Empty(state),
        }
    }

    pub fn try_pop(&self) -> Result<T, PopError> {
        match self.pop_locked(self.lock()) {
            Popped::Item(item) => Ok(item),
            Popped::Stopped => Err(PopError::Stopped),
            Popped::Empty(_) => Err(PopError::Empty),
        }
    }

    /// Blocks until an item arrives or the ring is stopped and drained.
    pub fn pop(&self) -> Result<T, PopError> {
        let mut state = self.lock();
        loop {
            match self.pop_locked(state) {
                Popped::Item(item) => return Ok(item),
                Popped::Stopped => return Err(PopError::Stopped),
                Popped::Empty(mut empty) => {
                    empty.consumers_waiting += 1;
                    state = self
                        .data_available
                        .wait(empty)
                        .unwrap_or_else(|e| e.into_inner());
                    state.consumers_waiting -= 1;
                }
            }
        }
    }

    /// Like `pop`, but gives up with `Empty` after `timeout`.
    pub fn pop_timeout(&self, timeout: std::time::Duration) -> Result<T, PopError> {
        let deadline = std::time::Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            match self.pop_locked(state) {
                Popped::Item(item) => return Ok(item),
                Popped::Stopped => return Err(PopError::Stopped),
                Popped::Empty(mut empty) => {
                    let now = std::time::Instant::now();
                    if now >= deadline {
                        return Err(PopError::Empty);
                    }
                    empty.consumers_waiting += 1;
                    state = self
                        .data_available
                        .wait_timeout(empty, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    state.consumers_waiting -= 1;
                }
            }
        }
    }

    /// Producers fail from now on; consumers drain what is queued, then see `Stopped`.
    /// Returns false if it was already stopped.
    pub fn stop(&self) -> bool {
        let mut state = self.lock();
        if state.stopped {
            return false;
        }
        state.stopped = true;
        if state.fd_active {
            self.signal(STOPPED_COUNT);
        }
        drop(state);
        self.data_available.notify_all();
        self.space_available.notify_all();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn fd_readable(fd: RawFd) -> bool {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd on the stack, zero timeout.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    }

    #[test]
    fn fifo_with_capacity() {
        let r = Ringbuffer::new(2).unwrap();
        r.try_push(1).unwrap();
        r.try_push(2).unwrap();
        assert_eq!(r.try_push(3).unwrap_err().0, PushError::Full);
        assert_eq!(r.size(), 2);
        assert_eq!(r.try_pop(), Ok(1));
        assert_eq!(r.try_pop(), Ok(2));
        assert_eq!(r.try_pop(), Err(PopError::Empty));
    }

    #[test]
    fn fd_tracks_contents_and_stop() {
        let r = Ringbuffer::new(4).unwrap();
        assert!(!fd_readable(r.fd()));
        r.try_push(1).unwrap();
        r.try_push(2).unwrap();
        assert!(fd_readable(r.fd()));
        r.try_pop().unwrap();
        assert!(fd_readable(r.fd()));
        r.try_pop().unwrap();
        assert!(!fd_readable(r.fd()));
        assert!(r.stop());
        assert!(!r.stop());
        assert!(fd_readable(r.fd()));
        assert_eq!(r.try_pop(), Err(PopError::Stopped));
    }

    #[test]
    fn fd_asked_for_late_counts_what_is_queued() {
        let r = Ringbuffer::new(4).unwrap();
        r.try_push(1).unwrap();
        r.try_push(2).unwrap();
        let fd = r.fd();
        r.try_pop().unwrap();
        assert!(fd_readable(fd));
        r.try_pop().unwrap();
        assert!(!fd_readable(fd));
        let stopped = Ringbuffer::<i32>::new(1).unwrap();
        stopped.stop();
        assert!(fd_readable(stopped.fd()));
    }

    #[test]
    fn stop_drains_then_reports_stopped_and_wakes_blocked() {
        let r = Arc::new(Ringbuffer::new(1).unwrap());
        r.try_push(7).unwrap();
        let producer = {
            let r = r.clone();
            std::thread::spawn(move || r.push(8).map_err(|(e, _)| e))
        };
        std::thread::sleep(Duration::from_millis(20));
        r.stop();
        assert_eq!(producer.join().unwrap(), Err(PushError::Stopped));
        assert_eq!(r.pop(), Ok(7));
        assert_eq!(r.pop(), Err(PopError::Stopped));
    }

    #[test]
    fn blocking_pop_wakes_on_push() {
        let r = Arc::new(Ringbuffer::new(1).unwrap());
        let consumer = {
            let r = r.clone();
            std::thread::spawn(move || r.pop())
        };
        std::thread::sleep(Duration::from_millis(20));
        r.push(5).unwrap();
        assert_eq!(consumer.join().unwrap(), Ok(5));
    }

    /// Waits until a consumer is asleep in `pop` on `r`.
    fn wait_for_sleeping_consumer(r: &Ringbuffer<i32>) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while r.lock().consumers_waiting == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "consumer never waited"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn quiet_pushes_wake_a_sleeping_consumer_only_when_asked() {
        let r = Arc::new(Ringbuffer::new(4).unwrap());
        let consumer = {
            let r = r.clone();
            std::thread::spawn(move || r.pop())
        };
        wait_for_sleeping_consumer(&r);
        r.try_push_quiet(1).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert!(!consumer.is_finished(), "woken before wake()");
        r.wake();
        assert_eq!(consumer.join().unwrap(), Ok(1));
    }

    #[test]
    fn quiet_pushes_reach_the_fd_at_wake_and_the_count_stays_exact() {
        let r = Ringbuffer::new(8).unwrap();
        let fd = r.fd();
        r.try_push_quiet(1).unwrap();
        r.try_push_quiet(2).unwrap();
        assert!(!fd_readable(fd));
        // Popping an item the fd never counted must not take another item's count.
        assert_eq!(r.try_pop(), Ok(1));
        r.try_push(3).unwrap();
        r.try_push_quiet(4).unwrap();
        assert!(fd_readable(fd));
        r.wake();
        for want in [2, 3, 4] {
            assert!(fd_readable(fd));
            assert_eq!(r.try_pop(), Ok(want));
        }
        assert!(!fd_readable(fd));
        r.wake();
        assert!(!fd_readable(fd));
    }

    #[test]
    fn a_producer_blocked_on_a_full_ring_wakes_consumers_first() {
        let r = Arc::new(Ringbuffer::new(1).unwrap());
        let consumer = {
            let r = r.clone();
            std::thread::spawn(move || (r.pop(), r.pop()))
        };
        wait_for_sleeping_consumer(&r);
        let (done, finished) = std::sync::mpsc::channel();
        let producer = r.clone();
        std::thread::spawn(move || {
            producer.try_push_quiet(1).unwrap();
            // Without waking the consumer first, this would wait forever.
            producer.push(2).unwrap();
            done.send(()).unwrap();
        });
        finished
            .recv_timeout(Duration::from_secs(10))
            .expect("producer still blocked");
        assert_eq!(consumer.join().unwrap(), (Ok(1), Ok(2)));
    }
}
