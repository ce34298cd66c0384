//! `spead2.MemoryPool`: recycled fixed-size buffers with optional background refill.
//!
//! Requests of `lower..=upper` bytes are served from a free list of `upper`-byte buffers
//! taken from an underlying allocator; other sizes go straight to that allocator. A pooled
//! buffer goes back to the free list when dropped (on whatever thread drops it) if fewer
//! than `max_free` buffers are free, and is freed otherwise.
//!
//! With a spawner and a non-zero `low_water`, an allocation that leaves fewer than
//! `low_water` free buffers schedules a background task that allocates buffers until
//! `low_water` are free (at most one such task is pending at a time). Allocation still
//! never waits for it: an empty pool allocates on the spot, logging a warning unless
//! `warn_on_empty` is off.
//!
//! Behaviour checked against spead2 4.5.1: no constructor argument is validated (e.g.
//! `lower > upper` simply makes every request bypass the pool), `initial` buffers are
//! allocated up front, and the empty-pool warning names the requested size.
//!
//! Buffers allocated ahead of need (the `initial` ones and background refills) are made
//! resident at once, one write per page, as spead2's are filled: a large buffer from the
//! global allocator is a fresh mapping whose pages would otherwise fault in, one by one, on
//! the receive path the first time a heap is written into them.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::{Allocator, Buffer, Storage};
use crate::thread_pool::Spawner;

/// How a `MemoryPool` is sized; field names follow spead2's constructor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolConfig {
    /// Smallest request served from the pool.
    pub lower: usize,
    /// Largest request served from the pool, and the size of every pooled buffer.
    pub upper: usize,
    /// Most free buffers kept; further returned buffers are freed.
    pub max_free: usize,
    /// Buffers allocated when the pool is created.
    pub initial: usize,
    /// Background refill target (0: no background refill).
    pub low_water: usize,
}

/// A snapshot of the pool's counters. Each is read atomically, but not all at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Buffers in the free list.
    pub free: usize,
    /// Pooled buffers handed out and not yet dropped.
    pub in_use: usize,
    /// `upper`-sized buffers the pool has obtained from its allocator, ever.
    pub allocated: u64,
    /// Requests that found the pool empty and allocated on the spot.
    pub empty: u64,
    /// Background refill tasks that ran.
    pub refills: u64,
}

/// `spead2.MemoryPool`. Cheap to clone: clones share one pool.
#[derive(Clone)]
pub struct MemoryPool {
    shared: Arc<Shared>,
}

struct Shared {
    config: PoolConfig,
    allocator: Arc<dyn Allocator>,
    spawner: Option<Arc<dyn Spawner>>,
    /// Free buffers, each `upper` bytes long. Held only to push or pop.
    free: Mutex<Vec<Buffer>>,
    warn_on_empty: AtomicBool,
    refill_pending: AtomicBool,
    /// Mirrors `free.len()` so it can be read without the lock.
    free_count: AtomicUsize,
    in_use: AtomicUsize,
    allocated: AtomicU64,
    empty: AtomicU64,
    refills: AtomicU64,
}

/// A buffer of `size` bytes from `allocator` with every page it spans written once (with
/// zeros: the content of a new buffer is not yet meaningful).
fn allocate_resident(allocator: &dyn Allocator, size: usize) -> io::Result<Buffer> {
    const PAGE: usize = 4096;
    let mut buffer = allocator.allocate(size)?;
    // One write every PAGE bytes from the start, and the last byte: every page the buffer
    // overlaps, whatever its alignment.
    let last = buffer.len().checked_sub(1);
    for at in (0..buffer.len()).step_by(PAGE).chain(last) {
        buffer[at] = 0;
    }
    Ok(buffer)
}

impl MemoryPool {
    /// Creates the pool and allocates its `initial` buffers. `spawner` enables background
    /// refill (with `config.low_water > 0`).
    pub fn new(
        config: PoolConfig,
        spawner: Option<Arc<dyn Spawner>>,
        allocator: Arc<dyn Allocator>,
    ) -> io::Result<MemoryPool> {
        let mut initial: Vec<Buffer> = Vec::with_capacity(config.initial);
        for _ in 0..config.initial {
            initial.push(allocate_resident(allocator.as_ref(), config.upper)?);
        }
        let shared = Shared {
            config,
            allocator,
            spawner,
            free_count: AtomicUsize::new(initial.len()),
            allocated: AtomicU64::new(initial.len() as u64),
            free: Mutex::new(initial),
            warn_on_empty: AtomicBool::new(true),
            refill_pending: AtomicBool::new(false),
            in_use: AtomicUsize::new(0),
            empty: AtomicU64::new(0),
            refills: AtomicU64::new(0),
        };
        Ok(MemoryPool {
            shared: Arc::new(shared),
        })
    }

    pub fn config(&self) -> PoolConfig {
        self.shared.config
    }

    pub fn warn_on_empty(&self) -> bool {
        self.shared.warn_on_empty.load(Ordering::Relaxed)
    }

    pub fn set_warn_on_empty(&self, warn: bool) {
        self.shared.warn_on_empty.store(warn, Ordering::Relaxed);
    }

    /// Current counters, read without blocking allocation.
    pub fn stats(&self) -> PoolStats {
        let s = &self.shared;
        PoolStats {
            free: s.free_count.load(Ordering::Relaxed),
            in_use: s.in_use.load(Ordering::Relaxed),
            allocated: s.allocated.load(Ordering::Relaxed),
            empty: s.empty.load(Ordering::Relaxed),
            refills: s.refills.load(Ordering::Relaxed),
        }
    }
}

impl Allocator for MemoryPool {
    fn allocate(&self, size: usize) -> io::Result<Buffer> {
        let config = &self.shared.config;
        if size < config.lower || size > config.upper {
            return self.shared.allocator.allocate(size);
        }
        let storage = Shared::take(&self.shared, size)?;
        Ok(Buffer::new(Box::new(storage), size))
    }
}

impl Shared {
    fn lock_free(&self) -> MutexGuard<'_, Vec<Buffer>> {
        // A panic while holding the lock cannot leave the Vec inconsistent (push and pop
        // are its only uses), so a poisoned lock is still fine to use.
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pop_free(&self) -> Option<Buffer> {
        let mut free = self.lock_free();
        let buffer = free.pop();
        self.free_count.store(free.len(), Ordering::Relaxed);
        buffer
    }

    /// Adds `buffer` to the free list unless it is full; otherwise hands it back so the
    /// caller frees it outside the lock.
    fn push_free(&self, buffer: Buffer) -> Result<(), Buffer> {
        let mut free = self.lock_free();
        if free.len() >= self.config.max_free {
            return Err(buffer);
        }
        free.push(buffer);
        self.free_count.store(free.len(), Ordering::Relaxed);
        Ok(())
    }

    /// A pooled buffer for a request of `size` bytes.
    fn take(self: &Arc<Self>, size: usize) -> io::Result<Pooled> {
        let buffer = match self.pop_free() {
            Some(buffer) => buffer,
            None => {
                self.empty.fetch_add(1, Ordering::Relaxed);
                if self.warn_on_empty.load(Ordering::Relaxed) {
                    log::warn!("memory pool is empty when allocating {size} bytes");
                }
                let buffer = self.allocator.allocate(self.config.upper)?;
                self.allocated.fetch_add(1, Ordering::Relaxed);
                buffer
            }
        };
        self.in_use.fetch_add(1, Ordering::Relaxed);
        self.maybe_refill();
        Ok(Pooled {
            buffer: Some(buffer),
            pool: Arc::downgrade(self),
        })
    }

    /// Schedules a refill if there is a spawner, the pool is below `low_water` and no
    /// refill is pending.
    fn maybe_refill(self: &Arc<Self>) {
        let Some(spawner) = &self.spawner else {
            return;
        };
        if self.free_count.load(Ordering::Relaxed) >= self.refill_target() {
            return;
        }
        if self.refill_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let guard = PendingRefill {
            pool: Arc::downgrade(self),
        };
        spawner.spawn(Box::new(move || guard.run()));
    }

    /// The free count a refill aims for: `low_water`, unless `max_free` is lower (a refill
    /// could never get past that, and would otherwise reschedule itself forever).
    fn refill_target(&self) -> usize {
        self.config.low_water.min(self.config.max_free)
    }

    /// Allocates until `refill_target` buffers are free. Returns false if allocation
    /// failed.
    fn refill(&self) -> bool {
        self.refills.fetch_add(1, Ordering::Relaxed);
        while self.free_count.load(Ordering::Relaxed) < self.refill_target() {
            let buffer = match allocate_resident(self.allocator.as_ref(), self.config.upper) {
                Ok(buffer) => buffer,
                Err(e) => {
                    log::warn!("memory pool refill failed: {e}");
                    return false;
                }
            };
            self.allocated.fetch_add(1, Ordering::Relaxed);
            if self.push_free(buffer).is_err() {
                // Released buffers filled the free list meanwhile.
                break;
            }
        }
        true
    }
}

/// The right to run the one pending refill. Dropping it, whether the task ran or the
/// spawner discarded it, lets the next allocation schedule another.
struct PendingRefill {
    pool: Weak<Shared>,
}

impl PendingRefill {
    fn run(self) {
        let Some(pool) = self.pool.upgrade() else {
            return;
        };
        let ok = pool.refill();
        drop(self);
        // Allocations made while this task ran saw it pending and did not schedule
        // another; look again now that it is finished (not after a failure, to avoid
        // spinning on an allocator that keeps failing).
        if ok {
            pool.maybe_refill();
        }
    }
}

impl Drop for PendingRefill {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.refill_pending.store(false, Ordering::Release);
        }
    }
}

/// Storage of a pooled buffer: returns itself to the pool on drop.
struct Pooled {
    /// Always `Some` until dropped.
    buffer: Option<Buffer>,
    pool: Weak<Shared>,
}

impl Storage for Pooled {
    fn bytes(&self) -> &[u8] {
        self.buffer.as_deref().unwrap_or_default()
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_deref_mut().unwrap_or_default()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let (Some(buffer), Some(pool)) = (self.buffer.take(), self.pool.upgrade()) else {
            // The pool is gone: the buffer is simply freed.
            return;
        };
        pool.in_use.fetch_sub(1, Ordering::Relaxed);
        // A full free list hands the buffer back; it is freed here, outside the lock.
        let _ = pool.push_free(buffer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::DefaultAllocator;
    use std::collections::VecDeque;
    use std::thread::JoinHandle;

    /// Counts allocations by size; can be told to fail.
    #[derive(Default)]
    struct CountingAllocator {
        sizes: Mutex<Vec<usize>>,
        fail: AtomicBool,
    }

    impl CountingAllocator {
        fn sizes(&self) -> Vec<usize> {
            self.sizes.lock().unwrap().clone()
        }
    }

    impl Allocator for CountingAllocator {
        fn allocate(&self, size: usize) -> io::Result<Buffer> {
            if self.fail.load(Ordering::Relaxed) {
                return Err(io::Error::other("test failure"));
            }
            self.sizes.lock().unwrap().push(size);
            DefaultAllocator.allocate(size)
        }
    }

    type Task = Box<dyn FnOnce() + Send + 'static>;

    /// Queues tasks; the test runs them on a std::thread when it chooses.
    #[derive(Default)]
    struct QueueSpawner {
        tasks: Mutex<VecDeque<Task>>,
    }

    impl Spawner for QueueSpawner {
        fn spawn(&self, task: Task) {
            self.tasks.lock().unwrap().push_back(task);
        }
    }

    impl QueueSpawner {
        fn pending(&self) -> usize {
            self.tasks.lock().unwrap().len()
        }

        /// Runs the oldest task on a new thread and waits for it.
        fn run_one(&self) {
            let task = self.tasks.lock().unwrap().pop_front().expect("a task");
            std::thread::spawn(task).join().unwrap();
        }

        fn discard_all(&self) {
            self.tasks.lock().unwrap().clear();
        }
    }

    /// Runs every task at once on its own thread.
    #[derive(Default)]
    struct ThreadSpawner {
        handles: Mutex<Vec<JoinHandle<()>>>,
    }

    impl Spawner for ThreadSpawner {
        fn spawn(&self, task: Task) {
            self.handles.lock().unwrap().push(std::thread::spawn(task));
        }
    }

    impl ThreadSpawner {
        /// Waits for every task spawned so far (and those they spawned).
        fn join(&self) {
            loop {
                let handles: Vec<_> = std::mem::take(&mut *self.handles.lock().unwrap());
                if handles.is_empty() {
                    return;
                }
                for h in handles {
                    h.join().unwrap();
                }
            }
        }
    }

    fn config(lower: usize, upper: usize, max_free: usize, initial: usize) -> PoolConfig {
        PoolConfig {
            lower,
            upper,
            max_free,
            initial,
            low_water: 0,
        }
    }

    fn pool_with(
        cfg: PoolConfig,
        spawner: Option<Arc<dyn Spawner>>,
    ) -> (MemoryPool, Arc<CountingAllocator>) {
        let alloc = Arc::new(CountingAllocator::default());
        let pool = MemoryPool::new(cfg, spawner, alloc.clone()).unwrap();
        (pool, alloc)
    }

    #[test]
    fn initial_buffers_are_allocated_up_front() {
        let (pool, alloc) = pool_with(config(10, 100, 4, 3), None);
        assert_eq!(alloc.sizes(), vec![100, 100, 100]);
        let s = pool.stats();
        assert_eq!((s.free, s.in_use, s.allocated, s.empty), (3, 0, 3, 0));
    }

    #[test]
    fn in_range_requests_get_upper_sized_buffers_and_recycle() {
        let (pool, alloc) = pool_with(config(10, 100, 4, 1), None);
        let mut a = pool.allocate(10).unwrap();
        assert_eq!((a.len(), a.capacity()), (10, 100));
        a.copy_from_slice(&[7; 10]);
        let first = a.as_ptr();
        assert_eq!(pool.stats().in_use, 1);
        drop(a);
        assert_eq!(pool.stats().free, 1);
        // The same memory comes back, stale contents and all.
        let b = pool.allocate(100).unwrap();
        assert_eq!(b.as_ptr(), first);
        assert_eq!(b.len(), 100);
        assert_eq!(&b[..10], &[7; 10]);
        assert_eq!(alloc.sizes(), vec![100]);
    }

    #[test]
    fn out_of_range_requests_bypass_the_pool() {
        let (pool, alloc) = pool_with(config(10, 100, 4, 1), None);
        let small = pool.allocate(9).unwrap();
        let big = pool.allocate(101).unwrap();
        assert_eq!((small.capacity(), big.capacity()), (9, 101));
        drop((small, big));
        assert_eq!(alloc.sizes(), vec![100, 9, 101]);
        let s = pool.stats();
        assert_eq!((s.free, s.in_use, s.allocated, s.empty), (1, 0, 1, 0));
    }

    #[test]
    fn lower_above_upper_bypasses_everything() {
        let (pool, alloc) = pool_with(config(50, 10, 4, 0), None);
        assert_eq!(pool.allocate(20).unwrap().capacity(), 20);
        assert_eq!(alloc.sizes(), vec![20]);
    }

    #[test]
    fn empty_pool_allocates_and_counts() {
        let (pool, alloc) = pool_with(config(0, 64, 4, 0), None);
        assert!(pool.warn_on_empty());
        let a = pool.allocate(8).unwrap();
        pool.set_warn_on_empty(false);
        assert!(!pool.warn_on_empty());
        let b = pool.allocate(8).unwrap();
        let s = pool.stats();
        assert_eq!((s.free, s.in_use, s.allocated, s.empty), (0, 2, 2, 2));
        drop((a, b));
        assert_eq!(pool.stats().free, 2);
        assert_eq!(alloc.sizes(), vec![64, 64]);
        let _c = pool.allocate(8).unwrap();
        assert_eq!(pool.stats().empty, 2);
    }

    #[test]
    fn returned_buffers_beyond_max_free_are_freed() {
        let (pool, _) = pool_with(config(0, 16, 2, 0), None);
        let held: Vec<Buffer> = (0..5).map(|_| pool.allocate(16).unwrap()).collect();
        assert_eq!(pool.stats().in_use, 5);
        drop(held);
        let s = pool.stats();
        assert_eq!((s.free, s.in_use, s.allocated), (2, 0, 5));
    }

    #[test]
    fn buffers_outlive_the_pool() {
        let (pool, _) = pool_with(config(0, 16, 2, 1), None);
        let mut a = pool.allocate(4).unwrap();
        drop(pool);
        a.copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(&*a, &[1, 2, 3, 4]);
        drop(a);
    }

    #[test]
    fn allocation_failure_is_reported() {
        let (pool, alloc) = pool_with(config(0, 16, 2, 0), None);
        alloc.fail.store(true, Ordering::Relaxed);
        assert!(pool.allocate(4).is_err());
        assert!(pool.allocate(100).is_err());
        assert_eq!(pool.stats().in_use, 0);
        let alloc = Arc::new(CountingAllocator::default());
        alloc.fail.store(true, Ordering::Relaxed);
        assert!(MemoryPool::new(config(0, 16, 2, 1), None, alloc).is_err());
    }

    /// (resident, total) pages of the memory under `bytes`.
    fn resident_pages(bytes: &[u8]) -> (usize, usize) {
        const PAGE: usize = 4096;
        let start = bytes.as_ptr() as usize & !(PAGE - 1);
        let end = bytes.as_ptr() as usize + bytes.len();
        let pages = (end - start).div_ceil(PAGE);
        let mut flags = vec![0u8; pages];
        // SAFETY: `start` is page-aligned and [start, end) lies in mappings of this process
        // (the pages holding `bytes`); `flags` has the one byte per page mincore writes.
        let rc =
            unsafe { libc::mincore(start as *mut libc::c_void, end - start, flags.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore: {}", io::Error::last_os_error());
        (flags.iter().filter(|&&f| f & 1 == 1).count(), pages)
    }

    #[test]
    fn buffers_allocated_ahead_of_need_are_resident() {
        // Above glibc's largest dynamic mmap threshold (32 MiB), every buffer is a fresh
        // mapping, none of whose pages is resident until written (checked first, or the
        // test would prove nothing).
        let size = 40 << 20;
        let fresh = DefaultAllocator.allocate(size).unwrap();
        let (resident, pages) = resident_pages(&fresh);
        assert!(
            resident < pages / 4,
            "{resident} of {pages} pages already resident"
        );
        let cfg = PoolConfig {
            lower: 0,
            upper: size,
            max_free: 3,
            initial: 2,
            low_water: 1,
        };
        let spawner = Arc::new(QueueSpawner::default());
        let pool = MemoryPool::new(cfg, Some(spawner.clone()), Arc::new(DefaultAllocator)).unwrap();
        let held: Vec<Buffer> = (0..2).map(|_| pool.allocate(size).unwrap()).collect();
        // Both initial buffers taken: the refill allocates one more.
        spawner.run_one();
        let refilled = pool.allocate(size).unwrap();
        for buffer in held.iter().chain([&refilled]) {
            let (resident, pages) = resident_pages(buffer);
            assert_eq!(resident, pages);
        }
        assert_eq!(pool.stats().allocated, 3);
    }

    fn refill_config(max_free: usize, initial: usize, low_water: usize) -> PoolConfig {
        PoolConfig {
            lower: 0,
            upper: 32,
            max_free,
            initial,
            low_water,
        }
    }

    #[test]
    fn refill_tops_up_to_low_water_with_one_task_at_a_time() {
        let spawner = Arc::new(QueueSpawner::default());
        let (pool, alloc) = pool_with(refill_config(10, 4, 3), Some(spawner.clone()));
        // 4 free -> 3: not below low_water, nothing scheduled.
        let a = pool.allocate(1).unwrap();
        assert_eq!(spawner.pending(), 0);
        // 3 -> 2: below, one task. Further allocations while it is pending add none.
        let b = pool.allocate(1).unwrap();
        let c = pool.allocate(1).unwrap();
        let d = pool.allocate(1).unwrap();
        let e = pool.allocate(1).unwrap();
        assert_eq!(spawner.pending(), 1);
        let s = pool.stats();
        assert_eq!((s.free, s.empty, s.refills), (0, 1, 0));
        spawner.run_one();
        let s = pool.stats();
        assert_eq!((s.free, s.in_use, s.allocated, s.refills), (3, 5, 8, 1));
        assert_eq!(alloc.sizes(), vec![32; 8]);
        // Up to low_water exactly, and nothing more pending.
        assert_eq!(spawner.pending(), 0);
        drop((a, b, c, d, e));
        assert_eq!(pool.stats().free, 8);
    }

    #[test]
    fn refill_stops_at_max_free_and_does_not_loop() {
        let spawner = Arc::new(QueueSpawner::default());
        let (pool, _) = pool_with(refill_config(2, 0, 5), Some(spawner.clone()));
        let _a = pool.allocate(1).unwrap();
        spawner.run_one();
        let s = pool.stats();
        assert_eq!((s.free, s.allocated), (2, 3));
        assert_eq!(spawner.pending(), 0);
    }

    /// Runs each task inside `spawn`, on the caller's thread.
    struct InlineSpawner;

    impl Spawner for InlineSpawner {
        fn spawn(&self, task: Task) {
            task();
        }
    }

    #[test]
    fn an_inline_spawner_does_not_recurse() {
        let (pool, alloc) = pool_with(refill_config(2, 0, 5), Some(Arc::new(InlineSpawner)));
        let _a = pool.allocate(1).unwrap();
        assert_eq!(pool.stats().free, 2);
        assert_eq!(alloc.sizes().len(), 3);
        let _b = pool.allocate(1).unwrap();
        let s = pool.stats();
        assert_eq!((s.free, s.refills), (2, 2));
    }

    #[test]
    fn a_discarded_task_does_not_block_future_refills() {
        let spawner = Arc::new(QueueSpawner::default());
        let (pool, _) = pool_with(refill_config(10, 0, 2), Some(spawner.clone()));
        let _a = pool.allocate(1).unwrap();
        assert_eq!(spawner.pending(), 1);
        spawner.discard_all();
        let _b = pool.allocate(1).unwrap();
        assert_eq!(spawner.pending(), 1);
        spawner.run_one();
        assert_eq!(pool.stats().free, 2);
    }

    #[test]
    fn failed_refill_stops_without_rescheduling() {
        let spawner = Arc::new(QueueSpawner::default());
        let (pool, alloc) = pool_with(refill_config(10, 0, 2), Some(spawner.clone()));
        let _a = pool.allocate(1).unwrap();
        alloc.fail.store(true, Ordering::Relaxed);
        spawner.run_one();
        assert_eq!(spawner.pending(), 0);
        assert_eq!(pool.stats().refills, 1);
        alloc.fail.store(false, Ordering::Relaxed);
        let _b = pool.allocate(1).unwrap();
        assert_eq!(spawner.pending(), 1);
    }

    #[test]
    fn refill_task_after_pool_dropped_does_nothing() {
        let spawner = Arc::new(QueueSpawner::default());
        let (pool, alloc) = pool_with(refill_config(10, 0, 2), Some(spawner.clone()));
        drop(pool.allocate(1).unwrap());
        drop(pool);
        spawner.run_one();
        assert_eq!(alloc.sizes().len(), 1);
    }

    #[test]
    fn no_spawner_means_no_refill() {
        let (pool, alloc) = pool_with(refill_config(10, 0, 5), None);
        let _a = pool.allocate(1).unwrap();
        assert_eq!(alloc.sizes().len(), 1);
        assert_eq!(pool.stats().refills, 0);
    }

    #[test]
    fn concurrent_allocate_and_release_with_background_refill() {
        let spawner = Arc::new(ThreadSpawner::default());
        let (pool, _) = pool_with(refill_config(8, 2, 4), Some(spawner.clone()));
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    let mut held: Vec<Buffer> = Vec::new();
                    for i in 0..500 {
                        let mut b = pool.allocate(1 + (i % 32)).unwrap();
                        b[0] = t as u8;
                        held.push(b);
                        if held.len() > 3 {
                            // Release on this thread, like a consumer would.
                            held.remove(0);
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        spawner.join();
        let s = pool.stats();
        assert_eq!(s.in_use, 0);
        assert!(s.free <= 8);
        assert!(s.free >= 4, "refill brings the pool to low_water: {s:?}");
        assert!(s.refills >= 1);
    }
}
