//! Item descriptors (DESCRIPTOR_ID values): parse and emit.
//!
//! A descriptor travels as the value of a DESCRIPTOR_ID item, and that value is itself a
//! SPEAD stream: normally one single-packet heap whose items are the descriptor's fields.
//! `RawDescriptor::emit` writes exactly the bytes spead2 4.5.1 writes; `parse_all` decodes
//! the embedded stream as spead2 4.5.1 does. These rules were established by black-box
//! experiments with the real wheel (including a differential run over 100k random values)
//! and are pinned by the tests below:
//!
//! - packets are decoded in order, and decoding stops at the first undecodable packet;
//! - one heap is live at a time. A packet whose offset is 0 and whose payload is the whole
//!   HEAP_LENGTH replaces the live heap whatever its cnt; any other packet continues the
//!   live heap with its cnt (in order: offset = bytes received, same HEAP_LENGTH) or, if it
//!   has offset 0, evicts the live heap and starts a new one; everything else is dropped;
//! - a heap is used as soon as it has HEAP_LENGTH bytes and no item address beyond them;
//!   an evicted or flushed heap is used if its payload is contiguous (it reached
//!   HEAP_LENGTH, if any, and every item address);
//! - an accepted packet carrying a STOP stream-control item ends the embedded stream: a heap
//!   it completes is discarded, the live heap is flushed;
//! - items are visited by address, then immediates by value; exact duplicate pointers count
//!   once; an addressed item runs to the next address, zero-length items are skipped;
//! - a repeated name/description/dtype/ID keeps the last value visited; repeated shape and
//!   format items append entries; the ID must be a non-zero immediate;
//! - shape and format widths follow the embedded heap's own address width (or the fixed
//!   DESCRIPTOR_WIDTHS widths); a partial trailing entry is ignored;
//! - a non-empty numpy header (DTYPE) clears shape and format.
//!
//! Memory use is bounded by the input: every buffer grows only by bytes taken from it.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use super::flavour::Flavour;
use super::ids::{
    BUG_COMPAT_DESCRIPTOR_WIDTHS, BUG_COMPAT_SHAPE_BIT_1, CTRL_STREAM_STOP,
    DESCRIPTOR_DESCRIPTION_ID, DESCRIPTOR_DTYPE_ID, DESCRIPTOR_FORMAT_ID, DESCRIPTOR_ID_ID,
    DESCRIPTOR_NAME_ID, DESCRIPTOR_SHAPE_ID, HEAP_CNT_ID, HEAP_LENGTH_ID, NULL_ID,
    PAYLOAD_LENGTH_ID, PAYLOAD_OFFSET_ID, STREAM_CTRL_ID,
};
use super::packet::{emit_packet, DecodeError, ItemPointer, PacketHeader};

/// The heap cnt spead2 gives every descriptor heap.
const DESCRIPTOR_HEAP_CNT: u64 = 1;
/// Widths used for every flavour when BUG_COMPAT_DESCRIPTOR_WIDTHS is set.
const FIXED_FORMAT_WIDTH: usize = 4;
const FIXED_SHAPE_WIDTH: usize = 8;

/// The fields of one descriptor, as `spead2._spead2.RawDescriptor` holds them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawDescriptor {
    pub id: u64,
    pub name: Vec<u8>,
    pub description: Vec<u8>,
    /// One entry per dimension; a negative entry is a variable dimension.
    pub shape: Vec<i64>,
    /// (type code, bit length) pairs.
    pub format: Vec<(u8, u64)>,
    /// A numpy header (`repr` of a dict); empty when the format is used instead.
    pub numpy_header: Vec<u8>,
}

/// Why a descriptor value (or part of it) yielded no descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DescriptorError {
    /// The value holds no complete heap at all.
    Empty,
    /// A packet inside the value could not be decoded; the rest of the value is ignored.
    Packet(DecodeError),
    /// A packet did not continue its heap where the previous one ended.
    OutOfOrder,
    /// A packet's HEAP_LENGTH disagrees with an earlier packet of the same heap.
    HeapLengthMismatch,
    /// A heap was evicted or the value ended before all of its payload arrived.
    IncompleteHeap,
    /// An item's address lies beyond the end of its heap.
    AddressBeyondHeap,
    /// The heap has no immediate DESCRIPTOR_ID_ID item.
    MissingId,
    /// (emit) The ID does not fit the flavour's item ID width.
    IdOutOfRange,
}

impl fmt::Display for DescriptorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("descriptor value contains no complete heap"),
            Self::Packet(e) => write!(f, "descriptor packet: {e}"),
            Self::OutOfOrder => f.write_str("descriptor packet out of order in its heap"),
            Self::HeapLengthMismatch => {
                f.write_str("descriptor packet HEAP_LEN is inconsistent with its heap")
            }
            Self::IncompleteHeap => f.write_str("incomplete descriptor heap discarded"),
            Self::AddressBeyondHeap => f.write_str("descriptor item address beyond heap end"),
            Self::MissingId => f.write_str("incomplete descriptor (no ID)"),
            // spead2 raises ValueError with this text when adding such a descriptor.
            Self::IdOutOfRange => f.write_str("Item ID out of range"),
        }
    }
}

impl std::error::Error for DescriptorError {}

/// Bytes per shape entry: a flag byte, then the dimension.
fn shape_width(heap_address_bits: u32, bug_compat: u32) -> usize {
    if bug_compat & BUG_COMPAT_DESCRIPTOR_WIDTHS != 0 {
        FIXED_SHAPE_WIDTH
    } else {
        1 + (heap_address_bits / 8) as usize
    }
}

/// Bytes per format entry: a type code, then the bit length.
fn format_width(heap_address_bits: u32, bug_compat: u32) -> usize {
    if bug_compat & BUG_COMPAT_DESCRIPTOR_WIDTHS != 0 {
        FIXED_FORMAT_WIDTH
    } else {
        1 + (8 - heap_address_bits / 8) as usize
    }
}

/// The flag-byte bit that marks a variable dimension.
fn variable_bit(bug_compat: u32) -> u8 {
    if bug_compat & BUG_COMPAT_SHAPE_BIT_1 != 0 {
        2
    } else {
        1
    }
}

/// Appends the low `width` bytes of `value`, big-endian (higher bits are dropped, as spead2
/// does).
fn put_be(out: &mut Vec<u8>, value: u64, width: usize) {
    let bytes = value.to_be_bytes();
    out.extend_from_slice(&bytes[bytes.len() - width.min(bytes.len())..]);
}

/// Reads `bytes` (at most 8) as a big-endian unsigned integer.
fn get_be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

impl RawDescriptor {
    /// The descriptor heap spead2 4.5.1 emits: one packet, cnt 1, pointers HEAP_CNT,
    /// HEAP_LEN, PAYLOAD_OFFSET, PAYLOAD_LEN, the ID as an immediate, then NAME,
    /// DESCRIPTION, FORMAT, SHAPE and (if there is a numpy header) DTYPE, with the payload
    /// in that same order. Values too wide for their field are truncated, as spead2 does.
    pub fn emit(&self, flavour: Flavour) -> Result<Vec<u8>, DescriptorError> {
        let hab = flavour.heap_address_bits();
        if self.id > flavour.id_mask() {
            return Err(DescriptorError::IdOutOfRange);
        }
        let format = self.emit_format(flavour);
        let shape = self.emit_shape(flavour);
        let mut fields: Vec<(u64, &[u8])> = vec![
            (DESCRIPTOR_NAME_ID, &self.name),
            (DESCRIPTOR_DESCRIPTION_ID, &self.description),
            (DESCRIPTOR_FORMAT_ID, &format),
            (DESCRIPTOR_SHAPE_ID, &shape),
        ];
        if !self.numpy_header.is_empty() {
            fields.push((DESCRIPTOR_DTYPE_ID, &self.numpy_header));
        }
        let total: usize = fields.iter().map(|(_, v)| v.len()).sum();
        let total = total as u64;
        let mut pointers: Vec<ItemPointer> = vec![
            ItemPointer::immediate(HEAP_CNT_ID, DESCRIPTOR_HEAP_CNT, hab),
            ItemPointer::immediate(HEAP_LENGTH_ID, total, hab),
            ItemPointer::immediate(PAYLOAD_OFFSET_ID, 0, hab),
            ItemPointer::immediate(PAYLOAD_LENGTH_ID, total, hab),
            ItemPointer::immediate(DESCRIPTOR_ID_ID, self.id, hab),
        ];
        let mut payload: Vec<u8> = Vec::with_capacity(total as usize);
        for (id, value) in fields {
            pointers.push(ItemPointer::addressed(id, payload.len() as u64, hab));
            payload.extend_from_slice(value);
        }
        Ok(emit_packet(hab, &pointers, &payload))
    }

    fn emit_format(&self, flavour: Flavour) -> Vec<u8> {
        let width = format_width(flavour.heap_address_bits(), flavour.bug_compat());
        let mut out: Vec<u8> = Vec::with_capacity(self.format.len() * width);
        for &(code, bits) in &self.format {
            out.push(code);
            put_be(&mut out, bits, width - 1);
        }
        out
    }

    fn emit_shape(&self, flavour: Flavour) -> Vec<u8> {
        let width = shape_width(flavour.heap_address_bits(), flavour.bug_compat());
        let variable = variable_bit(flavour.bug_compat());
        let mut out: Vec<u8> = Vec::with_capacity(self.shape.len() * width);
        for &dim in &self.shape {
            if dim < 0 {
                out.push(variable);
                put_be(&mut out, 0, width - 1);
            } else {
                out.push(0);
                put_be(&mut out, dim as u64, width - 1);
            }
        }
        out
    }

    /// The first descriptor in a DESCRIPTOR_ID item's value; if there is none, the first
    /// reason (or `Empty`).
    pub fn parse(value: &[u8], flavour: Flavour) -> Result<RawDescriptor, DescriptorError> {
        let mut first_error: Option<DescriptorError> = None;
        for event in Self::parse_all(value, flavour) {
            match event {
                Ok(d) => return Ok(d),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or(DescriptorError::Empty))
    }

    /// Every outcome of decoding a DESCRIPTOR_ID item's value, in order: one `Ok` per
    /// descriptor heap, one `Err` per discarded packet or heap. `flavour` supplies only the
    /// bug-compatibility flags; address widths come from the embedded packets.
    pub fn parse_all(
        value: &[u8],
        flavour: Flavour,
    ) -> Vec<Result<RawDescriptor, DescriptorError>> {
        let mut stream = EmbeddedStream::new(flavour.bug_compat());
        let mut rest: &[u8] = value;
        while !rest.is_empty() {
            match PacketHeader::parse(rest) {
                Ok((packet, size)) => {
                    rest = &rest[size..];
                    if stream.push(&packet) == Flow::Stop {
                        break;
                    }
                }
                Err(e) => {
                    stream.events.push(Err(DescriptorError::Packet(e)));
                    break;
                }
            }
        }
        stream.finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// One item pointer, decoded with the address width of the packet that carried it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Pointer {
    id: u64,
    immediate: bool,
    /// Address, or the immediate value.
    value: u64,
}

impl Pointer {
    fn decode(raw: ItemPointer, heap_address_bits: u32) -> Self {
        Pointer {
            id: raw.id(heap_address_bits),
            immediate: raw.is_immediate(),
            value: raw.value(heap_address_bits),
        }
    }
}

/// A heap being assembled from in-order packets.
struct PartialHeap {
    cnt: u64,
    heap_address_bits: u32,
    heap_length: Option<u64>,
    /// Highest item address seen: the heap cannot be whole with fewer bytes.
    max_address: u64,
    /// Item pointers other than the framing ones, first occurrences only, in packet order.
    pointers: Vec<Pointer>,
    seen: HashSet<Pointer>,
    payload: Vec<u8>,
}

impl PartialHeap {
    fn new(packet: &PacketHeader<'_>) -> Self {
        PartialHeap {
            cnt: packet.heap_cnt,
            heap_address_bits: packet.heap_address_bits,
            heap_length: None,
            max_address: 0,
            pointers: Vec::new(),
            seen: HashSet::new(),
            payload: Vec::new(),
        }
    }

    /// Appends the next packet of this heap; out-of-order or inconsistent packets are
    /// refused and leave the heap unchanged.
    fn add(&mut self, packet: &PacketHeader<'_>) -> Result<(), DescriptorError> {
        if let (Some(a), Some(b)) = (self.heap_length, packet.heap_length) {
            if a != b {
                return Err(DescriptorError::HeapLengthMismatch);
            }
        }
        if packet.payload_offset != self.payload.len() as u64 {
            return Err(DescriptorError::OutOfOrder);
        }
        self.heap_length = self.heap_length.or(packet.heap_length);
        self.max_address = self.max_address.max(max_address(packet));
        let hab = packet.heap_address_bits;
        for raw in packet.iter_pointers() {
            let ptr = Pointer::decode(raw, hab);
            // Repeated pointers (e.g. from repeat_pointers senders) count once.
            if !is_framing(ptr.id) && self.seen.insert(ptr) {
                self.pointers.push(ptr);
            }
        }
        self.payload.extend_from_slice(packet.payload);
        Ok(())
    }

    fn received(&self) -> u64 {
        self.payload.len() as u64
    }

    /// All of HEAP_LENGTH arrived, and every item lies within it.
    fn is_complete(&self) -> bool {
        self.heap_length == Some(self.received()) && self.max_address <= self.received()
    }

    /// What becomes of the heap when it leaves the stream early: it is used if its payload
    /// is contiguous, that is, it reached HEAP_LENGTH (if any) and every item's address.
    fn into_event(self, bug_compat: u32) -> Result<RawDescriptor, DescriptorError> {
        if self.heap_length.is_some_and(|len| self.received() < len) {
            return Err(DescriptorError::IncompleteHeap);
        }
        decode_heap(&self, bug_compat)
    }
}

/// The highest address among a packet's addressed items.
fn max_address(packet: &PacketHeader<'_>) -> u64 {
    let hab = packet.heap_address_bits;
    packet
        .iter_pointers()
        .filter(|p| !p.is_immediate())
        .map(|p| p.value(hab))
        .max()
        .unwrap_or(0)
}

/// A packet that claims to hold a whole heap on its own.
fn is_whole(packet: &PacketHeader<'_>) -> bool {
    packet.payload_offset == 0 && packet.heap_length == Some(packet.payload_length)
}

fn has_stop(packet: &PacketHeader<'_>) -> bool {
    let hab = packet.heap_address_bits;
    packet.iter_pointers().any(|p| {
        p.is_immediate() && p.id(hab) == STREAM_CTRL_ID && p.value(hab) == CTRL_STREAM_STOP
    })
}

fn is_framing(id: u64) -> bool {
    matches!(
        id,
        HEAP_CNT_ID | HEAP_LENGTH_ID | PAYLOAD_OFFSET_ID | PAYLOAD_LENGTH_ID
    )
}

/// The embedded stream of a descriptor value: at most one heap live at a time.
struct EmbeddedStream {
    bug_compat: u32,
    live: Option<PartialHeap>,
    events: Vec<Result<RawDescriptor, DescriptorError>>,
}

impl EmbeddedStream {
    fn new(bug_compat: u32) -> Self {
        EmbeddedStream {
            bug_compat,
            live: None,
            events: Vec::new(),
        }
    }

    /// Feeds one packet. A packet carrying a STOP item ends the stream once accepted; a
    /// heap it completes is discarded, but an unsized heap holding it is still delivered.
    fn push(&mut self, packet: &PacketHeader<'_>) -> Flow {
        let is_stop = has_stop(packet);
        let completed = if is_whole(packet) {
            // It replaces the live heap, even one with its cnt. It stays live only if an
            // item address lies beyond its end (so it can never complete).
            self.evict();
            let mut heap = PartialHeap::new(packet);
            heap.add(packet).map(|()| {
                self.live = Some(heap);
                self.take_if_complete()
            })
        } else {
            self.add(packet).map(|()| self.take_if_complete())
        };
        match completed {
            Err(e) => {
                self.events.push(Err(e));
                return Flow::Continue;
            }
            Ok(Some(heap)) if !is_stop => self.events.push(decode_heap(&heap, self.bug_compat)),
            Ok(_) => {}
        }
        if is_stop {
            self.evict();
            return Flow::Stop;
        }
        Flow::Continue
    }

    /// Adds the packet to the live heap, or starts a heap with it.
    fn add(&mut self, packet: &PacketHeader<'_>) -> Result<(), DescriptorError> {
        let continues_live = self.live.as_ref().is_some_and(|h| h.cnt == packet.heap_cnt);
        if !continues_live {
            // A packet that cannot start a heap is dropped before it can evict one.
            if packet.payload_offset != 0 {
                return Err(DescriptorError::OutOfOrder);
            }
            self.evict();
        }
        self.live
            .get_or_insert_with(|| PartialHeap::new(packet))
            .add(packet)
    }

    fn take_if_complete(&mut self) -> Option<PartialHeap> {
        if self.live.as_ref().is_some_and(PartialHeap::is_complete) {
            self.live.take()
        } else {
            None
        }
    }

    fn evict(&mut self) {
        if let Some(heap) = self.live.take() {
            self.events.push(heap.into_event(self.bug_compat));
        }
    }

    fn finish(mut self) -> Vec<Result<RawDescriptor, DescriptorError>> {
        self.evict();
        self.events
    }
}

/// Turns a whole heap into a descriptor.
///
/// Items are visited as spead2 visits them: addressed items by address, then immediates
/// by value (ties keep packet order); a repeated field keeps the last value visited (shape
/// and format entries accumulate instead). An addressed item runs to the next address in
/// that order, or to the end of the heap; zero-length items are skipped.
fn decode_heap(heap: &PartialHeap, bug_compat: u32) -> Result<RawDescriptor, DescriptorError> {
    let heap_len = heap.payload.len() as u64;
    if heap
        .pointers
        .iter()
        .any(|p| !p.immediate && p.value > heap_len)
    {
        return Err(DescriptorError::AddressBeyondHeap);
    }
    let mut order: Vec<&Pointer> = heap.pointers.iter().collect();
    // Stable, so equal keys keep packet order.
    order.sort_by_key(|p| (p.immediate, p.value));
    let mut fields = Fields::new(heap.heap_address_bits, bug_compat);
    for (i, ptr) in order.iter().enumerate() {
        let value = if ptr.immediate {
            Cow::Owned(immediate_bytes(ptr.value, heap.heap_address_bits))
        } else {
            let end = match order.get(i + 1) {
                Some(next) if !next.immediate => next.value,
                _ => heap_len,
            };
            if end == ptr.value {
                // spead2 drops zero-length items, so they never overwrite a field.
                continue;
            }
            // Both bounds are at most heap_len (checked above) and sorted.
            Cow::Borrowed(&heap.payload[ptr.value as usize..end as usize])
        };
        fields.set(ptr, value);
    }
    fields.into_descriptor()
}

/// An immediate's value as the `heap_address_bits / 8` big-endian bytes of its pointer.
fn immediate_bytes(value: u64, heap_address_bits: u32) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    bytes[bytes.len() - (heap_address_bits / 8) as usize..].to_vec()
}

/// The descriptor fields gathered so far. A repeated name, description, numpy header or
/// ID keeps its last value; repeated shape and format items append their entries.
struct Fields<'a> {
    heap_address_bits: u32,
    bug_compat: u32,
    id: Option<u64>,
    name: Cow<'a, [u8]>,
    description: Cow<'a, [u8]>,
    numpy_header: Cow<'a, [u8]>,
    shape: Vec<i64>,
    format: Vec<(u8, u64)>,
}

impl<'a> Fields<'a> {
    fn new(heap_address_bits: u32, bug_compat: u32) -> Self {
        Fields {
            heap_address_bits,
            bug_compat,
            id: None,
            name: Cow::Borrowed(&[]),
            description: Cow::Borrowed(&[]),
            numpy_header: Cow::Borrowed(&[]),
            shape: Vec::new(),
            format: Vec::new(),
        }
    }

    fn set(&mut self, ptr: &Pointer, value: Cow<'a, [u8]>) {
        let (hab, bug_compat) = (self.heap_address_bits, self.bug_compat);
        match ptr.id {
            DESCRIPTOR_NAME_ID => self.name = value,
            DESCRIPTOR_DESCRIPTION_ID => self.description = value,
            DESCRIPTOR_SHAPE_ID => decode_shape(&value, hab, bug_compat, &mut self.shape),
            DESCRIPTOR_FORMAT_ID => decode_format(&value, hab, bug_compat, &mut self.format),
            DESCRIPTOR_DTYPE_ID => self.numpy_header = value,
            DESCRIPTOR_ID_ID if ptr.immediate => self.id = Some(ptr.value),
            DESCRIPTOR_ID_ID => log::info!("descriptor ID is not an immediate; ignored"),
            NULL_ID => {}
            other => log::info!("unexpected item ID {other:#x} inside a descriptor; ignored"),
        }
    }

    fn into_descriptor(mut self) -> Result<RawDescriptor, DescriptorError> {
        // spead2 treats ID 0 as absent.
        let id = self
            .id
            .filter(|&id| id != 0)
            .ok_or(DescriptorError::MissingId)?;
        if !self.numpy_header.is_empty() {
            self.shape.clear();
            self.format.clear();
        }
        Ok(RawDescriptor {
            id,
            name: self.name.into_owned(),
            description: self.description.into_owned(),
            shape: self.shape,
            format: self.format,
            numpy_header: self.numpy_header.into_owned(),
        })
    }
}

/// Appends the shape entries in `bytes`; a partial trailing entry is ignored.
fn decode_shape(bytes: &[u8], heap_address_bits: u32, bug_compat: u32, out: &mut Vec<i64>) {
    let width = shape_width(heap_address_bits, bug_compat);
    let variable = variable_bit(bug_compat);
    out.extend(bytes.chunks_exact(width).map(|entry| {
        if entry[0] & variable != 0 {
            -1
        } else {
            // At most 7 bytes, so the value is below 2^56 and fits an i64.
            get_be(&entry[1..]) as i64
        }
    }));
}

/// Appends the format entries in `bytes`; a partial trailing entry is ignored.
fn decode_format(bytes: &[u8], heap_address_bits: u32, bug_compat: u32, out: &mut Vec<(u8, u64)>) {
    let width = format_width(heap_address_bits, bug_compat);
    out.extend(
        bytes
            .chunks_exact(width)
            .map(|entry| (entry[0], get_be(&entry[1..]))),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ids::BUG_COMPAT_PYSPEAD_0_5_2;
    use crate::protocol::packet::PacketSpec;

    // Reference descriptor values produced by spead2 4.5.1 (test vectors, generated with
    // `/work/main/.venv-peer/bin/python`): for each flavour `fl` and descriptor `d`,
    //     s = spead2.send.BytesStream(spead2.ThreadPool())
    //     h = spead2.send.Heap(fl); h.add_descriptor(d); s.send_heap(h)
    // then the value of the DESCRIPTOR_ID item was cut out of `s.getvalue()` (from its
    // address to the next item's). The descriptors are:
    //   DTYPE:  Descriptor(0x1000, "x", "an int array", (3, 4), np.dtype('<u2'))
    //   FORMAT: Descriptor(0x1001, "y", "fmt", (None, 2), format=[('u', 8), ('f', 32)])
    //   ZERO_D: Descriptor(0x2000, "s", "scalar", (), format=[('i', 32)])
    // and the flavours Flavour(4, 64, 40 or 48, bug_compat 0 or 7 for BC7).
    const F64_40_DTYPE: &str = "530403050000000a8000010000000001800002000000005280000300000000008000040000000052800014000000100000001000000000000000110000000001000013000000000d000012000000000d000015000000001978616e20696e742061727261790000000000030000000000047b276465736372273a20273c7532272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028332c2034297d";
    const F64_40_FORMAT: &str = "530403050000000980000100000000018000020000000018800003000000000080000400000000188000140000001001000010000000000000001100000000010000130000000004000012000000000c79666d747500000866000020010000000000000000000002";
    const F64_48_DTYPE: &str = "530402060000000a8001000000000001800200000000005480030000000000008004000000000054801400000000100000100000000000000011000000000001001300000000000d001200000000000d001500000000001b78616e20696e7420617272617900000000000003000000000000047b276465736372273a20273c7532272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028332c2034297d";
    const F64_48_FORMAT: &str = "530402060000000980010000000000018002000000000018800300000000000080040000000000188014000000001001001000000000000000110000000000010013000000000004001200000000000a79666d747500086600200100000000000000000000000002";
    const F64_48_ZERO_D: &str = "53040206000000098001000000000001800200000000000a8003000000000000800400000000000a8014000000002000001000000000000000110000000000010013000000000007001200000000000a737363616c6172690020";
    const F64_40_ZERO_D: &str = "53040305000000098000010000000001800002000000000b8000030000000000800004000000000b8000140000002000000010000000000000001100000000010000130000000007000012000000000b737363616c617269000020";
    const F64_40_BC7_FORMAT: &str = "53040305000000098000010000000001800002000000001c8000030000000000800004000000001c8000140000001001000010000000000000001100000000010000130000000004000012000000000c79666d74750000086600002002000000000000000000000000000002";
    const F64_48_BC7_FORMAT: &str = "53040206000000098001000000000001800200000000001c8003000000000000800400000000001c8014000000001001001000000000000000110000000000010013000000000004001200000000000c79666d74750000086600002002000000000000000000000000000002";
    const F64_40_BC7_DTYPE: &str = "530403050000000a8000010000000001800002000000005680000300000000008000040000000056800014000000100000001000000000000000110000000001000013000000000d000012000000000d000015000000001d78616e20696e74206172726179000000000000000300000000000000047b276465736372273a20273e7532272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028332c2034297d";
    const F64_48_BC7_DTYPE: &str = "530402060000000a8001000000000001800200000000005680030000000000008004000000000056801400000000100000100000000000000011000000000001001300000000000d001200000000000d001500000000001d78616e20696e74206172726179000000000000000300000000000000047b276465736372273a20273e7532272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028332c2034297d";

    const LE_HEADER: &[u8] = b"{'descr': '<u2', 'fortran_order': False, 'shape': (3, 4)}";
    const BE_HEADER: &[u8] = b"{'descr': '>u2', 'fortran_order': False, 'shape': (3, 4)}";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn flavour(bits: i64, bug_compat: u32) -> Flavour {
        Flavour::with_address_bits(bits, i64::from(bug_compat)).unwrap()
    }

    /// What `Descriptor.to_raw` produces for the DTYPE descriptor.
    fn dtype_raw(header: &[u8]) -> RawDescriptor {
        RawDescriptor {
            id: 0x1000,
            name: b"x".to_vec(),
            description: b"an int array".to_vec(),
            shape: vec![3, 4],
            format: vec![],
            numpy_header: header.to_vec(),
        }
    }

    fn format_raw() -> RawDescriptor {
        RawDescriptor {
            id: 0x1001,
            name: b"y".to_vec(),
            description: b"fmt".to_vec(),
            shape: vec![-1, 2],
            format: vec![(b'u', 8), (b'f', 32)],
            numpy_header: vec![],
        }
    }

    fn zero_d_raw() -> RawDescriptor {
        RawDescriptor {
            id: 0x2000,
            name: b"s".to_vec(),
            description: b"scalar".to_vec(),
            shape: vec![],
            format: vec![(b'i', 32)],
            numpy_header: vec![],
        }
    }

    /// (reference bytes, flavour, descriptor given to emit).
    fn vectors() -> Vec<(&'static str, Flavour, RawDescriptor)> {
        let bc7 = BUG_COMPAT_PYSPEAD_0_5_2;
        vec![
            (F64_40_DTYPE, flavour(40, 0), dtype_raw(LE_HEADER)),
            (F64_40_FORMAT, flavour(40, 0), format_raw()),
            (F64_48_DTYPE, flavour(48, 0), dtype_raw(LE_HEADER)),
            (F64_48_FORMAT, flavour(48, 0), format_raw()),
            (F64_48_ZERO_D, flavour(48, 0), zero_d_raw()),
            (F64_40_ZERO_D, flavour(40, 0), zero_d_raw()),
            (F64_40_BC7_FORMAT, flavour(40, bc7), format_raw()),
            (F64_48_BC7_FORMAT, flavour(48, bc7), format_raw()),
            (F64_40_BC7_DTYPE, flavour(40, bc7), dtype_raw(BE_HEADER)),
            (F64_48_BC7_DTYPE, flavour(48, bc7), dtype_raw(BE_HEADER)),
        ]
    }

    #[test]
    fn emit_matches_spead2_bytes() {
        for (reference, fl, raw) in vectors() {
            assert_eq!(raw.emit(fl).unwrap(), hex(reference), "{reference}");
        }
    }

    #[test]
    fn parse_matches_spead2_reading_of_its_own_bytes() {
        // spead2 reads a descriptor with a numpy header back with empty shape and format.
        for (reference, fl, raw) in vectors() {
            let mut expected = raw.clone();
            if !expected.numpy_header.is_empty() {
                expected.shape.clear();
                expected.format.clear();
            }
            assert_eq!(
                RawDescriptor::parse(&hex(reference), fl),
                Ok(expected),
                "{reference}"
            );
        }
    }

    #[test]
    fn emit_then_parse_round_trips_every_flavour() {
        let raw = RawDescriptor {
            id: 0x7f,
            name: b"name".to_vec(),
            description: b"long description".to_vec(),
            shape: vec![-1, 0, 7, 255],
            format: vec![(b'u', 1), (b'c', 8), (b'f', 64)],
            numpy_header: vec![],
        };
        for bits in (8..=56).step_by(8) {
            for bug_compat in 0..=BUG_COMPAT_PYSPEAD_0_5_2 {
                let fl = flavour(bits, bug_compat);
                let bytes = raw.emit(fl).unwrap();
                assert_eq!(RawDescriptor::parse(&bytes, fl), Ok(raw.clone()));
            }
        }
    }

    #[test]
    fn emit_rejects_ids_wider_than_the_id_field() {
        let fl = flavour(48, 0);
        let mut raw = zero_d_raw();
        raw.id = (1 << 15) - 1;
        assert!(raw.emit(fl).is_ok());
        raw.id = 1 << 15;
        assert_eq!(raw.emit(fl), Err(DescriptorError::IdOutOfRange));
        assert_eq!(
            DescriptorError::IdOutOfRange.to_string(),
            "Item ID out of range"
        );
    }

    #[test]
    fn emit_truncates_oversized_fields_like_spead2() {
        // spead2 4.5.1, 64-48: shape (2**48,) is sent as 0 and format ('u', 2**16 + 8) as
        // ('u', 8).
        let raw = RawDescriptor {
            id: 0x1000,
            name: b"x".to_vec(),
            shape: vec![1 << 48],
            format: vec![(b'u', (1 << 16) + 8)],
            ..Default::default()
        };
        let bytes = raw.emit(flavour(48, 0)).unwrap();
        let payload = &bytes[bytes.len() - 11..];
        assert_eq!(payload, b"xu\x00\x08\x00\x00\x00\x00\x00\x00\x00");
    }

    // ---- parsing what other senders may produce (behaviour checked against spead2 4.5.1)

    const HAB: u32 = 48;

    fn imm(id: u64, value: u64) -> ItemPointer {
        ItemPointer::immediate(id, value, HAB)
    }

    fn addr(id: u64, address: u64) -> ItemPointer {
        ItemPointer::addressed(id, address, HAB)
    }

    fn packet(
        cnt: u64,
        len: Option<u64>,
        offset: u64,
        items: Vec<ItemPointer>,
        payload: &[u8],
    ) -> Vec<u8> {
        PacketSpec {
            heap_address_bits: HAB,
            heap_cnt: cnt,
            heap_length: len,
            payload_offset: offset,
            items,
            payload: payload.to_vec(),
        }
        .emit()
    }

    /// A single-packet heap whose addressed fields are laid out in the given order.
    fn heap(cnt: u64, immediates: &[(u64, u64)], fields: &[(u64, &[u8])]) -> Vec<u8> {
        let mut items: Vec<ItemPointer> = immediates.iter().map(|&(i, v)| imm(i, v)).collect();
        let mut payload = Vec::new();
        for &(id, value) in fields {
            items.push(addr(id, payload.len() as u64));
            payload.extend_from_slice(value);
        }
        packet(cnt, Some(payload.len() as u64), 0, items, &payload)
    }

    fn shape48(entries: &[(u8, u64)]) -> Vec<u8> {
        let mut out = Vec::new();
        for &(flag, size) in entries {
            out.push(flag);
            out.extend_from_slice(&size.to_be_bytes()[2..]);
        }
        out
    }

    fn parse48(value: &[u8], bug_compat: u32) -> Vec<Result<RawDescriptor, DescriptorError>> {
        RawDescriptor::parse_all(value, flavour(48, bug_compat))
    }

    fn basic_fields(shape: &[u8]) -> Vec<(u64, &[u8])> {
        vec![
            (DESCRIPTOR_NAME_ID, b"nm"),
            (DESCRIPTOR_DESCRIPTION_ID, b"desc"),
            (DESCRIPTOR_FORMAT_ID, b"u\x00\x08"),
            (DESCRIPTOR_SHAPE_ID, shape),
        ]
    }

    fn basic() -> RawDescriptor {
        RawDescriptor {
            id: 0x1234,
            name: b"nm".to_vec(),
            description: b"desc".to_vec(),
            shape: vec![3, -1],
            format: vec![(b'u', 8)],
            numpy_header: vec![],
        }
    }

    #[test]
    fn field_order_does_not_matter() {
        let shape = shape48(&[(0, 3), (1, 0)]);
        let mut fields = basic_fields(&shape);
        fields.reverse();
        let value = heap(1, &[(DESCRIPTOR_ID_ID, 0x1234)], &fields);
        assert_eq!(parse48(&value, 0), vec![Ok(basic())]);
    }

    #[test]
    fn heap_cnt_and_missing_heap_length_are_accepted() {
        let shape = shape48(&[(0, 3), (1, 0)]);
        let mut value = heap(7, &[(DESCRIPTOR_ID_ID, 0x1234)], &basic_fields(&shape));
        assert_eq!(parse48(&value, 0), vec![Ok(basic())]);
        // Drop the HEAP_LENGTH pointer (the second) and fix the pointer count.
        value.drain(16..24);
        value[7] -= 1;
        assert_eq!(parse48(&value, 0), vec![Ok(basic())]);
    }

    #[test]
    fn missing_id_or_addressed_id_yields_no_descriptor() {
        let value = heap(1, &[], &[(DESCRIPTOR_NAME_ID, b"nm")]);
        assert_eq!(parse48(&value, 0), vec![Err(DescriptorError::MissingId)]);
        let value = heap(1, &[], &[(DESCRIPTOR_ID_ID, &[0, 0, 0, 0, 0, 0x55])]);
        assert_eq!(parse48(&value, 0), vec![Err(DescriptorError::MissingId)]);
        assert_eq!(
            RawDescriptor::parse(&value, flavour(48, 0)),
            Err(DescriptorError::MissingId)
        );
    }

    #[test]
    fn missing_fields_are_empty() {
        let value = heap(1, &[(DESCRIPTOR_ID_ID, 9)], &[]);
        let expected = RawDescriptor {
            id: 9,
            ..Default::default()
        };
        assert_eq!(parse48(&value, 0), vec![Ok(expected)]);
    }

    #[test]
    fn variable_flag_bit_follows_bug_compat() {
        let shape = shape48(&[(1, 5), (2, 6), (3, 7), (0xfe, 8)]);
        let value = heap(
            1,
            &[(DESCRIPTOR_ID_ID, 1)],
            &[(DESCRIPTOR_SHAPE_ID, &shape)],
        );
        let plain = RawDescriptor::parse(&value, flavour(48, 0)).unwrap();
        assert_eq!(plain.shape, vec![-1, 6, -1, 8]);
        let bit1 = RawDescriptor::parse(&value, flavour(48, BUG_COMPAT_SHAPE_BIT_1)).unwrap();
        assert_eq!(bit1.shape, vec![5, -1, -1, -1]);
    }

    #[test]
    fn partial_trailing_entries_are_ignored() {
        let mut shape = shape48(&[(0, 5)]);
        shape.extend_from_slice(&[0, 1]);
        let value = heap(
            1,
            &[(DESCRIPTOR_ID_ID, 1)],
            &[
                (DESCRIPTOR_SHAPE_ID, &shape),
                (DESCRIPTOR_FORMAT_ID, b"u\x00\x08\x00"),
            ],
        );
        let d = RawDescriptor::parse(&value, flavour(48, 0)).unwrap();
        assert_eq!(d.shape, vec![5]);
        assert_eq!(d.format, vec![(b'u', 8)]);
    }

    #[test]
    fn widths_come_from_the_embedded_packet_and_descriptor_widths_flag() {
        // A 64-40 descriptor read with a 64-48 stream flavour still uses 64-40 widths.
        let raw = format_raw();
        let bytes = raw.emit(flavour(40, 0)).unwrap();
        assert_eq!(
            RawDescriptor::parse(&bytes, flavour(48, 0)),
            Ok(raw.clone())
        );
        // DESCRIPTOR_WIDTHS: 4-byte formats and 8-byte shapes at 64-48.
        let value = heap(
            1,
            &[(DESCRIPTOR_ID_ID, 1)],
            &[
                (DESCRIPTOR_FORMAT_ID, b"u\x00\x00\x08f\x00\x00\x40"),
                (
                    DESCRIPTOR_SHAPE_ID,
                    &hex("00000000000000030100000000000000"),
                ),
            ],
        );
        let d = RawDescriptor::parse(&value, flavour(48, BUG_COMPAT_DESCRIPTOR_WIDTHS)).unwrap();
        assert_eq!(d.format, vec![(b'u', 8), (b'f', 64)]);
        assert_eq!(d.shape, vec![3, -1]);
        // The same bytes without the flag: 7-byte shape entries, 3-byte formats.
        let d = RawDescriptor::parse(&value, flavour(48, 0)).unwrap();
        assert_eq!(d.shape, vec![0, -1]);
        assert_eq!(
            d.format,
            vec![(b'u', 0), (0x08, 0x6600), (0, 0x40)][..2].to_vec()
        );
    }

    #[test]
    fn largest_dimensions_survive() {
        let shape = shape48(&[(0, (1 << 48) - 1)]);
        let value = heap(
            1,
            &[(DESCRIPTOR_ID_ID, 1)],
            &[(DESCRIPTOR_SHAPE_ID, &shape)],
        );
        let d = RawDescriptor::parse(&value, flavour(48, 0)).unwrap();
        assert_eq!(d.shape, vec![(1 << 48) - 1]);
        let shape = hex("00ffffffffffffff");
        let value = heap(
            1,
            &[(DESCRIPTOR_ID_ID, 1)],
            &[(DESCRIPTOR_SHAPE_ID, &shape)],
        );
        let d = RawDescriptor::parse(&value, flavour(48, BUG_COMPAT_DESCRIPTOR_WIDTHS)).unwrap();
        assert_eq!(d.shape, vec![(1 << 56) - 1]);
    }

    #[test]
    fn numpy_header_overrides_shape_and_format_unless_empty() {
        let shape = shape48(&[(0, 3), (1, 0)]);
        let mut fields = basic_fields(&shape);
        fields.push((DESCRIPTOR_DTYPE_ID, b"{}"));
        let d = RawDescriptor::parse(
            &heap(1, &[(DESCRIPTOR_ID_ID, 0x1234)], &fields),
            flavour(48, 0),
        )
        .unwrap();
        assert_eq!((d.shape.len(), d.format.len()), (0, 0));
        assert_eq!(d.numpy_header, b"{}");
        fields.pop();
        fields.push((DESCRIPTOR_DTYPE_ID, b""));
        let d = RawDescriptor::parse(
            &heap(1, &[(DESCRIPTOR_ID_ID, 0x1234)], &fields),
            flavour(48, 0),
        )
        .unwrap();
        assert_eq!(d, basic());
    }

    #[test]
    fn immediate_fields_are_address_width_bytes() {
        let value = heap(
            1,
            &[(DESCRIPTOR_ID_ID, 5), (DESCRIPTOR_NAME_ID, 0x41_42_43)],
            &[],
        );
        let d = RawDescriptor::parse(&value, flavour(48, 0)).unwrap();
        assert_eq!(d.name, b"\x00\x00\x00ABC");
    }

    #[test]
    fn several_heaps_give_several_descriptors() {
        let mut value = heap(1, &[(DESCRIPTOR_ID_ID, 1)], &[]);
        value.extend(heap(1, &[(DESCRIPTOR_ID_ID, 2)], &[]));
        value.extend(heap(2, &[(DESCRIPTOR_ID_ID, 3)], &[]));
        let ids: Vec<u64> = parse48(&value, 0)
            .into_iter()
            .map(|d| d.unwrap().id)
            .collect();
        assert_eq!(ids, vec![1, 2, 3]);
    }

    #[test]
    fn decoding_stops_at_the_first_bad_packet() {
        let good = heap(1, &[(DESCRIPTOR_ID_ID, 1)], &[]);
        let mut value = good.clone();
        value.extend_from_slice(b"garbage!");
        value.extend(heap(2, &[(DESCRIPTOR_ID_ID, 2)], &[]));
        let events = parse48(&value, 0);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].as_ref().unwrap().id, 1);
        assert_eq!(
            events[1],
            Err(DescriptorError::Packet(DecodeError::BadMagic))
        );
        let mut value = vec![0u8; 8];
        value.extend(good);
        assert_eq!(
            RawDescriptor::parse(&value, flavour(48, 0)),
            Err(DescriptorError::Packet(DecodeError::BadMagic))
        );
    }

    #[test]
    fn empty_and_truncated_values() {
        assert_eq!(parse48(&[], 0), vec![]);
        assert_eq!(
            RawDescriptor::parse(&[], flavour(48, 0)),
            Err(DescriptorError::Empty)
        );
        let good = heap(1, &[(DESCRIPTOR_ID_ID, 1)], &[(DESCRIPTOR_NAME_ID, b"abc")]);
        assert_eq!(
            parse48(&good[..good.len() - 1], 0),
            vec![Err(DescriptorError::Packet(
                DecodeError::PayloadOverflowsPacket
            ))]
        );
    }

    /// Two packets of one heap carrying NAME = `name`, split after `cut` bytes.
    fn split_heap(cnt: u64, id: u64, name: &[u8], sized: bool, cut: usize) -> (Vec<u8>, Vec<u8>) {
        let len = sized.then_some(name.len() as u64);
        let first = packet(
            cnt,
            len,
            0,
            vec![imm(DESCRIPTOR_ID_ID, id), addr(DESCRIPTOR_NAME_ID, 0)],
            &name[..cut],
        );
        let second = packet(cnt, len, cut as u64, vec![], &name[cut..]);
        (first, second)
    }

    fn names(
        events: &[Result<RawDescriptor, DescriptorError>],
    ) -> Vec<Result<Vec<u8>, DescriptorError>> {
        events
            .iter()
            .map(|e| e.as_ref().map(|d| d.name.clone()).map_err(|e| *e))
            .collect()
    }

    #[test]
    fn multi_packet_heaps_must_arrive_in_order() {
        let (a1, a2) = split_heap(1, 10, b"aaaa", true, 2);
        assert_eq!(
            names(&parse48(&[a1.clone(), a2.clone()].concat(), 0)),
            vec![Ok(b"aaaa".to_vec())]
        );
        assert_eq!(
            names(&parse48(&[a2.clone(), a1.clone()].concat(), 0)),
            vec![
                Err(DescriptorError::OutOfOrder),
                Err(DescriptorError::IncompleteHeap)
            ]
        );
        // A repeated packet is dropped; the heap still completes.
        assert_eq!(
            names(&parse48(&[a1.clone(), a1.clone(), a2].concat(), 0)),
            vec![Err(DescriptorError::OutOfOrder), Ok(b"aaaa".to_vec())]
        );
        assert_eq!(
            names(&parse48(&a1, 0)),
            vec![Err(DescriptorError::IncompleteHeap)]
        );
    }

    #[test]
    fn one_heap_at_a_time_so_interleaving_evicts() {
        let (a1, a2) = split_heap(1, 10, b"aaaa", true, 2);
        let (b1, b2) = split_heap(2, 11, b"bbbb", true, 2);
        // b1 evicts heap 1; a2 cannot start a heap, so it is dropped without evicting
        // heap 2, which b2 completes (as spead2 4.5.1 does).
        let events = parse48(&[a1, b1, a2, b2].concat(), 0);
        assert_eq!(
            names(&events),
            vec![
                Err(DescriptorError::IncompleteHeap),
                Err(DescriptorError::OutOfOrder),
                Ok(b"bbbb".to_vec()),
            ]
        );
    }

    #[test]
    fn unsized_heaps_are_used_when_evicted_or_at_the_end() {
        let (u1, u2) = split_heap(1, 10, b"uuuu", false, 2);
        assert_eq!(
            names(&parse48(&[u1.clone(), u2.clone()].concat(), 0)),
            vec![Ok(b"uuuu".to_vec())]
        );
        assert_eq!(names(&parse48(&u1, 0)), vec![Ok(b"uu".to_vec())]);
        assert_eq!(
            names(&parse48(&u2, 0)),
            vec![Err(DescriptorError::OutOfOrder)]
        );
        let other = heap(2, &[(DESCRIPTOR_ID_ID, 2)], &[(DESCRIPTOR_NAME_ID, b"x")]);
        assert_eq!(
            names(&parse48(&[u1, other].concat(), 0)),
            vec![Ok(b"uu".to_vec()), Ok(b"x".to_vec())]
        );
    }

    #[test]
    fn a_stop_item_ends_the_embedded_stream() {
        let (u1, _) = split_heap(1, 10, b"uuuu", false, 2);
        let stop = heap(
            4,
            &[(DESCRIPTOR_ID_ID, 4), (STREAM_CTRL_ID, CTRL_STREAM_STOP)],
            &[],
        );
        let after = heap(2, &[(DESCRIPTOR_ID_ID, 2)], &[]);
        assert_eq!(
            names(&parse48(&[u1, stop.clone(), after].concat(), 0)),
            vec![Ok(b"uu".to_vec())]
        );
        assert_eq!(parse48(&stop, 0), vec![]);
        // A start item is just an unexpected item.
        let start = heap(4, &[(DESCRIPTOR_ID_ID, 4), (STREAM_CTRL_ID, 0)], &[]);
        assert_eq!(parse48(&start, 0).len(), 1);
    }

    #[test]
    fn inconsistent_heap_length_drops_the_packet() {
        let first = packet(
            1,
            Some(4),
            0,
            vec![imm(DESCRIPTOR_ID_ID, 1), addr(DESCRIPTOR_NAME_ID, 0)],
            b"uu",
        );
        let second = packet(1, Some(5), 2, vec![], b"vv");
        assert_eq!(
            parse48(&[first, second].concat(), 0),
            vec![
                Err(DescriptorError::HeapLengthMismatch),
                Err(DescriptorError::IncompleteHeap)
            ]
        );
    }

    #[test]
    fn an_address_beyond_the_heap_invalidates_it() {
        let items = vec![
            imm(DESCRIPTOR_ID_ID, 1),
            addr(NULL_ID, 3),
            addr(DESCRIPTOR_NAME_ID, 0),
        ];
        let value = packet(1, Some(2), 0, items, b"uu");
        assert_eq!(
            parse48(&value, 0),
            vec![Err(DescriptorError::AddressBeyondHeap)]
        );
        // An address equal to the heap length is an empty item.
        let items = vec![
            imm(DESCRIPTOR_ID_ID, 1),
            addr(DESCRIPTOR_NAME_ID, 2),
            addr(DESCRIPTOR_DESCRIPTION_ID, 0),
        ];
        let d = RawDescriptor::parse(&packet(1, Some(2), 0, items, b"uu"), flavour(48, 0)).unwrap();
        assert_eq!(
            (d.name.as_slice(), d.description.as_slice()),
            (&b""[..], &b"uu"[..])
        );
    }

    #[test]
    fn zero_length_heap_is_a_descriptor() {
        let value = packet(1, Some(0), 0, vec![imm(DESCRIPTOR_ID_ID, 10)], b"");
        assert_eq!(
            parse48(&value, 0),
            vec![Ok(RawDescriptor {
                id: 10,
                ..Default::default()
            })]
        );
    }

    fn parse_items(items: Vec<ItemPointer>) -> RawDescriptor {
        RawDescriptor::parse(&packet(1, Some(4), 0, items, b"abcd"), flavour(48, 0)).unwrap()
    }

    #[test]
    fn items_are_visited_by_address_then_immediate_value() {
        // Ties at one address: the earlier pointer is empty.
        let d = parse_items(vec![
            imm(DESCRIPTOR_ID_ID, 1),
            addr(DESCRIPTOR_NAME_ID, 0),
            addr(DESCRIPTOR_DESCRIPTION_ID, 0),
            addr(DESCRIPTOR_SHAPE_ID, 2),
        ]);
        assert_eq!(
            (d.name.as_slice(), d.description.as_slice()),
            (&b""[..], &b"ab"[..])
        );
        let d = parse_items(vec![
            imm(DESCRIPTOR_ID_ID, 1),
            addr(DESCRIPTOR_DESCRIPTION_ID, 0),
            addr(DESCRIPTOR_NAME_ID, 0),
            addr(DESCRIPTOR_SHAPE_ID, 2),
        ]);
        assert_eq!(
            (d.name.as_slice(), d.description.as_slice()),
            (&b"ab"[..], &b""[..])
        );
        // A repeated field keeps the highest address, whatever the pointer order.
        let d = parse_items(vec![
            imm(DESCRIPTOR_ID_ID, 1),
            addr(DESCRIPTOR_NAME_ID, 3),
            addr(DESCRIPTOR_DESCRIPTION_ID, 0),
            addr(DESCRIPTOR_NAME_ID, 1),
        ]);
        assert_eq!(
            (d.name.as_slice(), d.description.as_slice()),
            (&b"d"[..], &b"a"[..])
        );
        // Immediates do not bound addressed items, and win over them.
        let d = parse_items(vec![
            imm(DESCRIPTOR_ID_ID, 1),
            addr(DESCRIPTOR_NAME_ID, 0),
            imm(DESCRIPTOR_SHAPE_ID, 1),
            addr(DESCRIPTOR_DESCRIPTION_ID, 2),
        ]);
        assert_eq!(
            (d.name.as_slice(), d.description.as_slice()),
            (&b"ab"[..], &b"cd"[..])
        );
        let d = parse_items(vec![
            imm(DESCRIPTOR_ID_ID, 1),
            imm(DESCRIPTOR_NAME_ID, 0x41),
            addr(DESCRIPTOR_NAME_ID, 0),
        ]);
        assert_eq!(d.name, b"\x00\x00\x00\x00\x00A");
        // Repeated immediate IDs: the largest value wins.
        let d = parse_items(vec![imm(DESCRIPTOR_ID_ID, 10), imm(DESCRIPTOR_ID_ID, 9)]);
        assert_eq!(d.id, 10);
        let d = parse_items(vec![imm(DESCRIPTOR_ID_ID, 9), imm(DESCRIPTOR_ID_ID, 10)]);
        assert_eq!(d.id, 10);
    }

    #[test]
    fn zero_length_items_do_not_overwrite() {
        // DESCRIPTION@0 (14 bytes), DESCRIPTION@2 (empty, tied with NAME@2).
        let d = parse_items(vec![
            imm(DESCRIPTOR_ID_ID, 1),
            addr(DESCRIPTOR_DESCRIPTION_ID, 0),
            addr(DESCRIPTOR_DESCRIPTION_ID, 2),
            addr(DESCRIPTOR_NAME_ID, 2),
        ]);
        assert_eq!(
            (d.name.as_slice(), d.description.as_slice()),
            (&b"cd"[..], &b"ab"[..])
        );
    }

    #[test]
    fn exact_duplicate_pointers_count_once() {
        // DTYPE@0, DESCRIPTION@0, DTYPE@0 again: without de-duplication the second DTYPE
        // would take the bytes; spead2 gives them to DESCRIPTION.
        let d = parse_items(vec![
            imm(DESCRIPTOR_ID_ID, 1),
            addr(DESCRIPTOR_DTYPE_ID, 0),
            addr(DESCRIPTOR_DESCRIPTION_ID, 0),
            addr(DESCRIPTOR_DTYPE_ID, 0),
        ]);
        assert_eq!(d.description, b"abcd");
        assert!(d.numpy_header.is_empty());
    }

    #[test]
    fn repeated_shape_and_format_items_append() {
        let payload = hex("000000000005000000000007750000086600002000");
        let hab = 40;
        let items = vec![
            ItemPointer::immediate(DESCRIPTOR_ID_ID, 1, hab),
            ItemPointer::addressed(DESCRIPTOR_SHAPE_ID, 6, hab),
            ItemPointer::addressed(DESCRIPTOR_SHAPE_ID, 0, hab),
            ItemPointer::addressed(DESCRIPTOR_FORMAT_ID, 12, hab),
            ItemPointer::addressed(DESCRIPTOR_FORMAT_ID, 16, hab),
        ];
        let value = PacketSpec {
            heap_address_bits: hab,
            heap_cnt: 1,
            heap_length: Some(payload.len() as u64),
            payload_offset: 0,
            items,
            payload,
        }
        .emit();
        let d = RawDescriptor::parse(&value, flavour(40, 0)).unwrap();
        assert_eq!(d.shape, vec![5, 7]);
        // The second format item has 5 bytes: one entry and a partial one.
        assert_eq!(d.format, vec![(b'u', 8), (b'f', 32)]);
    }

    #[test]
    fn id_zero_counts_as_missing() {
        let value = heap(1, &[(DESCRIPTOR_ID_ID, 0)], &[(DESCRIPTOR_NAME_ID, b"a")]);
        assert_eq!(parse48(&value, 0), vec![Err(DescriptorError::MissingId)]);
        let d = parse_items(vec![imm(DESCRIPTOR_ID_ID, 0), imm(DESCRIPTOR_ID_ID, 5)]);
        assert_eq!(d.id, 5);
    }

    #[test]
    fn a_whole_packet_replaces_the_live_heap_even_with_its_cnt() {
        let (s1, s2) = split_heap(1, 10, b"abcd", true, 2);
        let whole = heap(1, &[(DESCRIPTOR_ID_ID, 7)], &[(DESCRIPTOR_NAME_ID, b"Y")]);
        assert_eq!(
            names(&parse48(&[s1, whole, s2].concat(), 0)),
            vec![
                Err(DescriptorError::IncompleteHeap),
                Ok(b"Y".to_vec()),
                Err(DescriptorError::OutOfOrder),
            ]
        );
    }

    #[test]
    fn a_heap_with_an_address_beyond_its_end_blocks_its_cnt() {
        // It stays live and never completes: later non-whole packets of cnt 1 are dropped.
        let bad = packet(
            1,
            Some(1),
            0,
            vec![imm(DESCRIPTOR_ID_ID, 1), addr(DESCRIPTOR_NAME_ID, 3)],
            b"a",
        );
        let (c1, c2) = split_heap(1, 4, b"cd", true, 1);
        assert_eq!(
            names(&parse48(&[bad.clone(), c1, c2].concat(), 0)),
            vec![
                Err(DescriptorError::HeapLengthMismatch),
                Err(DescriptorError::HeapLengthMismatch),
                Err(DescriptorError::AddressBeyondHeap),
            ]
        );
        let (d1, d2) = split_heap(3, 4, b"cd", true, 1);
        assert_eq!(
            names(&parse48(&[bad, d1, d2].concat(), 0)),
            vec![Err(DescriptorError::AddressBeyondHeap), Ok(b"cd".to_vec())]
        );
    }

    #[test]
    fn a_flushed_heap_may_run_past_its_heap_length() {
        // HEAP_LENGTH 4 and 2 bytes, then an unsized packet brings 4 more: used when evicted.
        let first = packet(
            1,
            Some(4),
            0,
            vec![imm(DESCRIPTOR_ID_ID, 1), addr(DESCRIPTOR_NAME_ID, 0)],
            b"ab",
        );
        let second = packet(1, None, 2, vec![], b"cdef");
        assert_eq!(
            names(&parse48(&[first, second].concat(), 0)),
            vec![Ok(b"abcdef".to_vec())]
        );
    }

    #[test]
    fn a_refused_stop_packet_does_not_stop() {
        let (s1, _) = split_heap(1, 10, b"abcd", true, 2);
        let stop = packet(
            7,
            Some(4),
            2,
            vec![imm(STREAM_CTRL_ID, CTRL_STREAM_STOP)],
            b"cd",
        );
        let later = heap(9, &[(DESCRIPTOR_ID_ID, 99)], &[(DESCRIPTOR_NAME_ID, b"L")]);
        assert_eq!(
            names(&parse48(&[s1, stop, later].concat(), 0)),
            vec![
                Err(DescriptorError::OutOfOrder),
                Err(DescriptorError::IncompleteHeap),
                Ok(b"L".to_vec()),
            ]
        );
    }

    #[test]
    fn a_stop_in_an_unsized_heap_still_delivers_it() {
        let value = packet(
            1,
            None,
            0,
            vec![
                imm(DESCRIPTOR_ID_ID, 1),
                imm(STREAM_CTRL_ID, CTRL_STREAM_STOP),
                addr(DESCRIPTOR_NAME_ID, 0),
            ],
            b"ab",
        );
        let later = heap(9, &[(DESCRIPTOR_ID_ID, 99)], &[]);
        assert_eq!(
            names(&parse48(&[value, later].concat(), 0)),
            vec![Ok(b"ab".to_vec())]
        );
    }

    /// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
    fn noise(seed: u64) -> impl FnMut() -> u64 {
        let mut state = seed | 1;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    #[test]
    fn never_panics_on_corrupted_or_truncated_input() {
        let mut rng = noise(0x5eed);
        for (reference, fl, _) in vectors() {
            let good = hex(reference);
            for cut in 0..good.len() {
                let _ = RawDescriptor::parse_all(&good[..cut], fl);
            }
            for _ in 0..2000 {
                let mut bad = good.clone();
                for _ in 0..(rng() % 4 + 1) {
                    let at = (rng() % bad.len() as u64) as usize;
                    bad[at] = rng() as u8;
                }
                let events = RawDescriptor::parse_all(&bad, fl);
                // Every event consumed at least one packet of 8 or more bytes.
                assert!(events.len() <= bad.len() / 8 + 1);
                for d in events.into_iter().flatten() {
                    let size = d.name.len() + d.description.len() + d.numpy_header.len();
                    assert!(size <= bad.len());
                }
            }
        }
    }
}
