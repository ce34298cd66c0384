//! The allocator a receive stream uses when it is given none: the global allocator, with the
//! last few freed buffers kept for the next heaps.
//!
//! A heap buffer from the global allocator must be zero-filled (Rust never exposes
//! uninitialised memory), and glibc serves a large `calloc` either from its heap, clearing it
//! with `memset`, or from fresh pages, which the kernel clears on first touch; which one
//! depends on its adaptive thresholds. Receiving 1 MiB heaps from memory without a pool, one
//! process in two ran at 150-170 Gb/s and the other at 35-60 Gb/s (`perf`: page faults and
//! `clear_page_erms`). Handing the last few freed buffers straight to the next heaps takes
//! the global allocator off the per-heap path. The bytes of a reused buffer are those of an
//! earlier heap of the same stream, as with a `MemoryPool` (and as spead2's allocator, which
//! does not clear memory at all, may give): gaps in an incomplete heap are never
//! uninitialised, but not necessarily zero.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::{Allocator, Buffer, Storage};

/// Freed buffers kept per stream. Enough for the usual hand-off (a heap in the consumer's
/// hands, one in the ring, one being assembled) to recycle without the global allocator.
const KEEP: usize = 4;

/// A buffer is reused for requests of at least half its size, so a stream whose heap sizes
/// vary does not pin buffers much larger than it needs.
const MAX_WASTE_FACTOR: usize = 2;

/// The default allocator of a receive stream (see the module documentation).
#[derive(Clone, Default)]
pub struct Recycler {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Most recently freed last.
    free: Mutex<Vec<Box<[u8]>>>,
}

impl Recycler {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Allocator for Recycler {
    fn allocate(&self, size: usize) -> io::Result<Buffer> {
        let data = self
            .shared
            .take(size)
            .unwrap_or_else(|| vec![0u8; size].into_boxed_slice());
        let storage = Recycled {
            data,
            home: Arc::downgrade(&self.shared),
        };
        Ok(Buffer::new(Box::new(storage), size))
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<Box<[u8]>>> {
        // Push, pop and remove leave the Vec consistent even if a panic poisoned the lock.
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The most recently freed buffer that fits `size` without wasting more than half.
    fn take(&self, size: usize) -> Option<Box<[u8]>> {
        let mut free = self.lock();
        let fits = |len: usize| len >= size && len / MAX_WASTE_FACTOR <= size;
        let index = free.iter().rposition(|b| fits(b.len()))?;
        Some(free.remove(index))
    }

    /// Keeps `data` for reuse; when full, the oldest buffer goes instead (freed by the
    /// caller, outside the lock).
    fn give_back(&self, data: Box<[u8]>) -> Option<Box<[u8]>> {
        let mut free = self.lock();
        let evicted = (free.len() >= KEEP).then(|| free.remove(0));
        free.push(data);
        evicted
    }
}

/// Storage that goes back to its recycler when dropped (on whatever thread drops it).
struct Recycled {
    data: Box<[u8]>,
    home: Weak<Shared>,
}

impl Storage for Recycled {
    fn bytes(&self) -> &[u8] {
        &self.data
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        if let Some(home) = self.home.upgrade() {
            let data = std::mem::take(&mut self.data);
            drop(home.give_back(data));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(buffer: &Buffer) -> *const u8 {
        buffer.as_ptr()
    }

    #[test]
    fn new_buffers_are_zeroed_and_freed_ones_come_back_newest_first() {
        let recycler = Recycler::new();
        let mut a = recycler.allocate(1000).unwrap();
        let b = recycler.allocate(1000).unwrap();
        assert!(a.iter().all(|&x| x == 0));
        a.fill(7);
        let (a_at, b_at) = (address(&a), address(&b));
        drop(a);
        drop(b);
        let again = recycler.allocate(1000).unwrap();
        assert_eq!(address(&again), b_at);
        let next = recycler.allocate(900).unwrap();
        assert_eq!(address(&next), a_at);
        // Stale, never uninitialised: the bytes the earlier heap left.
        assert_eq!(next.len(), 900);
        assert!(next.iter().all(|&x| x == 7));
    }

    #[test]
    fn a_buffer_is_not_reused_for_a_request_less_than_half_its_size_or_larger() {
        let recycler = Recycler::new();
        let big = recycler.allocate(1000).unwrap();
        let at = address(&big);
        drop(big);
        let small = recycler.allocate(499).unwrap();
        let larger = recycler.allocate(1001).unwrap();
        assert_ne!(address(&small), at);
        assert_ne!(address(&larger), at);
        assert_eq!(address(&recycler.allocate(500).unwrap()), at);
    }

    #[test]
    fn at_most_keep_buffers_are_kept_and_the_oldest_goes_first() {
        let recycler = Recycler::new();
        let buffers: Vec<Buffer> = (0..KEEP + 2)
            .map(|_| recycler.allocate(64).unwrap())
            .collect();
        let addresses: Vec<*const u8> = buffers.iter().map(address).collect();
        drop(buffers);
        assert_eq!(recycler.shared.lock().len(), KEEP);
        let again: Vec<Buffer> = (0..KEEP + 1)
            .map(|_| recycler.allocate(64).unwrap())
            .collect();
        let mut reused: Vec<*const u8> = again[..KEEP].iter().map(address).collect();
        reused.sort();
        let mut newest = addresses[2..].to_vec();
        newest.sort();
        assert_eq!(reused, newest);
    }

    #[test]
    fn buffers_outliving_their_recycler_are_simply_freed() {
        let recycler = Recycler::new();
        let buffer = recycler.allocate(64).unwrap();
        let shared = Arc::downgrade(&recycler.shared);
        drop(recycler);
        // A live buffer does not keep the free list alive ...
        assert!(shared.upgrade().is_none());
        // ... and, finding it gone, is freed rather than given back.
        drop(buffer);
    }
}
