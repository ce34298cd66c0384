//! `spead2.MmapAllocator`: each buffer is its own anonymous private mapping, optionally
//! backed by huge pages.

use std::io;
use std::ptr::NonNull;
use std::sync::OnceLock;

use super::{Allocator, Buffer, Storage};

#[cfg(target_os = "linux")]
const MAP_HUGETLB: libc::c_int = libc::MAP_HUGETLB;
#[cfg(not(target_os = "linux"))]
const MAP_HUGETLB: libc::c_int = 0;

/// Bits of the flags that encode log2 of a specific huge page size (Linux ABI).
const MAP_HUGE_SHIFT: u32 = 26;
const MAP_HUGE_MASK: libc::c_int = 0x3f;
/// Used when /proc/meminfo does not say.
const FALLBACK_HUGE_PAGE_SIZE: usize = 2 << 20;

/// Flags a caller may not choose: the mapping type (we always map private memory) and
/// fixed placement, which could replace memory that Rust code is using.
#[cfg(target_os = "linux")]
const FORBIDDEN_FLAGS: libc::c_int = libc::MAP_TYPE | libc::MAP_FIXED | libc::MAP_FIXED_NOREPLACE;
#[cfg(not(target_os = "linux"))]
const FORBIDDEN_FLAGS: libc::c_int = libc::MAP_SHARED | libc::MAP_PRIVATE | libc::MAP_FIXED;

/// Allocates with `mmap(MAP_PRIVATE | MAP_ANONYMOUS | flags)`; memory arrives zero-filled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmapAllocator {
    /// Extra mmap flags, e.g. `MAP_POPULATE` or `MAP_LOCKED`. Mapping-type and fixed
    /// placement flags are ignored.
    pub flags: i32,
    /// Try huge pages first (the length is rounded up to the huge page size), falling back
    /// to normal pages when none are available.
    pub prefer_huge: bool,
}

impl MmapAllocator {
    pub fn new(flags: i32, prefer_huge: bool) -> Self {
        MmapAllocator { flags, prefer_huge }
    }
}

impl Allocator for MmapAllocator {
    fn allocate(&self, size: usize) -> io::Result<Buffer> {
        if size == 0 {
            // mmap rejects empty mappings; an empty buffer needs no memory at all.
            return Ok(Buffer::new(Box::new(Box::<[u8]>::default()), 0));
        }
        let flags = self.flags & !FORBIDDEN_FLAGS;
        if self.prefer_huge && MAP_HUGETLB != 0 && flags & MAP_HUGETLB == 0 {
            if let Ok(mapping) = Mapping::new(size, flags | MAP_HUGETLB) {
                return Ok(Buffer::new(Box::new(mapping), size));
            }
        }
        let mapping = Mapping::new(size, flags)?;
        Ok(Buffer::new(Box::new(mapping), size))
    }
}

/// An anonymous private mapping, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: `Mapping` owns its pages exclusively (a private anonymous mapping that nothing
// else refers to), like a `Box<[u8]>`. Shared access (`&self`) only reads them and mutable
// access needs `&mut self`, so moving it to or sharing it with another thread cannot race.
unsafe impl Send for Mapping {}
// SAFETY: see `Send`: there is no interior mutability.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps at least `size` (> 0) bytes; with `MAP_HUGETLB`, a whole number of huge pages.
    fn new(size: usize, flags: libc::c_int) -> io::Result<Mapping> {
        let len = if flags & MAP_HUGETLB != 0 {
            round_up(size, huge_page_size(flags)).ok_or_else(too_large)?
        } else {
            size
        };
        // SAFETY: a request for a new anonymous private mapping at an address of the
        // kernel's choosing (addr is null and MAP_FIXED* are excluded): it cannot affect
        // existing memory. fd -1 and offset 0 are what MAP_ANONYMOUS requires.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | flags,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(addr.cast::<u8>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(Mapping { ptr, len })
    }
}

impl Storage for Mapping {
    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is the start of a live mapping of `len` readable bytes (it stays
        // mapped until `drop`, which needs ownership). Anonymous pages are zero-filled by
        // the kernel, so every byte is initialised. Writers need `&mut self`, so no
        // mutable alias exists while this shared slice lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`; the mapping is also writable (PROT_WRITE), and `&mut self`
        // guarantees this is the only reference to it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the range `mmap` returned; no slice into it can outlive
        // `self`, so nothing refers to these pages any more.
        let rc = unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        if rc != 0 {
            log::warn!(
                "munmap of {} bytes failed: {}",
                self.len,
                io::Error::last_os_error()
            );
        }
    }
}

fn too_large() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "allocation size overflows")
}

/// `value` rounded up to a multiple of `unit` (> 0); `None` on overflow.
fn round_up(value: usize, unit: usize) -> Option<usize> {
    value.checked_add(unit - 1).map(|v| v / unit * unit)
}

/// The huge page size `flags` ask for: an explicit MAP_HUGE_* size, else the system
/// default.
fn huge_page_size(flags: libc::c_int) -> usize {
    let log2 = (flags >> MAP_HUGE_SHIFT) & MAP_HUGE_MASK;
    if log2 != 0 && (log2 as u32) < usize::BITS {
        return 1usize << log2;
    }
    default_huge_page_size()
}

fn default_huge_page_size() -> usize {
    static SIZE: OnceLock<usize> = OnceLock::new();
    *SIZE.get_or_init(|| {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| parse_huge_page_size(&text))
            .unwrap_or(FALLBACK_HUGE_PAGE_SIZE)
    })
}

/// Reads the `Hugepagesize:` line of /proc/meminfo (in kB).
fn parse_huge_page_size(meminfo: &str) -> Option<usize> {
    let line = meminfo.lines().find(|l| l.starts_with("Hugepagesize:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024).filter(|&size| size > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: usize = 4096;

    /// Whether every page of `[addr, addr + len)` is mapped, according to mincore.
    fn is_mapped(addr: *const u8, len: usize) -> bool {
        let mut vec = vec![0u8; len.div_ceil(PAGE)];
        // SAFETY: mincore only inspects the address range and writes one byte per page
        // into `vec`, which is long enough.
        let rc = unsafe { libc::mincore(addr as *mut libc::c_void, len, vec.as_mut_ptr()) };
        rc == 0
    }

    #[test]
    fn buffers_are_zeroed_and_writable() {
        let alloc = MmapAllocator::default();
        for size in [1, 100, PAGE, PAGE + 1, 1 << 20] {
            let mut buf = alloc.allocate(size).unwrap();
            assert_eq!(buf.len(), size);
            assert!(buf.iter().all(|&b| b == 0));
            buf[0] = 0xcd;
            buf[size - 1] = 0xab;
            assert_eq!(buf[size - 1], 0xab);
            assert_eq!(buf[0], if size == 1 { 0xab } else { 0xcd });
        }
    }

    #[test]
    fn empty_buffers_need_no_mapping() {
        let buf = MmapAllocator::new(0, true).allocate(0).unwrap();
        assert!(buf.is_empty());
    }

    #[test]
    fn drop_unmaps_the_pages() {
        // Large and lazily backed (MAP_NORESERVE), so the check is cheap; other test
        // threads cannot plausibly refill all 64 MiB of the hole in the meantime.
        let len = 64 << 20;
        let buf = MmapAllocator::new(libc::MAP_NORESERVE, false)
            .allocate(len)
            .unwrap();
        let addr = buf.as_ptr();
        assert!(is_mapped(addr, len));
        drop(buf);
        assert!(!is_mapped(addr, len));
    }

    #[test]
    fn extra_flags_are_applied() {
        // MAP_POPULATE pre-faults: the mapping is resident at once.
        let buf = MmapAllocator::new(libc::MAP_POPULATE, false)
            .allocate(8 * PAGE)
            .unwrap();
        let mut vec = vec![0u8; 8];
        // SAFETY: as in `is_mapped`; `vec` has one byte per page of the buffer.
        let rc = unsafe {
            libc::mincore(
                buf.as_ptr() as *mut libc::c_void,
                8 * PAGE,
                vec.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0);
        assert!(
            vec.iter().all(|&v| v & 1 == 1),
            "pages not resident: {vec:?}"
        );
    }

    #[test]
    fn fixed_and_shared_flags_are_ignored() {
        let flags = libc::MAP_FIXED | libc::MAP_SHARED;
        let mut buf = MmapAllocator::new(flags, false).allocate(PAGE).unwrap();
        buf[0] = 1;
        assert_eq!(buf[0], 1);
    }

    fn huge_pages_reserved() -> bool {
        std::fs::read_to_string("/proc/sys/vm/nr_hugepages")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
    }

    #[test]
    fn prefer_huge_falls_back_to_normal_pages() {
        let size = 3 * PAGE + 5;
        let mut buf = MmapAllocator::new(0, true).allocate(size).unwrap();
        assert_eq!(buf.len(), size);
        buf[size - 1] = 7;
        if huge_pages_reserved() {
            assert_eq!(buf.capacity() % default_huge_page_size(), 0);
        } else {
            // No huge pages: the fallback maps exactly what was asked for.
            assert_eq!(buf.capacity(), size);
            // While asking for them explicitly fails instead of falling back.
            let err = MmapAllocator::new(MAP_HUGETLB, false).allocate(size);
            assert!(err.is_err());
        }
    }

    #[test]
    fn huge_page_arithmetic() {
        assert_eq!(round_up(1, 2 << 20), Some(2 << 20));
        assert_eq!(round_up(2 << 20, 2 << 20), Some(2 << 20));
        assert_eq!(round_up((2 << 20) + 1, 2 << 20), Some(4 << 20));
        assert_eq!(round_up(usize::MAX - 3, 2 << 20), None);
        assert_eq!(huge_page_size(30 << MAP_HUGE_SHIFT), 1 << 30);
        assert_eq!(
            parse_huge_page_size("MemTotal: 1 kB\nHugepagesize:    2048 kB\n"),
            Some(2 << 20)
        );
        assert_eq!(parse_huge_page_size("Hugepagesize: x kB"), None);
        assert_eq!(parse_huge_page_size(""), None);
    }

    #[test]
    fn oversized_requests_fail_cleanly() {
        let err = MmapAllocator::new(0, true).allocate(usize::MAX - 3);
        assert!(err.is_err());
    }
}
