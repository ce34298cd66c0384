//! The receive slots of a UDP reader: one buffer, iovec, control buffer and message header
//! per datagram of a `recvmmsg` batch, allocated once.

use std::io;
use std::os::fd::RawFd;
use std::ptr;

use super::gro::{self, ControlBuf};
use super::overflow;

/// Datagrams per recvmmsg call without GRO.
const BATCH: usize = 64;
/// Datagrams per call with GRO. Each slot then takes a whole coalesced datagram (up to 64
/// packets), so fewer slots still hold far more packets while bounding memory to
/// 32 x 64 KiB = 2 MiB per reader.
const GRO_BATCH: usize = 32;
/// The largest UDP payload is 65527 bytes (IPv6), so this holds any datagram, and any GRO
/// super-datagram within the kernel's default 64 KiB GRO limit.
const MAX_SLOT: usize = 65_536;

/// One received datagram.
pub(super) struct Received<'a> {
    pub data: &'a [u8],
    /// The segment size if GRO coalesced several datagrams into `data`.
    pub segment: Option<usize>,
    /// The kernel cut the datagram to the slot size.
    pub truncated: bool,
    /// The socket's drop counter when this datagram was queued (`SO_RXQ_OVFL`).
    pub overflow: Option<u32>,
}

impl Received<'_> {
    /// The datagrams the sender sent that this one stands for: its GRO segments, or 1.
    pub fn datagrams(&self) -> usize {
        match self.segment {
            Some(segment) if segment > 0 => self.data.len().div_ceil(segment),
            _ => 1,
        }
    }
}

pub(super) struct Slots {
    /// The buffers of all slots, back to back, `slot_len` bytes each.
    storage: Vec<u8>,
    slot_len: usize,
    gro: bool,
    iovecs: Vec<libc::iovec>,
    /// One per slot if the socket sends control messages (GRO, drop counter), else none.
    controls: Vec<ControlBuf>,
    headers: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in `iovecs` and `headers` point into this struct's own heap
// allocations (`storage`, `iovecs`, `controls`), which move with it between threads; they
// are only dereferenced, by the kernel, inside `receive`, which holds `&mut self`.
unsafe impl Send for Slots {}

impl Slots {
    /// Slots for datagrams up to `max_size` bytes (one byte more, so larger ones show as
    /// truncated), or for GRO super-datagrams; with control buffers if `gro` or `control`.
    pub fn new(max_size: usize, gro: bool, control: bool) -> Slots {
        let (count, slot_len) = if gro {
            (GRO_BATCH, MAX_SLOT)
        } else {
            (BATCH, max_size.saturating_add(1).min(MAX_SLOT))
        };
        // SAFETY: iovec and mmsghdr are plain C structs of integers and pointers, for which
        // all-zero is a valid value (null pointers, zero lengths); `receive` fills them in.
        let (iovec, header) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
        Slots {
            storage: vec![0; count * slot_len],
            slot_len,
            gro,
            iovecs: vec![iovec; count],
            controls: if gro || control {
                vec![ControlBuf::ZERO; count]
            } else {
                Vec::new()
            },
            headers: vec![header; count],
        }
    }

    /// Receives up to one datagram per slot without blocking; returns how many arrived.
    pub fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
        // Pointers are refreshed on every call (cheap next to the syscall), each taken with
        // `as_mut_ptr`, which creates no reference that would invalidate the others.
        let storage = self.storage.as_mut_ptr();
        for (i, iovec) in self.iovecs.iter_mut().enumerate() {
            // In bounds: `storage` has slot_len bytes per iovec.
            *iovec = libc::iovec {
                iov_base: storage.wrapping_add(i * self.slot_len).cast(),
                iov_len: self.slot_len,
            };
        }
        let iovecs = self.iovecs.as_mut_ptr();
        let controls = self.controls.as_mut_ptr();
        for (i, header) in self.headers.iter_mut().enumerate() {
            // In bounds: `iovecs` (and `controls`, if any) has one entry per header.
            header.msg_hdr.msg_iov = iovecs.wrapping_add(i);
            header.msg_hdr.msg_iovlen = 1;
            if !self.controls.is_empty() {
                header.msg_hdr.msg_control = controls.wrapping_add(i).cast();
                header.msg_hdr.msg_controllen = std::mem::size_of::<ControlBuf>() as _;
            } else {
                header.msg_hdr.msg_control = ptr::null_mut();
                header.msg_hdr.msg_controllen = 0;
            }
            header.msg_hdr.msg_flags = 0;
            header.msg_len = 0;
        }
        // SAFETY: each header points at its own iovec, which points at its own `slot_len`
        // bytes of `storage`, and (if any) at its own control buffer of the stated
        // length, all aligned and alive for the call; the kernel writes at most that much
        // into each and at most `headers.len()` headers.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                self.headers.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((n as usize).min(self.headers.len()))
    }

    /// The datagram in slot `i` after `receive` returned more than `i`.
    pub fn received(&self, i: usize) -> Received<'_> {
        let Some(header) = self.headers.get(i) else {
            return Received {
                data: &[],
                segment: None,
                truncated: false,
                overflow: None,
            };
        };
        let start = i * self.slot_len;
        let len = (header.msg_len as usize).min(self.slot_len);
        let data = self.storage.get(start..start + len).unwrap_or_default();
        let truncated = header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        let control: &[u8] = match self.controls.get(i) {
            Some(control) => {
                #[allow(clippy::unnecessary_cast)] // socklen_t on musl
                let used = (header.msg_hdr.msg_controllen as usize).min(control.bytes.len());
                if header.msg_hdr.msg_flags & libc::MSG_CTRUNC != 0 {
                    log::debug!("UDP control data truncated; a GRO segment size may be lost");
                }
                &control.bytes[..used]
            }
            None => &[],
        };
        Received {
            data,
            segment: if self.gro {
                gro::segment_size(control)
            } else {
                None
            },
            truncated,
            overflow: overflow::count(control),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_sized_for_gro_only_when_on() {
        let plain = Slots::new(9200, false, false);
        assert_eq!(plain.storage.len(), 64 * (9200 + 1));
        assert!(plain.controls.is_empty());
        assert_eq!(Slots::new(9200, false, true).controls.len(), 64);
        let gro = Slots::new(9200, true, false);
        assert_eq!(gro.storage.len(), 32 * 65_536);
        // max_size beyond any datagram is not allocated 64 times over.
        let huge = Slots::new(1 << 30, false, false);
        assert_eq!(huge.storage.len(), 64 * 65_536);
    }
}
