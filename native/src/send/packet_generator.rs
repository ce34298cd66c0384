//! The sans-IO packetiser: cuts one `SendHeap` into SPEAD packets, byte-identical to
//! spead2 4.5.1's `PacketGenerator`.
//!
//! API summary (the send stream and the bindings build on this):
//! - `PacketGenerator::new(&heap, cnt, max_packet_size) -> Result<PacketGenerator, PacketError>`
//!   lays the heap out once (pointer block, payload chunks, padding). It keeps its own `Arc`
//!   clones of the item buffers, so it does not borrow the heap (and is `Send`).
//!   `cnt()`, `heap_length()` (HEAP_LEN, padding included) and `is_done()` describe it.
//! - Zero-copy: `next_packet(&mut PacketParts) -> bool` clears and fills reusable parts: a
//!   `header` block (packet header + all of the packet's item pointers) and `segments`
//!   (`Segment::Item { index, offset, len }` into this generator's payload items, or
//!   `Segment::Zeros(len)` with len <= 4096). `slices(&parts)` yields the packet's `&[u8]`s
//!   in order (header first); `io_slices(&parts, &mut Vec<IoSlice>)` appends them for
//!   writev/sendmmsg; `segment_bytes(&segment)` resolves one. Parts hold indices only, so
//!   several can be filled before any is resolved, but they must be resolved with the
//!   generator that filled them, while it is alive.
//! - Copying: `next_packet_bytes(&mut Vec<u8>) -> bool` APPENDS the next packet to `out`.
//! - `check_cnt(flavour, cnt)` is the stream's explicit-cnt check (EINVAL in spead2); the
//!   generator itself, like spead2's, does not mask or check anything it ORs into pointers.
//! - Errors: `PacketError` (`Display` is spead2's message; `errno()` for OSError ones).
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
//!   pointer addressed at the end of the real payload is appended to the pointers. In a
//!   packet holding both item bytes and padding, spead2 sends the padding first (a quirk
//!   that displaces those item bytes; reproduced on purpose).
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

/// Where the next item bytes start: in payload item `item` at `offset` (`item ==
/// items.len()` once every item byte is sent).
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
    /// Zero bytes after the items (see `walk_payload` for where spead2 puts them).
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

    /// Calls `emit` with the segments covering the `length` payload bytes after those
    /// already sent; returns the item cursor after them.
    ///
    /// Where a packet holds both item bytes and padding, spead2 4.5.1 puts the padding
    /// FIRST and the item bytes after it (so the item bytes land past their addresses); we
    /// reproduce that order to stay byte-identical.
    fn walk_payload(
        &self,
        mut cursor: Cursor,
        length: usize,
        mut emit: impl FnMut(Segment),
    ) -> Cursor {
        let data_end = self.heap_length - self.padding;
        let end = self.payload_sent + length;
        let mut padding = end - data_end.clamp(self.payload_sent, end);
        while padding > 0 {
            let take = padding.min(ZEROS.len());
            emit(Segment::Zeros(take));
            padding -= take;
        }
        let mut data = end.min(data_end).saturating_sub(self.payload_sent);
        while data > 0 {
            let Some(&(_, item_length)) = self.items.get(cursor.item) else {
                break;
            };
            let take = (item_length - cursor.offset).min(data);
            emit(Segment::Item {
                index: cursor.item,
                offset: cursor.offset,
                len: take,
            });
            data -= take;
            cursor.offset += take;
            if cursor.offset == item_length {
                cursor = Cursor {
                    item: cursor.item + 1,
                    offset: 0,
                };
            }
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

/// Reference vectors from spead2 4.5.1 (written by tests/peer/send_vectors.py) and their
/// reader, shared with the group tests.
#[cfg(test)]
pub(crate) mod vectors {
    use std::sync::Arc;

    use crate::protocol::descriptor::RawDescriptor;
    use crate::protocol::Flavour;
    use crate::send::heap::SendHeap;

    pub const CATALOGUE: &str = include_str!("../../testdata/send/catalogue.txt");

    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Payload {
        Bytes(Vec<u8>),
        Hashed { len: usize, fnv: u64 },
    }

    /// One reference packet: its heap's index in the case, header block, payload.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Packet {
        pub heap: usize,
        pub header: Vec<u8>,
        pub payload: Payload,
    }

    pub struct Case {
        pub name: String,
        pub mode: String,
        pub max_packet_size: usize,
        pub heaps: Vec<(SendHeap, u64)>,
        pub packets: Vec<Packet>,
        pub error: Option<String>,
    }

    pub fn fnv1a64(data: &[u8]) -> u64 {
        data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    fn hex(text: &str) -> Vec<u8> {
        if text == "-" {
            return Vec::new();
        }
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn pattern(len: usize, seed: usize) -> Vec<u8> {
        (0..len).map(|i| ((i * 7 + seed) & 0xff) as u8).collect()
    }

    impl Packet {
        /// Splits an actual packet the way the reference is written.
        pub fn of(heap: usize, bytes: &[u8]) -> Packet {
            let n = usize::from(u16::from_be_bytes([bytes[6], bytes[7]]));
            let head = (8 + 8 * n).min(bytes.len());
            let payload = &bytes[head..];
            let payload = if payload.len() <= 64 {
                Payload::Bytes(payload.to_vec())
            } else {
                Payload::Hashed {
                    len: payload.len(),
                    fnv: fnv1a64(payload),
                }
            };
            Packet {
                heap,
                header: bytes[..head].to_vec(),
                payload,
            }
        }
    }

    fn descriptor(fields: &[&str]) -> RawDescriptor {
        let list = |text: &str| -> Vec<String> {
            if text == "-" {
                Vec::new()
            } else {
                text.split(',').map(str::to_owned).collect()
            }
        };
        RawDescriptor {
            id: fields[0].parse().unwrap(),
            name: hex(fields[1]),
            description: hex(fields[2]),
            shape: list(fields[3]).iter().map(|s| s.parse().unwrap()).collect(),
            format: list(fields[4])
                .iter()
                .map(|f| (f.as_bytes()[0], f[1..].parse().unwrap()))
                .collect(),
            numpy_header: hex(fields[5]),
        }
    }

    fn add_item(heap: &mut SendHeap, kind: &str, fields: &[&str]) {
        match kind {
            "start" => heap.add_start(),
            "end" => heap.add_end(),
            "descriptor" => heap.add_descriptor(&descriptor(fields)).unwrap(),
            "bytes" | "pattern" => {
                let id: u64 = fields[0].parse().unwrap();
                let allow = fields[1] == "1";
                let data = if kind == "bytes" {
                    hex(fields[2])
                } else {
                    pattern(fields[2].parse().unwrap(), fields[3].parse().unwrap())
                };
                heap.add_item(id, Arc::new(data), allow);
            }
            other => panic!("unknown vector line {other}"),
        }
    }

    pub fn parse(text: &str) -> Vec<Case> {
        let mut cases = Vec::new();
        let mut current: Option<Case> = None;
        for line in text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
            let fields: Vec<&str> = rest.split(' ').collect();
            if kind == "case" {
                current = Some(Case {
                    name: fields[0].to_owned(),
                    mode: fields[1].to_owned(),
                    max_packet_size: fields[2].parse().unwrap(),
                    heaps: Vec::new(),
                    packets: Vec::new(),
                    error: None,
                });
                continue;
            }
            let case = current.as_mut().expect("line outside a case");
            match kind {
                "heap" => {
                    let flavour = Flavour::with_address_bits(
                        fields[0].parse().unwrap(),
                        fields[1].parse().unwrap(),
                    )
                    .unwrap();
                    let mut heap = SendHeap::new(flavour);
                    heap.repeat_pointers = fields[3] == "1";
                    case.heaps.push((heap, fields[2].parse().unwrap()));
                }
                "packet" => {
                    let payload = match fields[2].strip_prefix('#') {
                        Some(hashed) => {
                            let (len, fnv) = hashed.split_once(':').unwrap();
                            Payload::Hashed {
                                len: len.parse().unwrap(),
                                fnv: u64::from_str_radix(fnv, 16).unwrap(),
                            }
                        }
                        None => Payload::Bytes(hex(fields[2])),
                    };
                    case.packets.push(Packet {
                        heap: fields[0].parse().unwrap(),
                        header: hex(fields[1]),
                        payload,
                    });
                }
                "error" => case.error = Some(rest.to_owned()),
                "end_case" => cases.push(current.take().unwrap()),
                _ => add_item(&mut case.heaps.last_mut().unwrap().0, kind, &fields),
            }
        }
        cases
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::vectors::{self, Case, Packet};
    use super::*;
    use crate::protocol::packet::PacketHeader;

    /// Packets of a single-heap case, through the copying path.
    fn packets_by_bytes(case: &Case) -> Result<Vec<Packet>, PacketError> {
        let (heap, cnt) = &case.heaps[0];
        let mut generator = PacketGenerator::new(heap, *cnt, case.max_packet_size)?;
        let mut packets = Vec::new();
        let mut out = Vec::new();
        while generator.next_packet_bytes(&mut out) {
            packets.push(Packet::of(0, &out));
            out.clear();
        }
        Ok(packets)
    }

    /// Packets of a single-heap case, through the zero-copy path.
    fn packets_by_parts(case: &Case) -> Result<Vec<Packet>, PacketError> {
        let (heap, cnt) = &case.heaps[0];
        let mut generator = PacketGenerator::new(heap, *cnt, case.max_packet_size)?;
        let mut packets = Vec::new();
        let mut parts = PacketParts::new();
        while generator.next_packet(&mut parts) {
            let bytes: Vec<u8> = generator.slices(&parts).flatten().copied().collect();
            assert_eq!(bytes.len(), parts.len());
            packets.push(Packet::of(0, &bytes));
        }
        Ok(packets)
    }

    fn expected(case: &Case) -> Result<Vec<Packet>, String> {
        match &case.error {
            Some(message) => Err(message.clone()),
            None => Ok(case.packets.clone()),
        }
    }

    #[test]
    fn catalogue_single_heaps_match_spead2() {
        let cases = vectors::parse(vectors::CATALOGUE);
        let singles: Vec<&Case> = cases.iter().filter(|c| c.mode == "single").collect();
        assert!(singles.len() > 150, "catalogue lost its cases");
        for case in singles {
            let want = expected(case);
            let by_bytes = packets_by_bytes(case).map_err(|e| e.to_string());
            assert_eq!(by_bytes, want, "case {} (bytes)", case.name);
            let by_parts = packets_by_parts(case).map_err(|e| e.to_string());
            assert_eq!(by_parts, want, "case {} (parts)", case.name);
        }
    }

    fn heap_of(hab: i64, items: &[(u64, &[u8], bool)]) -> SendHeap {
        let mut heap = SendHeap::new(Flavour::with_address_bits(hab, 0).unwrap());
        for &(id, data, allow) in items {
            heap.add_item(id, Arc::new(data.to_vec()), allow);
        }
        heap
    }

    fn all_packets(heap: &SendHeap, cnt: u64, max_packet_size: usize) -> Vec<Vec<u8>> {
        let mut generator = PacketGenerator::new(heap, cnt, max_packet_size).unwrap();
        let mut packets = Vec::new();
        let mut out = Vec::new();
        while generator.next_packet_bytes(&mut out) {
            packets.push(std::mem::take(&mut out));
        }
        packets
    }

    #[test]
    fn empty_heap_is_one_byte_of_padding_with_a_null_pointer() {
        let packets = all_packets(&heap_of(40, &[]), 0x123, 1472);
        let expected: [u8; 49] = [
            0x53, 0x04, 0x03, 0x05, 0x00, 0x00, 0x00, 0x05, //
            0x80, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x23, // HEAP_CNT
            0x80, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // HEAP_LEN 1
            0x80, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, // PAYLOAD_OFFSET 0
            0x80, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x01, // PAYLOAD_LEN 1
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // NULL @ 0
            0x00,
        ];
        assert_eq!(packets, vec![expected.to_vec()]);
    }

    #[test]
    fn immediates_are_right_aligned_big_endian() {
        let heap = heap_of(48, &[(0x1000, b"\x01\x02\x03", true), (0x1001, b"", true)]);
        let packets = all_packets(&heap, 1, 1472);
        assert_eq!(packets.len(), 1);
        assert_eq!(
            &packets[0][40..48],
            &[0x90, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03]
        );
        assert_eq!(&packets[0][48..56], &[0x90, 0x01, 0, 0, 0, 0, 0, 0]);
        // Seven bytes do not fit 64-48: the item is addressed.
        let heap = heap_of(48, &[(0x1000, b"1234567", true)]);
        let packets = all_packets(&heap, 1, 1472);
        assert_eq!(&packets[0][40..48], &[0x10, 0x00, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&packets[0][48..], b"1234567");
    }

    #[test]
    fn packet_size_limits() {
        let heap = heap_of(40, &[(0x1000, &[7; 100], false)]);
        for size in [0, 47, 48, 55] {
            assert_eq!(
                PacketGenerator::new(&heap, 1, size).err(),
                Some(PacketError::PacketSizeTooSmall)
            );
        }
        // 63 rounds down to 56: one pointer and 8 bytes of payload per packet.
        let packets = all_packets(&heap, 1, 63);
        assert!(packets.iter().all(|p| p.len() <= 56));
        assert_eq!(packets[0].len(), 56);
        assert_eq!(packets.len(), 1 + (100 - 8_usize).div_ceil(16));
    }

    #[test]
    fn repeat_pointers_needs_room_for_a_spare_pointer() {
        let mut heap = heap_of(40, &[(0x1000, &[1; 10], false), (0x1001, &[2; 10], false)]);
        heap.repeat_pointers = true;
        // 64 bytes: P = 2, and 2 pointers + 1 > 2.
        assert_eq!(
            PacketGenerator::new(&heap, 1, 64).err(),
            Some(PacketError::TooSmallToRepeatPointers)
        );
        let packets = all_packets(&heap, 1, 72);
        assert_eq!(packets.len(), 2);
        for p in &packets {
            assert_eq!(u16::from_be_bytes([p[6], p[7]]), 6);
        }
    }

    #[test]
    fn padding_goes_before_item_bytes_in_a_shared_packet() {
        // Six pointers fill a 96-byte packet, so the payload is padded to 8 * 1 + 1 = 9 bytes.
        let bytes: Vec<[u8; 1]> = (0..6u8).map(|i| [0xa0 + i]).collect();
        let items: Vec<(u64, &[u8], bool)> = (0..6u64)
            .map(|i| (0x1000 + i, &bytes[i as usize][..], false))
            .collect();
        let packets = all_packets(&heap_of(40, &items), 1, 96);
        assert_eq!(packets.len(), 2);
        assert_eq!(&packets[0][16..24], &[0x80, 0, 2, 0, 0, 0, 0, 9]); // HEAP_LEN 9
        assert_eq!(
            &packets[0][88..],
            &[0, 0, 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5]
        );
        let null_at_6 = [0, 0, 0, 0, 0, 0, 0, 6];
        assert_eq!(&packets[1][40..], &[&null_at_6[..], &[0]].concat()[..]);
    }

    #[test]
    fn generators_can_move_to_a_sender_thread() {
        fn assert_send<T: Send + 'static>() {}
        assert_send::<PacketGenerator>();
        assert_send::<PacketParts>();
    }

    #[test]
    fn cnt_check_is_the_address_mask() {
        let flavour = Flavour::with_address_bits(40, 0).unwrap();
        assert_eq!(check_cnt(flavour, (1 << 40) - 1), Ok(()));
        assert_eq!(check_cnt(flavour, 1 << 40), Err(PacketError::CntTooLarge));
        assert_eq!(PacketError::CntTooLarge.errno(), Some(libc::EINVAL));
        assert_eq!(PacketError::PacketSizeTooSmall.errno(), None);
    }

    #[test]
    fn pointer_count_is_truncated_to_16_bits_like_spead2() {
        let mut heap = SendHeap::new(Flavour::default());
        for i in 0..70_000u64 {
            heap.add_immediate(0x1000 + i, i & 0xff);
        }
        let packets = all_packets(&heap, 1, 1 << 20);
        assert_eq!(packets.len(), 1);
        // 4 framing + 70000 items + NULL = 70005 pointers; spead2 writes 70005 mod 65536.
        assert_eq!(u16::from_be_bytes([packets[0][6], packets[0][7]]), 4469);
        assert_eq!(packets[0].len(), 8 + 8 * 70_005 + 1);
    }

    #[test]
    fn packets_parse_and_reassemble_the_payload() {
        let items: Vec<(u64, Vec<u8>)> = (0..50u64)
            .map(|i| (0x1000 + i, (0..i * 37).map(|b| (b * 3 + i) as u8).collect()))
            .collect();
        let mut heap = SendHeap::new(Flavour::default());
        for (id, data) in &items {
            heap.add_item(*id, Arc::new(data.clone()), false);
        }
        let expected: Vec<u8> = items.iter().flat_map(|(_, d)| d.iter().copied()).collect();
        for size in [56, 64, 100, 1472, 9000] {
            let mut payload = Vec::new();
            let mut n_items = 0;
            for packet in all_packets(&heap, 9, size) {
                let (parsed, used) = PacketHeader::parse(&packet).unwrap();
                assert_eq!(used, packet.len());
                assert!(packet.len() <= size);
                assert_eq!(parsed.heap_length, Some(expected.len() as u64));
                assert_eq!(parsed.payload_offset, payload.len() as u64);
                assert!(parsed.payload_length > 0);
                n_items += parsed.n_items() - 4;
                payload.extend_from_slice(parsed.payload);
            }
            assert_eq!(payload, expected, "size {size}");
            assert_eq!(n_items, items.len(), "size {size}");
        }
    }

    #[test]
    fn parts_are_reused_without_reallocating() {
        let heap = heap_of(40, &[(0x1000, &[5; 100_000], false)]);
        let mut generator = PacketGenerator::new(&heap, 1, 1472).unwrap();
        let mut parts = PacketParts::new();
        assert!(generator.next_packet(&mut parts));
        let (header_ptr, segments_ptr) = (parts.header.as_ptr(), parts.segments.as_ptr());
        let mut count = 1;
        while generator.next_packet(&mut parts) {
            assert_eq!(parts.header.as_ptr(), header_ptr);
            assert_eq!(parts.segments.as_ptr(), segments_ptr);
            count += 1;
        }
        // The first packet carries one item pointer, the others only the framing ones.
        assert_eq!(count, 1 + (100_000_usize - (1472 - 48)).div_ceil(1472 - 40));
        assert!(generator.is_done());
        assert!(!generator.next_packet(&mut parts));
    }

    #[test]
    fn segments_reference_the_item_buffers() {
        let data: Arc<Vec<u8>> = Arc::new((0..=255).collect());
        let mut heap = SendHeap::new(Flavour::default());
        heap.add_item(0x1000, data.clone(), false);
        let mut generator = PacketGenerator::new(&heap, 1, 1472).unwrap();
        let mut parts = PacketParts::new();
        assert!(generator.next_packet(&mut parts));
        assert_eq!(
            parts.segments,
            vec![Segment::Item {
                index: 0,
                offset: 0,
                len: 256
            }]
        );
        let slices: Vec<&[u8]> = generator.slices(&parts).collect();
        assert_eq!(slices[1].as_ptr(), data.as_ptr());
        let mut io = Vec::new();
        generator.io_slices(&parts, &mut io);
        assert_eq!(io.len(), 2);
        assert_eq!(io[0].len(), 48);
    }

    /// Bytes whose length changes between calls: a broken `AsRef` must not cause a panic.
    struct Shrinking(std::sync::atomic::AtomicBool);

    impl AsRef<[u8]> for Shrinking {
        fn as_ref(&self) -> &[u8] {
            static DATA: [u8; 100] = [9; 100];
            let first = self.0.swap(false, std::sync::atomic::Ordering::SeqCst);
            if first {
                &DATA
            } else {
                &DATA[..10]
            }
        }
    }

    #[test]
    fn a_shrinking_buffer_gives_short_packets_not_panics() {
        let mut heap = SendHeap::new(Flavour::default());
        heap.add_item(
            0x1000,
            Arc::new(Shrinking(std::sync::atomic::AtomicBool::new(true))),
            false,
        );
        let mut generator = PacketGenerator::new(&heap, 1, 1472).unwrap();
        let mut out = Vec::new();
        assert!(generator.next_packet_bytes(&mut out));
        assert_eq!(out.len(), 48);
    }

    /// Differential check against a large random set: generate it with
    /// `send_vectors.py --random N` and point SEND_VECTORS at the file.
    #[test]
    #[ignore = "needs SEND_VECTORS=<file from tests/peer/send_vectors.py --random>"]
    fn random_single_heaps_match_spead2() {
        let path = std::env::var("SEND_VECTORS").expect("SEND_VECTORS");
        let text = std::fs::read_to_string(path).unwrap();
        let cases = vectors::parse(&text);
        let mut checked = 0;
        for case in cases.iter().filter(|c| c.mode == "single") {
            let got = packets_by_bytes(case).map_err(|e| e.to_string());
            assert_eq!(got, expected(case), "case {}", case.name);
            checked += 1;
        }
        assert!(checked > 0);
    }
}
