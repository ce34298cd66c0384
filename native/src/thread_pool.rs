//! Worker threads that run readers and background tasks (`spead2.ThreadPool`).
//!
//! Each worker owns a mio `Poll`. Socket readers register their fd and are driven by
//! readiness; readers without an fd (memory buffers, pcap files, inproc queues) are driven by
//! explicit notifications. Work is cooperative: a reader handles one batch per call, so several
//! readers can share a worker the way spead2's readers share an io_service thread.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use mio::{Events, Poll, Registry, Token, Waker};

/// Runs a task on some worker thread, soon. Used by the memory pool to refill in the
/// background without depending on the whole thread pool.
pub trait Spawner: Send + Sync {
    fn spawn(&self, task: Box<dyn FnOnce() + Send + 'static>);
}

/// What a reader wants after handling a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Nothing more to do until its fd is readable or it is notified.
    Idle,
    /// Like `Idle`, but its input is a fast stream (see `recv::reader::backlog`): more is
    /// likely within microseconds, so the worker naps and polls (see [`NAP`]).
    Drained,
    /// More work is ready now (yielded to let other readers run).
    More,
    /// Finished: the worker drops it.
    Done,
}

/// What a running reader may use of its worker: e.g. to swap a listening socket for the
/// accepted connection under the same token.
pub struct Context<'a> {
    pub registry: &'a Registry,
    pub token: Token,
}

/// A source of packets driven by a worker thread.
pub trait Reader: Send {
    /// The fd to poll for readability, if any.
    fn source(&mut self) -> Option<&mut dyn mio::event::Source> {
        None
    }
    /// Handles one batch of input.
    fn run(&mut self, ctx: &Context<'_>) -> Progress;
    /// Called on the worker once the reader is installed, with the handle that can wake it.
    fn attached(&mut self, _handle: &ReaderHandle) {}
}

type Task = Box<dyn FnOnce(&mut WorkerState) + Send>;

const WAKER_TOKEN: Token = Token(usize::MAX);

/// How long a worker sleeps between non-blocking polls while a reader reports a fast stream
/// (`Progress::Drained`), instead of blocking until a socket is readable.
///
/// A readiness wake-up comes from the CPU that delivered the packet (a "sync" wake-up), and
/// the scheduler tends to put the woken worker on that CPU, behind whatever keeps it busy
/// (over loopback: the sender itself), while the socket buffer overflows. A timer wake-up
/// leaves the worker on its own CPU. With the default timer slack a nap lasts 100-130 us;
/// at 45 Gb/s that is about a tenth of an 8 MiB socket buffer.
const NAP: Duration = Duration::from_micros(50);
/// Naps that catch no fast stream before the worker goes back to blocking on readiness:
/// they bridge short pauses of the sender; a stream that stops costs this many wake-ups.
const NAPS_AFTER_FAST: u32 = 4;

/// How a worker waits after a round of running readers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// Polls without blocking: work is queued already.
    Poll,
    /// Naps, then polls without blocking: a reader's stream is fast.
    NapThenPoll,
    /// Blocks until a socket is readable or a task is posted.
    Block,
}

/// Chooses between napping and blocking (see [`NAP`]).
#[derive(Debug, Default)]
struct Naps {
    left: u32,
}

impl Naps {
    /// A reader reported `Progress::Drained`.
    fn fast(&mut self) {
        self.left = NAPS_AFTER_FAST;
    }

    /// How to wait next; `busy` if readers or tasks are queued.
    fn next(&mut self, busy: bool) -> Wait {
        if busy {
            Wait::Poll
        } else if self.left > 0 {
            self.left -= 1;
            Wait::NapThenPoll
        } else {
            Wait::Block
        }
    }
}

/// State shared between a worker thread and the handles that post to it.
struct WorkerShared {
    tasks: Mutex<VecDeque<Task>>,
    waker: Waker,
    stopping: AtomicBool,
}

impl WorkerShared {
    fn post(&self, task: Task) {
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(task);
        // A failed wake means the eventfd is broken; nothing sensible remains but to log.
        if let Err(e) = self.waker.wake() {
            log::error!("failed to wake worker thread: {e}");
        }
    }
}

/// The part of a worker only its own thread touches.
pub struct WorkerState {
    worker: Weak<WorkerShared>,
    registry: Registry,
    readers: HashMap<Token, Box<dyn Reader>>,
    /// Readers with work pending, run before the next blocking poll.
    ready: VecDeque<Token>,
}

impl WorkerState {
    fn add_reader(&mut self, token: Token, mut reader: Box<dyn Reader>) {
        if let Some(source) = reader.source() {
            if let Err(e) = self
                .registry
                .register(source, token, mio::Interest::READABLE)
            {
                log::error!("failed to register reader: {e}");
                return;
            }
        }
        reader.attached(&ReaderHandle {
            worker: self.worker.clone(),
            token,
        });
        self.readers.insert(token, reader);
        // Run once straight away: sockets may already hold data, buffers always do.
        self.ready.push_back(token);
    }

    fn remove_reader(&mut self, token: Token) {
        if let Some(mut reader) = self.readers.remove(&token) {
            if let Some(source) = reader.source() {
                let _ = self.registry.deregister(source);
            }
        }
    }

    /// Runs one reader once; returns what it reported (`Done` if it is gone).
    fn run_reader(&mut self, token: Token) -> Progress {
        let Some(reader) = self.readers.get_mut(&token) else {
            return Progress::Done;
        };
        let ctx = Context {
            registry: &self.registry,
            token,
        };
        let progress = reader.run(&ctx);
        match progress {
            Progress::Idle | Progress::Drained => {}
            Progress::More => self.ready.push_back(token),
            Progress::Done => self.remove_reader(token),
        }
        progress
    }
}

/// Identifies a reader on its worker, for notification and removal.
#[derive(Clone)]
pub struct ReaderHandle {
    worker: Weak<WorkerShared>,
    token: Token,
}

impl ReaderHandle {
    /// Asks the worker to run the reader (for readers without an fd).
    pub fn notify(&self) {
        if let Some(w) = self.worker.upgrade() {
            let token = self.token;
            w.post(Box::new(move |state| state.ready.push_back(token)));
        }
    }

    /// Asks the worker to drop the reader, without waiting.
    pub fn remove_nowait(&self) {
        if let Some(w) = self.worker.upgrade() {
            let token = self.token;
            w.post(Box::new(move |state| state.remove_reader(token)));
        }
    }

    /// Removes and drops the reader; returns once it can no longer run, unless called from
    /// the worker thread itself (where waiting would deadlock), in which case removal is
    /// deferred until the current reader call returns.
    pub fn remove(&self) {
        let Some(w) = self.worker.upgrade() else {
            return;
        };
        let token = self.token;
        if on_worker_of(&w) {
            w.post(Box::new(move |state| state.remove_reader(token)));
            return;
        }
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        w.post(Box::new(move |state| {
            state.remove_reader(token);
            let _ = tx.send(());
        }));
        // The worker may already have exited (pool stopped): then recv fails at once.
        let _ = rx.recv();
    }
}

thread_local! {
    static CURRENT_WORKER: std::cell::Cell<*const WorkerShared> =
        const { std::cell::Cell::new(std::ptr::null()) };
}

fn on_worker_of(w: &Arc<WorkerShared>) -> bool {
    CURRENT_WORKER.with(|c| std::ptr::eq(c.get(), Arc::as_ptr(w)))
}

struct Worker {
    shared: Arc<WorkerShared>,
    thread: Option<JoinHandle<()>>,
}

/// `spead2.ThreadPool`: a fixed set of worker threads.
pub struct ThreadPool {
    workers: Mutex<Vec<Worker>>,
    shared: Vec<Arc<WorkerShared>>,
    next: AtomicUsize,
    token_counter: AtomicUsize,
}

impl ThreadPool {
    /// Starts `threads` workers; worker i is pinned to `affinity[i % len]` when given.
    pub fn new(threads: usize, affinity: &[usize]) -> io::Result<Arc<Self>> {
        if threads == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "at least one thread is required",
            ));
        }
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let core = (!affinity.is_empty()).then(|| affinity[i % affinity.len()]);
            workers.push(spawn_worker(i, core)?);
        }
        let shared = workers.iter().map(|w| w.shared.clone()).collect();
        Ok(Arc::new(ThreadPool {
            workers: Mutex::new(workers),
            shared,
            next: AtomicUsize::new(0),
            token_counter: AtomicUsize::new(0),
        }))
    }

    pub fn num_threads(&self) -> usize {
        self.shared.len()
    }

    fn pick(&self) -> &Arc<WorkerShared> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.shared.len();
        &self.shared[i]
    }

    /// Hands a reader to a worker (round robin) and returns its handle.
    pub fn add_reader(&self, reader: Box<dyn Reader>) -> ReaderHandle {
        let worker = self.pick();
        let token = Token(self.token_counter.fetch_add(1, Ordering::Relaxed));
        worker.post(Box::new(move |state| state.add_reader(token, reader)));
        ReaderHandle {
            worker: Arc::downgrade(worker),
            token,
        }
    }

    /// Stops every worker after the tasks already posted; joins the threads.
    pub fn stop(&self) {
        let workers: Vec<Worker> =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        for w in &workers {
            w.shared.stopping.store(true, Ordering::Release);
            let _ = w.shared.waker.wake();
        }
        for mut w in workers {
            if let Some(t) = w.thread.take() {
                if t.thread().id() != std::thread::current().id() {
                    let _ = t.join();
                }
            }
        }
    }
}

impl Spawner for ThreadPool {
    fn spawn(&self, task: Box<dyn FnOnce() + Send + 'static>) {
        self.pick().post(Box::new(move |_| task()));
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Pins the calling thread to one CPU core.
pub fn set_affinity(core: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; zeroed is its empty set; CPU_SET writes inside it after
    // the bound check below, and sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if core >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "core number out of range",
            ));
        }
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn spawn_worker(index: usize, core: Option<usize>) -> io::Result<Worker> {
    let poll = Poll::new()?;
    let waker = Waker::new(poll.registry(), WAKER_TOKEN)?;
    let registry = poll.registry().try_clone()?;
    let shared = Arc::new(WorkerShared {
        tasks: Mutex::new(VecDeque::new()),
        waker,
        stopping: AtomicBool::new(false),
    });
    let thread_shared = shared.clone();
    let state = WorkerState {
        worker: Arc::downgrade(&shared),
        registry,
        readers: HashMap::new(),
        ready: VecDeque::new(),
    };
    let thread = std::thread::Builder::new()
        .name(format!("spead2-worker-{index}"))
        .spawn(move || {
            if let Some(core) = core {
                if let Err(e) = set_affinity(core) {
                    log::warn!("could not pin worker thread to core {core}: {e}");
                }
            }
            worker_loop(poll, state, thread_shared)
        })?;
    Ok(Worker {
        shared,
        thread: Some(thread),
    })
}

fn worker_loop(mut poll: Poll, mut state: WorkerState, shared: Arc<WorkerShared>) {
    CURRENT_WORKER.with(|c| c.set(Arc::as_ptr(&shared)));
    let mut events = Events::with_capacity(256);
    let mut naps = Naps::default();
    loop {
        let tasks: VecDeque<Task> =
            std::mem::take(&mut *shared.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            task(&mut state);
        }
        if shared.stopping.load(Ordering::Acquire) {
            break;
        }
        // Run each ready reader once per round so one busy reader cannot starve the others.
        for _ in 0..state.ready.len() {
            if let Some(token) = state.ready.pop_front() {
                if state.run_reader(token) == Progress::Drained {
                    naps.fast();
                }
            }
        }
        let busy = !state.ready.is_empty()
            || !shared
                .tasks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty();
        let timeout = match naps.next(busy) {
            Wait::Poll => Some(Duration::ZERO),
            Wait::NapThenPoll => {
                std::thread::sleep(NAP);
                Some(Duration::ZERO)
            }
            Wait::Block => None,
        };
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                log::error!("worker poll failed: {e}");
            }
            continue;
        }
        for event in events.iter() {
            if event.token() != WAKER_TOKEN && !state.ready.contains(&event.token()) {
                state.ready.push_back(event.token());
            }
        }
    }
    // Dropping the readers closes their sockets.
    state.readers.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    struct CountDown {
        left: usize,
        done: mpsc::Sender<usize>,
        calls: usize,
    }

    impl Reader for CountDown {
        fn run(&mut self, _ctx: &Context<'_>) -> Progress {
            self.calls += 1;
            if self.left == 0 {
                let _ = self.done.send(self.calls);
                return Progress::Done;
            }
            self.left -= 1;
            Progress::More
        }
    }

    #[test]
    fn readers_run_until_done() {
        let pool = ThreadPool::new(2, &[]).unwrap();
        let (tx, rx) = mpsc::channel();
        for n in [3, 5] {
            pool.add_reader(Box::new(CountDown {
                left: n,
                done: tx.clone(),
                calls: 0,
            }));
        }
        let mut calls: Vec<usize> = (0..2)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        calls.sort();
        assert_eq!(calls, vec![4, 6]);
        pool.stop();
    }

    #[test]
    fn spawned_tasks_run() {
        let pool = ThreadPool::new(1, &[0]).unwrap();
        let (tx, rx) = mpsc::channel();
        pool.spawn(Box::new(move || tx.send(42).unwrap()));
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 42);
    }

    #[test]
    fn zero_threads_is_an_error() {
        assert!(ThreadPool::new(0, &[]).is_err());
    }

    struct Idle(Arc<AtomicUsize>);
    impl Reader for Idle {
        fn run(&mut self, _ctx: &Context<'_>) -> Progress {
            self.0.fetch_add(1, Ordering::SeqCst);
            Progress::Idle
        }
    }

    /// Waits (up to 5 s) for `want` runs, then checks there were exactly that many.
    fn wait_for_runs(runs: &AtomicUsize, want: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while runs.load(Ordering::SeqCst) < want && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(runs.load(Ordering::SeqCst), want);
    }

    #[test]
    fn notify_runs_an_idle_reader_and_remove_stops_it() {
        let pool = ThreadPool::new(1, &[]).unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let handle = pool.add_reader(Box::new(Idle(runs.clone())));
        handle.notify();
        wait_for_runs(&runs, 2);
        handle.remove();
        let after = runs.load(Ordering::SeqCst);
        assert_eq!(after, 2, "one run on add, one on notify");
        handle.notify();
        pool.stop();
        assert_eq!(runs.load(Ordering::SeqCst), after);
    }

    struct Draining(Arc<AtomicUsize>);
    impl Reader for Draining {
        fn run(&mut self, _ctx: &Context<'_>) -> Progress {
            self.0.fetch_add(1, Ordering::SeqCst);
            Progress::Drained
        }
    }

    #[test]
    fn a_drained_reader_runs_again_only_when_notified() {
        let pool = ThreadPool::new(1, &[]).unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let handle = pool.add_reader(Box::new(Draining(runs.clone())));
        wait_for_runs(&runs, 1);
        handle.notify();
        wait_for_runs(&runs, 2);
        // Longer than all the naps after a fast stream: they poll, they do not rerun readers.
        std::thread::sleep(NAP * NAPS_AFTER_FAST * 10);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        handle.notify();
        wait_for_runs(&runs, 3);
        pool.stop();
    }

    #[test]
    fn a_fast_stream_means_naps_then_blocking_and_queued_work_never_waits() {
        let mut naps = Naps::default();
        assert_eq!(naps.next(false), Wait::Block);
        assert_eq!(naps.next(true), Wait::Poll);
        naps.fast();
        // Queued work is polled for at once, without using up a nap.
        assert_eq!(naps.next(true), Wait::Poll);
        for _ in 0..NAPS_AFTER_FAST - 1 {
            assert_eq!(naps.next(false), Wait::NapThenPoll);
        }
        // Each fast report starts the naps afresh.
        naps.fast();
        for _ in 0..NAPS_AFTER_FAST {
            assert_eq!(naps.next(false), Wait::NapThenPoll);
        }
        assert_eq!(naps.next(false), Wait::Block);
        assert_eq!(naps.next(false), Wait::Block);
    }
}
