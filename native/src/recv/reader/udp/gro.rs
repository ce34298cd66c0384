//! UDP generic receive offload (GRO): with the `UDP_GRO` socket option on, the kernel may
//! hand over several datagrams of one flow at once, all of one size but a possibly shorter
//! last one, and says so in a `UDP_GRO` control message giving that size. Also the control
//! buffer, integer socket options and the control-message walker, which `overflow` shares.

use std::mem;
use std::ptr;

use socket2::Socket;

use crate::sockopt;

/// Bytes of control data per datagram: the GRO message (24 bytes on 64-bit Linux) with room
/// for others a caller's socket may have asked for (timestamps take up to 64 bytes), so the
/// GRO message is not cut off.
const CONTROL_SPACE: usize = 128;

/// A control buffer, aligned for the `cmsghdr`s the kernel writes at its start.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct ControlBuf {
    _align: [libc::cmsghdr; 0],
    pub bytes: [u8; CONTROL_SPACE],
}

impl ControlBuf {
    pub const ZERO: ControlBuf = ControlBuf {
        _align: [],
        bytes: [0; CONTROL_SPACE],
    };
}

// SAFETY (both): CMSG_LEN and CMSG_SPACE only do arithmetic on their argument.
/// Offset of a control message's data from its header (CMSG_DATA - cmsg).
const DATA_OFFSET: usize = unsafe { libc::CMSG_LEN(0) } as usize;
/// The alignment of control messages in the buffer (CMSG_ALIGN(1)).
const ALIGN: usize = unsafe { libc::CMSG_SPACE(1) } as usize - DATA_OFFSET;

const _: () = assert!(mem::size_of::<libc::cmsghdr>() <= DATA_OFFSET);
const _: () = assert!(ALIGN.is_power_of_two());

/// Turns UDP GRO on where the kernel supports it and also lets it be read back (reading
/// came a few releases after setting), so that `is_enabled` tells the reader reliably
/// whether to split. Returns whether it is on.
pub(super) fn enable(socket: &Socket) -> bool {
    let result = sockopt::get_int(socket, libc::SOL_UDP, libc::UDP_GRO)
        .and_then(|_| sockopt::set_int(socket, libc::SOL_UDP, libc::UDP_GRO, 1));
    if let Err(e) = &result {
        log::debug!("UDP GRO not available ({e}); receiving one datagram at a time");
    }
    result.is_ok()
}

/// Whether the socket has UDP GRO on (false where the kernel cannot say).
pub(super) fn is_enabled(socket: &Socket) -> bool {
    matches!(sockopt::get_int(socket, libc::SOL_UDP, libc::UDP_GRO), Ok(value) if value != 0)
}

/// The segment size in the control data of one received datagram, if it carries a
/// `UDP_GRO` message with a positive size. Every length is checked against `control`, so
/// any bytes at all give an answer.
pub(super) fn segment_size(control: &[u8]) -> Option<usize> {
    let data = find(control, libc::SOL_UDP, libc::UDP_GRO)?;
    let bytes = data.get(..mem::size_of::<libc::c_int>())?;
    let size = libc::c_int::from_ne_bytes(bytes.try_into().ok()?);
    usize::try_from(size).ok().filter(|&s| s > 0)
}

/// The data of the first control message of `level` and `kind` in `control`. Every length
/// is checked against `control`, so any bytes at all give an answer.
pub(super) fn find(control: &[u8], level: libc::c_int, kind: libc::c_int) -> Option<&[u8]> {
    let mut offset = 0;
    loop {
        let rest = control.get(offset..)?;
        if rest.len() < mem::size_of::<libc::cmsghdr>() {
            return None;
        }
        // SAFETY: `rest` holds at least size_of::<cmsghdr>() bytes, read_unaligned needs no
        // alignment, and cmsghdr is plain integers, for which any bytes are a valid value.
        let header: libc::cmsghdr = unsafe { ptr::read_unaligned(rest.as_ptr().cast()) };
        // cmsg_len is a size_t on glibc but a u32 on musl.
        #[allow(clippy::unnecessary_cast)]
        let len = header.cmsg_len as usize;
        let data = rest.get(DATA_OFFSET..len)?;
        if header.cmsg_level == level && header.cmsg_type == kind {
            return Some(data);
        }
        // len >= DATA_OFFSET > 0 here, so the walk always moves on.
        offset = offset.checked_add(len.checked_next_multiple_of(ALIGN)?)?;
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Control data with messages of (level, type, data), laid out as the kernel does.
    pub(in crate::recv::reader::udp) fn control(messages: &[(i32, i32, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(level, kind, data) in messages {
            // SAFETY: cmsghdr is plain integers; all-zero is a valid value.
            let mut header: libc::cmsghdr = unsafe { mem::zeroed() };
            header.cmsg_len = (DATA_OFFSET + data.len()) as _;
            header.cmsg_level = level;
            header.cmsg_type = kind;
            // SAFETY: reads the bytes of a live, fully initialised cmsghdr (its fields
            // cover it without padding on Linux: a size_t and two ints, or u32 + pad + ints).
            let raw = unsafe {
                std::slice::from_raw_parts(
                    (&header as *const libc::cmsghdr).cast::<u8>(),
                    mem::size_of::<libc::cmsghdr>(),
                )
            };
            out.extend_from_slice(raw);
            out.resize(out.len() + DATA_OFFSET - raw.len(), 0);
            out.extend_from_slice(data);
            out.resize(out.len().next_multiple_of(ALIGN), 0);
        }
        out
    }

    const GRO: (i32, i32) = (libc::SOL_UDP, libc::UDP_GRO);

    #[test]
    fn finds_the_gro_size_among_other_messages() {
        let size = 1472i32.to_ne_bytes();
        let timestamp = [9u8; 16];
        assert_eq!(segment_size(&control(&[(GRO.0, GRO.1, &size)])), Some(1472));
        let both = control(&[(libc::SOL_SOCKET, 35, &timestamp), (GRO.0, GRO.1, &size)]);
        assert_eq!(segment_size(&both), Some(1472));
        assert_eq!(
            segment_size(&control(&[(libc::SOL_SOCKET, 35, &timestamp)])),
            None
        );
        assert_eq!(segment_size(&[]), None);
    }

    #[test]
    fn bogus_control_data_gives_no_size() {
        // A size of zero or below must never be used to split (division by zero, no end).
        for bad in [0i32, -1, i32::MIN] {
            let bytes = bad.to_ne_bytes();
            assert_eq!(segment_size(&control(&[(GRO.0, GRO.1, &bytes)])), None);
        }
        // Too little data for an int.
        assert_eq!(segment_size(&control(&[(GRO.0, GRO.1, &[1, 2])])), None);
        // Lengths that point outside the buffer, or back into the header.
        let good = control(&[(GRO.0, GRO.1, &1000i32.to_ne_bytes())]);
        for len in [0usize, 1, DATA_OFFSET - 1, good.len() + 1, usize::MAX] {
            let mut bad = good.clone();
            // SAFETY: as in segment_size: enough bytes, no alignment needed, plain integers.
            let mut header: libc::cmsghdr = unsafe { ptr::read_unaligned(bad.as_ptr().cast()) };
            header.cmsg_len = len as _;
            // SAFETY: `bad` is longer than a cmsghdr; write_unaligned needs no alignment.
            unsafe { ptr::write_unaligned(bad.as_mut_ptr().cast(), header) };
            assert_eq!(segment_size(&bad), None, "cmsg_len {len}");
        }
        // Cut off anywhere: never a panic, and a size only if the whole int is there.
        for cut in 0..good.len() {
            let got = segment_size(&good[..cut]);
            assert!(got.is_none() || cut >= DATA_OFFSET + 4, "cut {cut}");
        }
        // Arbitrary bytes.
        let mut state = 12345u32;
        for _ in 0..2000 {
            let noise: Vec<u8> = (0..64)
                .map(|_| {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (state >> 16) as u8
                })
                .collect();
            let _ = segment_size(&noise);
        }
    }

    #[test]
    fn options_round_trip_on_this_kernel() {
        let socket = Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .unwrap();
        assert!(!is_enabled(&socket));
        assert!(enable(&socket), "this kernel has UDP GRO");
        assert!(is_enabled(&socket));
    }
}
