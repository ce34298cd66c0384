//! UDP generic segmentation offload (GSO) for the UDP writer: runs of consecutive packets to
//! one destination, all of one length except a possibly shorter last one, go to the kernel
//! as one message with a `UDP_SEGMENT` control message; the kernel (or the NIC) cuts it
//! back into exactly the datagrams that separate sends would have produced.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::ops::Range;

use socket2::{SockAddr, Socket};

use super::super::OutPacket;
use super::{iovec_of, message_header, MAX_IOV};
use crate::sockopt;

/// Most segments per message: the kernel's UDP_MAX_SEGMENTS (64 before Linux 6.9).
pub(super) const MAX_SEGMENTS: usize = 64;
/// Room left below the largest UDP payload for IP options or IPv6 extension headers.
const PAYLOAD_MARGIN: usize = 64;
/// Largest UDP payload: 65535 less the IPv4 and UDP headers, or less the UDP header only
/// for IPv6 (whose payload length excludes its own header).
const MAX_PAYLOAD_V4: usize = 65_507;
const MAX_PAYLOAD_V6: usize = 65_527;
/// Refusals that depend on sizes (EINVAL: segment above the route's MTU; EMSGSIZE) allowed
/// before GSO is given up for the writer.
const MAX_SIZE_FAILURES: u32 = 8;

/// The control message of a GSO send: a `cmsghdr` then the segment size as a u16.
#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct SegmentControl {
    header: libc::cmsghdr,
    segment: u16,
    /// Explicit (zeroed) padding up to CMSG_SPACE, so the kernel reads no undefined bytes.
    _padding: [u8; CONTROL_SPACE - CONTROL_LEN],
}

// Older rustc (the image builds with 1.85) does not count the const asserts below as a use.
// SAFETY (all three): CMSG_LEN and CMSG_SPACE only do arithmetic on their argument.
#[allow(dead_code)]
const CONTROL_DATA: usize = unsafe { libc::CMSG_LEN(0) } as usize;
const CONTROL_LEN: usize = unsafe { libc::CMSG_LEN(mem::size_of::<u16>() as u32) } as usize;
const CONTROL_SPACE: usize = unsafe { libc::CMSG_SPACE(mem::size_of::<u16>() as u32) } as usize;

// The struct must be laid out exactly as CMSG_DATA and CMSG_SPACE expect: the data right
// after the header where CMSG_DATA points, and nothing beyond CMSG_SPACE, so (with the
// explicit padding) it has no implicit padding either.
const _: () = assert!(mem::size_of::<libc::cmsghdr>() == CONTROL_DATA);
const _: () = assert!(mem::offset_of!(SegmentControl, segment) == CONTROL_DATA);
const _: () = assert!(mem::size_of::<SegmentControl>() == CONTROL_SPACE);
const _: () = assert!(mem::align_of::<SegmentControl>() == mem::align_of::<libc::cmsghdr>());

impl SegmentControl {
    fn new(segment: u16) -> SegmentControl {
        // SAFETY: cmsghdr is a plain C struct of integers; all-zero is a valid value.
        let mut header: libc::cmsghdr = unsafe { mem::zeroed() };
        header.cmsg_len = CONTROL_LEN as _;
        header.cmsg_level = libc::SOL_UDP;
        header.cmsg_type = libc::UDP_SEGMENT;
        SegmentControl {
            header,
            segment,
            _padding: [0; CONTROL_SPACE - CONTROL_LEN],
        }
    }
}

/// One message of a batch: `count` packets from `first`, coalesced when `segment` != 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Message {
    pub first: usize,
    pub count: usize,
    /// GSO segment size (the length of every packet but the last), or 0 for one datagram.
    pub segment: u16,
    /// Total payload bytes.
    pub bytes: usize,
}

/// Where a packet of the batch is: its iovecs in the scratch space, length, substream.
#[derive(Clone, Debug)]
pub(super) struct Span {
    pub iovecs: Range<usize>,
    pub len: usize,
    pub substream: usize,
}

/// Whether, and within which limits, the writer coalesces packets.
pub(super) struct GsoState {
    enabled: bool,
    /// Largest payload of one coalesced message.
    max_bytes: usize,
    /// Per destination: the smallest segment size the kernel refused (usize::MAX if none);
    /// only smaller segments are coalesced for it.
    refused_sizes: Vec<usize>,
    size_failures: u32,
    /// Coalesced messages the kernel accepted, and refused (for tests and diagnostics).
    pub sent: u64,
    pub refused: u64,
}

/// Setting this to `0` turns GSO off for writers created afterwards. Per-packet tools
/// between sender and wire (tc filters and policers on the sending host, which see a
/// coalesced message as one packet) then see every packet.
pub const DISABLE_VAR: &str = "SPEAD2_UDP_GSO";

fn allowed_by_environment() -> bool {
    std::env::var_os(DISABLE_VAR).is_none_or(|v| v != "0")
}

impl GsoState {
    pub fn new(socket: &Socket, endpoints: &[SocketAddr]) -> GsoState {
        let enabled = if !allowed_by_environment() {
            log::debug!("{DISABLE_VAR}=0: sending one datagram per packet");
            false
        } else {
            match sockopt::get_int(socket, libc::SOL_UDP, libc::UDP_SEGMENT) {
                Ok(_) => true,
                Err(e) => {
                    log::debug!("UDP GSO not available ({e}); sending one datagram per packet");
                    false
                }
            }
        };
        let max_payload = if endpoints.iter().any(SocketAddr::is_ipv6) {
            MAX_PAYLOAD_V6
        } else {
            MAX_PAYLOAD_V4
        };
        GsoState {
            enabled,
            max_bytes: max_payload - PAYLOAD_MARGIN,
            refused_sizes: vec![usize::MAX; endpoints.len()],
            size_failures: 0,
            sent: 0,
            refused: 0,
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Turns GSO off for good (tests use it to get the plain path).
    pub fn disable(&mut self) {
        self.enabled = false;
    }

    /// The segment size for a run starting with a packet of `len` bytes to `substream`, if
    /// such a run may be coalesced at all.
    fn segment_for(&self, substream: usize, len: usize) -> Option<u16> {
        let below_refused = self.refused_sizes.get(substream).is_some_and(|&r| len < r);
        let fits = len > 0 && 2 * len <= self.max_bytes;
        if self.enabled && below_refused && fits {
            u16::try_from(len).ok()
        } else {
            None
        }
    }

    /// Learns from a coalesced message the kernel refused although its packets could be
    /// sent one by one.
    pub fn failed(&mut self, error: &io::Error, message: &Message, substream: usize) {
        match error.raw_os_error() {
            Some(libc::EINVAL) => {
                // Most likely a segment above the route's MTU (a GSO segment is never
                // fragmented): keep coalescing smaller packets to this destination.
                let segment = usize::from(message.segment);
                if let Some(refused) = self.refused_sizes.get_mut(substream) {
                    *refused = (*refused).min(segment);
                }
                self.size_failures += 1;
                log::debug!("UDP GSO refused segments of {segment} bytes: {error}");
            }
            Some(libc::EMSGSIZE) => {
                self.max_bytes = self.max_bytes.min(message.bytes.saturating_sub(1));
                self.size_failures += 1;
                log::debug!("UDP GSO refused {} bytes: {error}", message.bytes);
            }
            _ => self.give_up(error),
        }
        if self.enabled && self.size_failures >= MAX_SIZE_FAILURES {
            self.give_up(error);
        }
    }

    fn give_up(&mut self, error: &io::Error) {
        if self.enabled {
            log::info!("UDP GSO failed ({error}); sending one datagram per packet from now on");
        }
        self.enabled = false;
    }
}

/// Errors by which the kernel may refuse a GSO message whose packets would go through one
/// by one: no checksum offload on the device (EIO), segments above the MTU or a socket
/// that cannot do GSO (EINVAL), no GSO support (ENOPROTOOPT, EOPNOTSUPP), too large in
/// total (EMSGSIZE).
pub(super) fn may_be_gso_error(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP | libc::EMSGSIZE)
    )
}

/// Splits the packets of a batch into messages: each run of packets to one destination with
/// the length of its first packet (the last may be shorter) becomes one message, within the
/// kernel's limits on segments, payload and iovecs.
/// Plans from packet `first` on.
pub(super) fn plan(spans: &[Span], mut first: usize, gso: &GsoState, messages: &mut Vec<Message>) {
    while let Some(lead) = spans.get(first) {
        let mut message = Message {
            first,
            count: 1,
            segment: 0,
            bytes: lead.len,
        };
        if let Some(segment) = gso.segment_for(lead.substream, lead.len) {
            let mut iovecs = lead.iovecs.len();
            for next in &spans[first + 1..] {
                let joins = next.substream == lead.substream
                    && next.len > 0
                    && next.len <= lead.len
                    && message.count < MAX_SEGMENTS
                    && message.bytes + next.len <= gso.max_bytes
                    && iovecs + next.iovecs.len() <= MAX_IOV;
                if !joins {
                    break;
                }
                message.count += 1;
                message.bytes += next.len;
                iovecs += next.iovecs.len();
                if next.len < lead.len {
                    break; // a shorter segment can only be the last
                }
            }
            if message.count > 1 {
                message.segment = segment;
            }
        }
        messages.push(message);
        first += message.count;
    }
}

/// A pointer to the iovecs `range` of `iovecs` and their count. Taken with `as_mut_ptr`,
/// which creates no reference, so pointers taken earlier stay valid.
pub(super) fn iovec_ptr(
    iovecs: &mut Vec<libc::iovec>,
    range: &Range<usize>,
) -> (*mut libc::iovec, usize) {
    let end = range.end.min(iovecs.len());
    let start = range.start.min(end);
    (iovecs.as_mut_ptr().wrapping_add(start), end - start)
}

/// Space reused by every `write`. It holds raw pointers into the packets of the current
/// call, which `clear` drops before `write` returns.
#[derive(Default)]
pub(super) struct Scratch {
    pub iovecs: Vec<libc::iovec>,
    pub spans: Vec<Span>,
    pub messages: Vec<Message>,
    controls: Vec<SegmentControl>,
    pub headers: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers inside (iovecs and headers) are only dereferenced, by the
// kernel, during the `write` call that set them, which holds the writer exclusively; between
// calls the vectors are empty. Moving the writer to another thread therefore shares nothing.
unsafe impl Send for Scratch {}

impl Scratch {
    /// Records where the bytes of `packets` are; `flat` holds copies of the packets with
    /// more than MAX_IOV slices, in order.
    pub fn prepare(&mut self, packets: &[OutPacket<'_>], flat: &[Vec<u8>]) {
        self.clear();
        let mut flat = flat.iter();
        for packet in packets {
            let start = self.iovecs.len();
            let copy = if packet.slices.len() > MAX_IOV {
                flat.next()
            } else {
                None
            };
            match copy {
                Some(bytes) => self.iovecs.push(iovec_of(bytes)),
                None => self
                    .iovecs
                    .extend(packet.slices.iter().map(|s| iovec_of(s))),
            }
            let iovecs = start..self.iovecs.len();
            let len = self.iovecs[iovecs.clone()].iter().map(|v| v.iov_len).sum();
            self.spans.push(Span {
                iovecs,
                len,
                substream: packet.substream,
            });
        }
    }

    /// Plans the messages for the packets from `first` on and builds their headers.
    pub fn lay_out(&mut self, first: usize, gso: &GsoState, destinations: &[SockAddr]) {
        self.messages.clear();
        self.controls.clear();
        self.headers.clear();
        plan(&self.spans, first, gso, &mut self.messages);
        // `controls` is complete before any pointer into it is taken below.
        self.controls
            .extend(self.messages.iter().map(|m| SegmentControl::new(m.segment)));
        let controls = self.controls.as_mut_ptr();
        for (i, message) in self.messages.iter().enumerate() {
            let lead = &self.spans[message.first];
            let last = &self.spans[message.first + message.count - 1];
            let iovecs = iovec_ptr(&mut self.iovecs, &(lead.iovecs.start..last.iovecs.end));
            let mut header = message_header(&destinations[lead.substream], iovecs);
            if message.segment != 0 {
                // In bounds: `controls` has one entry per message.
                header.msg_hdr.msg_control = controls.wrapping_add(i).cast();
                header.msg_hdr.msg_controllen = CONTROL_SPACE as _;
            }
            self.headers.push(header);
        }
    }

    pub fn clear(&mut self) {
        self.iovecs.clear();
        self.spans.clear();
        self.messages.clear();
        self.controls.clear();
        self.headers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(enabled: bool, destinations: usize) -> GsoState {
        GsoState {
            enabled,
            max_bytes: MAX_PAYLOAD_V4 - PAYLOAD_MARGIN,
            refused_sizes: vec![usize::MAX; destinations],
            size_failures: 0,
            sent: 0,
            refused: 0,
        }
    }

    /// Spans of (length, substream) with `iovecs` slices each.
    fn spans(packets: &[(usize, usize)], iovecs: usize) -> Vec<Span> {
        packets
            .iter()
            .enumerate()
            .map(|(i, &(len, substream))| Span {
                iovecs: i * iovecs..(i + 1) * iovecs,
                len,
                substream,
            })
            .collect()
    }

    /// (first, count, segment) of each planned message.
    fn planned(
        gso: &GsoState,
        packets: &[(usize, usize)],
        iovecs: usize,
    ) -> Vec<(usize, usize, u16)> {
        let mut messages = Vec::new();
        plan(&spans(packets, iovecs), 0, gso, &mut messages);
        let covered: usize = messages.iter().map(|m| m.count).sum();
        assert_eq!(covered, packets.len());
        messages
            .iter()
            .map(|m| (m.first, m.count, m.segment))
            .collect()
    }

    #[test]
    fn runs_end_at_a_new_destination_or_after_a_shorter_packet() {
        let gso = state(true, 2);
        let packets = [
            (1000, 0),
            (1000, 0),
            (400, 0), // shorter: ends the run
            (1000, 0),
            (1000, 1), // other destination
            (1000, 1),
            (1200, 1), // longer than the run's segment: starts a new one
            (0, 1),    // empty packets are never coalesced
            (5, 1),
        ];
        assert_eq!(
            planned(&gso, &packets, 2),
            [
                (0, 3, 1000),
                (3, 1, 0),
                (4, 2, 1000),
                (6, 1, 0),
                (7, 1, 0),
                (8, 1, 0)
            ]
        );
    }

    #[test]
    fn runs_respect_segment_payload_and_iovec_limits() {
        let gso = state(true, 1);
        // 100 equal packets: 64 segments, then the rest.
        let small = vec![(100, 0); 100];
        assert_eq!(planned(&gso, &small, 1), [(0, 64, 100), (64, 36, 100)]);
        // 1472-byte packets: at most (65507 - 64) / 1472 = 44 per message.
        let mtu = vec![(1472, 0); 64];
        assert_eq!(planned(&gso, &mtu, 3), [(0, 44, 1472), (44, 20, 1472)]);
        // 8972-byte packets: 7 per message.
        let jumbo = vec![(8972, 0); 8];
        assert_eq!(planned(&gso, &jumbo, 3), [(0, 7, 8972), (7, 1, 0)]);
        // More than half the payload limit (or above u16) cannot be coalesced at all.
        let big = vec![(40_000, 0); 3];
        assert_eq!(planned(&gso, &big, 1), [(0, 1, 0), (1, 1, 0), (2, 1, 0)]);
        // 100 iovecs per packet: at most 10 packets within 1024 iovecs.
        let many = vec![(100, 0); 12];
        assert_eq!(planned(&gso, &many, 100), [(0, 10, 100), (10, 2, 100)]);
    }

    #[test]
    fn disabled_or_refused_sizes_are_sent_singly() {
        let packets = [(1000, 0), (1000, 0), (1000, 1), (1000, 1)];
        let off = state(false, 2);
        assert_eq!(
            planned(&off, &packets, 1),
            [(0, 1, 0), (1, 1, 0), (2, 1, 0), (3, 1, 0)]
        );
        let mut gso = state(true, 2);
        let message = Message {
            first: 0,
            count: 2,
            segment: 1000,
            bytes: 2000,
        };
        gso.failed(&io::Error::from_raw_os_error(libc::EINVAL), &message, 0);
        assert!(gso.is_enabled());
        assert_eq!(
            planned(&gso, &packets, 1),
            [(0, 1, 0), (1, 1, 0), (2, 2, 1000)]
        );
        // Smaller segments to the refusing destination are still coalesced.
        assert_eq!(planned(&gso, &[(999, 0), (999, 0)], 1), [(0, 2, 999)]);
    }

    #[test]
    fn repeated_or_fatal_refusals_turn_gso_off() {
        let message = Message {
            first: 0,
            count: 2,
            segment: 1000,
            bytes: 2000,
        };
        let mut gso = state(true, 1);
        gso.failed(&io::Error::from_raw_os_error(libc::EMSGSIZE), &message, 0);
        assert_eq!(gso.max_bytes, 1999);
        assert!(gso.is_enabled());
        for _ in 1..MAX_SIZE_FAILURES {
            assert!(gso.is_enabled());
            gso.failed(&io::Error::from_raw_os_error(libc::EINVAL), &message, 0);
        }
        assert!(!gso.is_enabled());
        for errno in [libc::EIO, libc::ENOPROTOOPT, libc::EOPNOTSUPP] {
            let mut gso = state(true, 1);
            gso.failed(&io::Error::from_raw_os_error(errno), &message, 0);
            assert!(!gso.is_enabled(), "errno {errno}");
        }
    }

    #[test]
    fn control_message_is_what_the_kernel_expects() {
        let control = SegmentControl::new(1472);
        // SAFETY: SegmentControl is repr(C) without implicit padding (checked above), so
        // all of its CONTROL_SPACE bytes are initialised.
        let bytes: &[u8] = unsafe {
            std::slice::from_raw_parts((&control as *const SegmentControl).cast(), CONTROL_SPACE)
        };
        assert_eq!(CONTROL_LEN, CONTROL_DATA + 2);
        assert_eq!(&bytes[CONTROL_DATA..CONTROL_LEN], 1472u16.to_ne_bytes());
        assert!(bytes[CONTROL_LEN..].iter().all(|&b| b == 0));
        assert_eq!(control.header.cmsg_len, CONTROL_LEN);
        assert_eq!(control.header.cmsg_level, 17);
        assert_eq!(control.header.cmsg_type, 103);
    }
}
