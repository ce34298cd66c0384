//! Memory for heap payloads: the allocator interface, the plain and mmap allocators, and
//! the pool. A heap's payload is allocated once here and later exposed to numpy in place.

pub mod copy;
pub mod mmap;
pub mod pool;
pub mod recycle;

use std::fmt;
use std::io;

/// Bytes owned elsewhere (e.g. a Python buffer) and shared without copying.
pub type SharedBytes = std::sync::Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Backing storage of a `Buffer`. Implementations own their memory and free it on drop.
pub trait Storage: Send + Sync {
    fn bytes(&self) -> &[u8];
    fn bytes_mut(&mut self) -> &mut [u8];
}

impl Storage for Box<[u8]> {
    fn bytes(&self) -> &[u8] {
        self
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        self
    }
}

/// A payload buffer of `len` usable bytes (its storage may be larger, as in a pool).
/// Always initialised memory: gaps in an incomplete heap read as zeros or stale bytes,
/// never as uninitialised memory.
pub struct Buffer {
    storage: Box<dyn Storage>,
    len: usize,
}

impl Buffer {
    pub fn new(storage: Box<dyn Storage>, len: usize) -> Self {
        assert!(
            len <= storage.bytes().len(),
            "buffer longer than its storage"
        );
        Buffer { storage, len }
    }

    /// A zero-filled buffer from the global allocator (calloc: large ones are lazily mapped).
    pub fn zeroed(len: usize) -> Self {
        Self::new(Box::new(vec![0u8; len].into_boxed_slice()), len)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The same storage with only its first `len` bytes usable.
    pub fn truncated(mut self, len: usize) -> Self {
        self.len = self.len.min(len);
        self
    }

    pub fn capacity(&self) -> usize {
        self.storage.bytes().len()
    }
}

impl std::ops::Deref for Buffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.storage.bytes()[..self.len]
    }
}

impl std::ops::DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self.storage.bytes_mut()[..len]
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffer").field("len", &self.len).finish()
    }
}

/// Supplies payload buffers to heap assembly. Called on worker threads.
pub trait Allocator: Send + Sync {
    fn allocate(&self, size: usize) -> io::Result<Buffer>;
}

/// `spead2.MemoryAllocator`: the global allocator.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultAllocator;

impl Allocator for DefaultAllocator {
    fn allocate(&self, size: usize) -> io::Result<Buffer> {
        Ok(Buffer::zeroed(size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffer_exposes_only_len_bytes() {
        let mut b = Buffer::new(Box::new(vec![0u8; 16].into_boxed_slice()), 4);
        assert_eq!(b.len(), 4);
        assert_eq!(b.capacity(), 16);
        b.copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(&*b, &[1, 2, 3, 4]);
    }

    #[test]
    fn default_allocator_zero_fills() {
        let b = DefaultAllocator.allocate(100).unwrap();
        assert!(b.iter().all(|&x| x == 0));
    }
}
