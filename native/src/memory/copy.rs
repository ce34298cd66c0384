//! Payload copies into heap buffers: the standard copy, or one with non-temporal
//! (streaming) stores (`MEMCPY_NONTEMPORAL`). Streaming stores write around the cache: the
//! destination lines are not read first and do not evict the consumer's working set, which
//! pays when heaps are large and are read later (or never) rather than at once.

use crate::recv::config::Memcpy;

/// Below this, a streaming copy is not worth its alignment prologue and fence.
const MIN_STREAMING: usize = 256;

/// Copies `src` into `dst` (equal lengths) as `method` says.
pub fn copy_payload(dst: &mut [u8], src: &[u8], method: Memcpy) {
    #[cfg(target_arch = "x86_64")]
    if method == Memcpy::NonTemporal && dst.len() >= MIN_STREAMING && dst.len() == src.len() {
        streaming::copy(dst, src);
        return;
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = method;
    dst.copy_from_slice(src);
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
        let src: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 251) as u8).collect();
        for method in [Memcpy::Std, Memcpy::NonTemporal] {
            for offset in 0..17 {
                for len in [0, 1, 255, 256, 257, 1000, 4000] {
                    let mut dst = vec![0xAAu8; 4200];
                    copy_payload(&mut dst[offset..offset + len], &src[3..3 + len], method);
                    assert_eq!(&dst[offset..offset + len], &src[3..3 + len]);
                    assert!(dst[..offset].iter().all(|&b| b == 0xAA));
                    assert!(dst[offset + len..].iter().all(|&b| b == 0xAA));
                }
            }
        }
    }
}
