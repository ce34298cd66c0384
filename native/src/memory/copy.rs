//! Payload copies into heap buffers: the standard copy, or one with non-temporal
//! (streaming) stores (`MEMCPY_NONTEMPORAL`). Streaming stores write around the cache: the
//! destination lines are not read first and do not evict the consumer's working set, which
//! pays when heaps are large and are read later (or never) rather than at once.
//!
//! A standard copy of a large packet from memory that is not in cache (`Source::Memory`: a
//! large buffer given to `add_buffer_reader`) prefetches its source well ahead: one core's
//! hardware prefetcher alone keeps too few DRAM lines in flight to use the memory's
//! bandwidth. On the 2-core EPYC VM of bench/README.md, copying 8936-byte payloads out of a
//! 270 MB buffer ran at 26-28 GB/s with libc's `memcpy` and at 32-34 GB/s with the loop
//! below. From cache (a datagram the kernel has just written, `Source::Cache`) libc's
//! `memcpy` is faster (its AVX-512 loop took 9.4% of a UDP receiver's samples where ours took
//! 13.7%), so it is used there.

use crate::recv::config::Memcpy;

/// Below this, a streaming copy is not worth its alignment prologue and fence.
const MIN_STREAMING: usize = 256;

/// From this size, a standard copy prefetches (a whole jumbo-frame payload, not a 1500-byte
/// one, whose source is nearly always in cache already).
const MIN_PREFETCHING: usize = 4096;

/// Where the bytes to copy most likely are, as the reader that holds them knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Just written by the kernel or by us (a received datagram, a read buffer).
    Cache,
    /// A large buffer in memory, read once from start to end.
    Memory,
}

/// Copies `src` into `dst` (equal lengths) as `method` says.
pub fn copy_payload(dst: &mut [u8], src: &[u8], method: Memcpy, source: Source) {
    #[cfg(target_arch = "x86_64")]
    if dst.len() == src.len() {
        if method == Memcpy::NonTemporal && dst.len() >= MIN_STREAMING {
            streaming::copy(dst, src);
            return;
        }
        if method == Memcpy::Std && source == Source::Memory && dst.len() >= MIN_PREFETCHING {
            prefetching::copy(dst, src);
            return;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (method, source);
    dst.copy_from_slice(src);
}

#[cfg(target_arch = "x86_64")]
mod prefetching {
    use std::arch::x86_64::{
        __m128i, _mm_loadu_si128, _mm_prefetch, _mm_storeu_si128, _MM_HINT_T0,
    };

    const LANE: usize = 16;
    const BLOCK: usize = 4 * LANE;
    /// How far ahead of the copy the source is requested: 128 lines (measured best among
    /// 0.5-16 KiB; nearer leaves DRAM latency exposed, farther evicts lines before use).
    const DISTANCE: usize = 8192;

    /// SSE2 copy (part of the x86_64 baseline, so no runtime check) with a prefetch per line.
    pub fn copy(dst: &mut [u8], src: &[u8]) {
        debug_assert_eq!(dst.len(), src.len());
        let blocks = dst.len() / BLOCK;
        let (dst_blocks, dst_tail) = dst.split_at_mut(blocks * BLOCK);
        let (src_blocks, src_tail) = src.split_at(blocks * BLOCK);
        for (d, s) in dst_blocks
            .chunks_exact_mut(BLOCK)
            .zip(src_blocks.chunks_exact(BLOCK))
        {
            let ahead = s.as_ptr().wrapping_add(DISTANCE).cast::<i8>();
            // SAFETY: a prefetch is a hint that never faults and reads nothing into the
            // program, so any address is sound (`wrapping_add` makes forming it defined even
            // past the end of `src`). `d` and `s` are exactly BLOCK (64) bytes, so the four
            // unaligned 16-byte loads from `s` and stores to `d` at offsets 0, 16, 32, 48
            // stay in bounds; `d` is a `&mut` borrow, so it does not overlap `s`. SSE and
            // SSE2 are always available on x86_64.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(ahead);
                let sp = s.as_ptr() as *const __m128i;
                let dp = d.as_mut_ptr() as *mut __m128i;
                let a = _mm_loadu_si128(sp);
                let b = _mm_loadu_si128(sp.add(1));
                let c = _mm_loadu_si128(sp.add(2));
                let e = _mm_loadu_si128(sp.add(3));
                _mm_storeu_si128(dp, a);
                _mm_storeu_si128(dp.add(1), b);
                _mm_storeu_si128(dp.add(2), c);
                _mm_storeu_si128(dp.add(3), e);
            }
        }
        dst_tail.copy_from_slice(src_tail);
    }
}

#[cfg(target_arch = "x86_64")]
mod streaming {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};

    const LANE: usize = 16;
    const BLOCK: usize = 4 * LANE;

    /// SSE2 streaming copy; SSE2 is part of the x86_64 baseline, so no runtime check.
    pub fn copy(dst: &mut [u8], src: &[u8]) {
        debug_assert_eq!(dst.len(), src.len());
        let head = dst.as_ptr().align_offset(LANE).min(dst.len());
        let (dst_head, dst_body) = dst.split_at_mut(head);
        let (src_head, src_body) = src.split_at(head);
        dst_head.copy_from_slice(src_head);
        let blocks = dst_body.len() / BLOCK;
        let (dst_blocks, dst_tail) = dst_body.split_at_mut(blocks * BLOCK);
        let (src_blocks, src_tail) = src_body.split_at(blocks * BLOCK);
        for (d, s) in dst_blocks
            .chunks_exact_mut(BLOCK)
            .zip(src_blocks.chunks_exact(BLOCK))
        {
            // SAFETY: `d` and `s` are exactly BLOCK (64) bytes, so the four 16-byte loads
            // from `s` and stores to `d` at offsets 0, 16, 32, 48 stay in bounds. Loads are
            // unaligned (`loadu`). `d` starts at a multiple of BLOCK from `dst_body`, whose
            // start is 16-byte aligned (the `align_offset` split above), so every store
            // address is 16-byte aligned as `_mm_stream_si128` requires. SSE2 is always
            // available on x86_64.
            unsafe {
                let sp = s.as_ptr() as *const __m128i;
                let dp = d.as_mut_ptr() as *mut __m128i;
                let a = _mm_loadu_si128(sp);
                let b = _mm_loadu_si128(sp.add(1));
                let c = _mm_loadu_si128(sp.add(2));
                let e = _mm_loadu_si128(sp.add(3));
                _mm_stream_si128(dp, a);
                _mm_stream_si128(dp.add(1), b);
                _mm_stream_si128(dp.add(2), c);
                _mm_stream_si128(dp.add(3), e);
            }
        }
        dst_tail.copy_from_slice(src_tail);
        // SAFETY: a store fence has no memory operands. It orders the streaming stores
        // before the later release of the heap to the consumer (streaming stores are weakly
        // ordered, so without it another thread could see stale bytes).
        unsafe { _mm_sfence() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alignment_and_length_copies_exactly() {
        let src: Vec<u8> = (0..4200u32).map(|i| (i * 31 % 251) as u8).collect();
        let methods = [Memcpy::Std, Memcpy::NonTemporal];
        for (method, source) in methods
            .into_iter()
            .flat_map(|m| [(m, Source::Cache), (m, Source::Memory)])
        {
            for offset in 0..17 {
                for len in [0, 1, 255, 256, 257, 1000, 4000, 4096, 4097, 4159] {
                    let mut dst = vec![0xAAu8; 4200 + 17];
                    copy_payload(
                        &mut dst[offset..offset + len],
                        &src[3..3 + len],
                        method,
                        source,
                    );
                    assert_eq!(&dst[offset..offset + len], &src[3..3 + len]);
                    assert!(dst[..offset].iter().all(|&b| b == 0xAA));
                    assert!(dst[offset + len..].iter().all(|&b| b == 0xAA));
                }
            }
        }
    }
}
