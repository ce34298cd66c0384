//! The sans-IO packetiser: cuts one `SendHeap` into SPEAD packets, byte-identical to
//! spead2 4.5.1's `PacketGenerator`.
//!
//! API summary (the send stream and the bindings build on this):
//! - `PacketGenerator::new(&heap, cnt, max_packet_size) -> Result<PacketGenerator, PacketError>`
//!   lays the heap out once (pointer block, payload chunks, padding). It takes its own
//!   references (`Arc` clones) to the item buffers, so it does not borrow the heap.
//! - Zero-copy: `next_packet(&mut PacketParts) -> bool` fills a reusable header buffer (packet
//!   header + item pointers) and a list of `Segment`s naming payload bytes;
//!   `slices(&PacketParts)` resolves them to `&[u8]` (header first) for writev/sendmmsg.
//! - Copying: `next_packet_bytes(&mut Vec<u8>) -> bool` APPENDS the next packet to `out`.
//! - `check_cnt(flavour, cnt)` is the stream's explicit-cnt check (EINVAL in spead2); the
//!   generator itself, like spead2's, does not mask or check anything it ORs into pointers.
//!
//! Rules (established against the real wheel, pinned by the vectors in testdata/send):
//! - `max_packet_size` is rounded down to a multiple of 8; at least 56 bytes are needed
//!   (header, 4 framing immediates, one pointer and 8 bytes of payload).
//! - Each packet: header, HEAP_CNT, HEAP_LEN, PAYLOAD_OFFSET, PAYLOAD_LEN (immediates), then
//!   up to P = (size - 48) / 8 item pointers in the order items were added (all of them in
//!   every packet with `repeat_pointers`, which needs n + 1 <= P), then as much payload as fits.
//! - An item is immediate if it is `ItemValue::Immediate`, or allowed and at most
//!   heap_address_bits/8 bytes (value right-aligned, big-endian); other items are addressed,
//!   laid out back to back in the order they were added.
//! - The payload must be at least 8 * floor(n / P) + 1 bytes (n = item pointers) so that every
//!   packet carries payload; when shorter, zeros pad it to that length and a NULL (id 0)
//!   pointer addressed at the end of the real payload is appended to the pointers.
//! - Pointers are `flag | id << heap_address_bits | value` with no masking, and the header's
//!   pointer count is truncated to 16 bits, exactly as spead2 does.

use std::fmt;
use std::io::IoSlice;

use crate::memory::SharedBytes;
use crate::protocol::ids::{HEAP_CNT_ID, HEAP_LENGTH_ID, PAYLOAD_LENGTH_ID, PAYLOAD_OFFSET_ID};
use crate::protocol::packet::{emit_header, HEADER_SIZE, POINTER_SIZE};
use crate::protocol::Flavour;
use crate::send::heap::{ItemValue, SendHeap};

/// Header plus the four framing immediates.
const PREFIX_SIZE: usize = HEADER_SIZE + 4 * POINTER_SIZE;
/// Payload every packet must be able to carry after a full load of pointers.
const MIN_PAYLOAD: usize = 8;
/// The smallest usable `max_packet_size`: prefix, one item pointer and 8 bytes of payload.
pub const MIN_PACKET_SIZE: usize = PREFIX_SIZE + POINTER_SIZE + MIN_PAYLOAD;
const IMMEDIATE_FLAG: u64 = 1 << 63;
/// Padding is served from this; a `Segment::Zeros` is never longer.
static ZEROS: [u8; 4096] = [0; 4096];

/// Why a heap cannot be packetised (or sent with the requested cnt).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketError {
    /// `max_packet_size` < 56 after rounding down to a multiple of 8 (spead2: ValueError).
    PacketSizeTooSmall,
    /// `repeat_pointers` and all pointers plus a spare do not fit one packet (ValueError).
    TooSmallToRepeatPointers,
    /// An explicit cnt does not fit heap_address_bits (spead2: OSError EINVAL).
    CntTooLarge,
}

impl PacketError {
    /// The errno spead2 reports, for errors it raises as OSError.
    pub fn errno(self) -> Option<i32> {
        match self {
            Self::CntTooLarge => Some(libc::EINVAL),
            Self::PacketSizeTooSmall | Self::TooSmallToRepeatPointers => None,
        }
    }
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PacketSizeTooSmall => "packet size is too small",
            Self::TooSmallToRepeatPointers => "packet size is too small to repeat item pointers",
            Self::CntTooLarge => "Invalid argument",
        })
    }
}

impl std::error::Error for PacketError {}

/// The check a stream applies to an explicit cnt (auto-allocated cnts are masked instead).
pub fn check_cnt(flavour: Flavour, cnt: u64) -> Result<(), PacketError> {
    if cnt > flavour.address_mask() {
        return Err(PacketError::CntTooLarge);
    }
    Ok(())
}

/// A piece of a packet's payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment {
    /// `len` bytes from `offset` in the generator's payload item `index`.
    Item {
        index: usize,
        offset: usize,
        len: usize,
    },
    /// `len` (at most 4096) zero bytes of padding.
    Zeros(usize),
}

/// One packet as a header block and payload segments; reused across packets so that the
/// steady state allocates nothing.
#[derive(Clone, Debug, Default)]
pub struct PacketParts {
    /// Packet header and every item pointer of the packet.
    pub header: Vec<u8>,
    pub segments: Vec<Segment>,
}

impl PacketParts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Total bytes of the packet.
    pub fn len(&self) -> usize {
        self.header.len() + self.segments.iter().map(Segment::len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.header.is_empty() && self.segments.is_empty()
    }
}

impl Segment {
    pub fn len(&self) -> usize {
        match *self {
            Segment::Item { len, .. } => len,
            Segment::Zeros(len) => len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where the next packet's payload starts: in payload item `item` at `offset`, or (when
/// `item == items.len()`) `offset` bytes into the padding.
#[derive(Clone, Copy, Debug, Default)]
struct Cursor {
    item: usize,
    offset: usize,
}

/// Cuts one heap into packets. See the module documentation for the rules.
pub struct PacketGenerator {
    heap_address_bits: u32,
    cnt: u64,
    /// Big-endian HEAP_CNT and HEAP_LEN pointers, identical in every packet.
    cnt_pointer: [u8; 8],
    length_pointer: [u8; 8],
    /// Every item pointer (NULL padding pointer included), big-endian, back to back.
    pointers: Vec<u8>,
    repeat_pointers: bool,
    /// Item pointers per packet (when not repeating).
    max_pointers: usize,
    /// `max_packet_size` rounded down to a multiple of 8.
    packet_size: usize,
    /// Non-empty addressed item buffers, in payload order, with their lengths at layout time.
    items: Vec<(SharedBytes, usize)>,
    padding: usize,
    heap_length: usize,
    /// Item pointers already sent (non-repeating mode).
    pointers_sent: usize,
    /// Payload bytes already sent.
    payload_sent: usize,
    cursor: Cursor,
}

/// The pointers and payload layout of a heap, before padding.
struct Layout {
    pointers: Vec<u8>,
    n_pointers: usize,
    items: Vec<(SharedBytes, usize)>,
    payload_length: usize,
}

impl Layout {
    fn of(heap: &SendHeap) -> Layout {
        let hab = heap.flavour.heap_address_bits();
        let max_immediate = heap.flavour.heap_address_bytes();
        let mut layout = Layout {
            pointers: Vec::with_capacity((heap.items.len() + 1) * POINTER_SIZE),
            n_pointers: 0,
            items: Vec::new(),
            payload_length: 0,
        };
        for item in &heap.items {
            let pointer = match &item.value {
                ItemValue::Immediate(value) => immediate(item.id, *value, hab),
                ItemValue::Bytes {
                    data,
                    allow_immediate,
                } => {
                    let bytes: &[u8] = (**data).as_ref();
                    if *allow_immediate && bytes.len() <= max_immediate {
                        immediate(item.id, be_value(bytes), hab)
                    } else {
                        let address = layout.payload_length as u64;
                        if !bytes.is_empty() {
                            layout.items.push((data.clone(), bytes.len()));
                            layout.payload_length += bytes.len();
                        }
                        addressed(item.id, address, hab)
                    }
                }
            };
            layout.push(pointer);
        }
        layout
    }

    fn push(&mut self, pointer: u64) {
        self.pointers.extend_from_slice(&pointer.to_be_bytes());
        self.n_pointers += 1;
    }
}

/// Pointers are ORed together without masking, as spead2 does: out-of-range IDs or values
/// corrupt neighbouring fields rather than failing.
fn immediate(id: u64, value: u64, hab: u32) -> u64 {
    IMMEDIATE_FLAG | id.wrapping_shl(hab) | value
}

fn addressed(id: u64, address: u64, hab: u32) -> u64 {
    id.wrapping_shl(hab) | address
}

/// At most 7 bytes (a heap address width) as a big-endian integer, right-aligned.
fn be_value(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

impl PacketGenerator {
    pub fn new(
        heap: &SendHeap,
        cnt: u64,
        max_packet_size: usize,
    ) -> Result<PacketGenerator, PacketError> {
        let packet_size = max_packet_size & !7;
        if packet_size < MIN_PACKET_SIZE {
            return Err(PacketError::PacketSizeTooSmall);
        }
        let max_pointers = (packet_size - PREFIX_SIZE - MIN_PAYLOAD) / POINTER_SIZE;
        let hab = heap.flavour.heap_address_bits();
        let mut layout = Layout::of(heap);
        if heap.repeat_pointers && layout.n_pointers >= max_pointers {
            return Err(PacketError::TooSmallToRepeatPointers);
        }
        // Enough payload that each packet full of pointers carries 8 bytes and the last one
        // carries at least one.
        let min_payload = MIN_PAYLOAD * (layout.n_pointers / max_pointers) + 1;
        let mut padding = 0;
        if layout.payload_length < min_payload {
            padding = min_payload - layout.payload_length;
            layout.push(addressed(0, layout.payload_length as u64, hab));
        }
        let heap_length = layout.payload_length + padding;
        Ok(PacketGenerator {
            heap_address_bits: hab,
            cnt,
            cnt_pointer: immediate(HEAP_CNT_ID, cnt, hab).to_be_bytes(),
            length_pointer: immediate(HEAP_LENGTH_ID, heap_length as u64, hab).to_be_bytes(),
            pointers: layout.pointers,
            repeat_pointers: heap.repeat_pointers,
            max_pointers,
            packet_size,
            items: layout.items,
            padding,
            heap_length,
            pointers_sent: 0,
            payload_sent: 0,
            cursor: Cursor::default(),
        })
    }

    pub fn cnt(&self) -> u64 {
        self.cnt
    }

    /// Payload bytes of the heap, padding included (its HEAP_LEN).
    pub fn heap_length(&self) -> usize {
        self.heap_length
    }

    /// True once every packet has been produced.
    pub fn is_done(&self) -> bool {
        self.payload_sent >= self.heap_length
    }

    /// The item pointers of the next packet, as a byte range of `self.pointers`.
    fn next_pointer_range(&self) -> std::ops::Range<usize> {
        let total = self.pointers.len() / POINTER_SIZE;
        let (start, count) = if self.repeat_pointers {
            (0, total)
        } else {
            let start = self.pointers_sent;
            (start, (total - start).min(self.max_pointers))
        };
        start * POINTER_SIZE..(start + count) * POINTER_SIZE
    }

    /// Writes the header block of a packet with `payload_length` bytes of payload.
    fn write_header(&self, out: &mut Vec<u8>, pointers: &[u8], payload_length: usize) {
        let hab = self.heap_address_bits;
        let n_pointers = 4 + pointers.len() / POINTER_SIZE;
        // spead2 stores the count in 16 bits without a check.
        emit_header(out, hab, n_pointers as u16);
        out.extend_from_slice(&self.cnt_pointer);
        out.extend_from_slice(&self.length_pointer);
        let offset = immediate(PAYLOAD_OFFSET_ID, self.payload_sent as u64, hab);
        out.extend_from_slice(&offset.to_be_bytes());
        let length = immediate(PAYLOAD_LENGTH_ID, payload_length as u64, hab);
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(pointers);
    }

    /// Plans the next packet: its pointer range and payload length, or None when done.
    fn plan(&self) -> Option<(std::ops::Range<usize>, usize)> {
        if self.is_done() {
            return None;
        }
        let pointers = self.next_pointer_range();
        let room = self.packet_size - PREFIX_SIZE - pointers.len();
        let payload_length = room.min(self.heap_length - self.payload_sent);
        Some((pointers, payload_length))
    }

    /// Records that a planned packet was produced.
    fn advance(&mut self, pointers: std::ops::Range<usize>, payload_length: usize) {
        if !self.repeat_pointers {
            self.pointers_sent = pointers.end / POINTER_SIZE;
        }
        self.payload_sent += payload_length;
    }

    /// Produces the next packet into `parts` (cleared first); false when the heap is done.
    pub fn next_packet(&mut self, parts: &mut PacketParts) -> bool {
        let Some((pointers, payload_length)) = self.plan() else {
            return false;
        };
        parts.header.clear();
        parts.segments.clear();
        self.write_header(
            &mut parts.header,
            &self.pointers[pointers.clone()],
            payload_length,
        );
        let segments = &mut parts.segments;
        self.cursor = self.walk_payload(self.cursor, payload_length, |segment| {
            segments.push(segment)
        });
        self.advance(pointers, payload_length);
        true
    }

    /// Appends the next packet to `out`; false (and `out` untouched) when the heap is done.
    pub fn next_packet_bytes(&mut self, out: &mut Vec<u8>) -> bool {
        let Some((pointers, payload_length)) = self.plan() else {
            return false;
        };
        out.reserve(PREFIX_SIZE + pointers.len() + payload_length);
        self.write_header(out, &self.pointers[pointers.clone()], payload_length);
        self.cursor = self.walk_payload(self.cursor, payload_length, |segment| {
            out.extend_from_slice(self.segment_bytes(&segment))
        });
        self.advance(pointers, payload_length);
        true
    }

    /// Calls `emit` with the segments covering `length` payload bytes from `cursor`;
    /// returns the cursor after them.
    fn walk_payload(
        &self,
        mut cursor: Cursor,
        mut length: usize,
        mut emit: impl FnMut(Segment),
    ) -> Cursor {
        while length > 0 && cursor.item < self.items.len() {
            let item_length = self.items[cursor.item].1;
            let take = (item_length - cursor.offset).min(length);
            emit(Segment::Item {
                index: cursor.item,
                offset: cursor.offset,
                len: take,
            });
            length -= take;
            cursor.offset += take;
            if cursor.offset == item_length {
                cursor = Cursor {
                    item: cursor.item + 1,
                    offset: 0,
                };
            }
        }
        debug_assert!(cursor.item < self.items.len() || cursor.offset + length <= self.padding);
        while length > 0 {
            let take = length.min(ZEROS.len());
            emit(Segment::Zeros(take));
            length -= take;
            cursor.offset += take;
        }
        cursor
    }

    /// The bytes a segment (from this generator) names. A buffer that shrank after the
    /// generator was built (a broken `AsRef`) yields a short slice rather than a panic.
    pub fn segment_bytes(&self, segment: &Segment) -> &[u8] {
        match *segment {
            Segment::Item { index, offset, len } => self
                .items
                .get(index)
                .and_then(|(data, _)| (**data).as_ref().get(offset..offset + len))
                .unwrap_or(&[]),
            Segment::Zeros(len) => &ZEROS[..len.min(ZEROS.len())],
        }
    }

    /// The packet's bytes in order: the header block, then each payload segment.
    pub fn slices<'a>(&'a self, parts: &'a PacketParts) -> impl Iterator<Item = &'a [u8]> + 'a {
        std::iter::once(parts.header.as_slice())
            .chain(parts.segments.iter().map(|s| self.segment_bytes(s)))
    }

    /// Appends the packet's `IoSlice`s (for writev / sendmmsg) to `out`.
    pub fn io_slices<'a>(&'a self, parts: &'a PacketParts, out: &mut Vec<IoSlice<'a>>) {
        out.extend(self.slices(parts).map(IoSlice::new));
    }
}
