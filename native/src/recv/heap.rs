//! A finished heap, as handed to the ring: immutable, and read by the bindings in place.
//!
//! Item extraction follows spead2 4.5.1 as observed from the outside (facts checked by feeding
//! hand-made packets to the real library):
//! - Pointers with the framing IDs 1..=4 never reach a heap, whether immediate or addressed
//!   (an addressed HEAP_CNT is not even a boundary between items).
//! - Identical pointers (same 64-bit value) are kept once; two pointers with the same ID and
//!   different values are two items.
//! - Addressed items come first, ordered by address; ties keep arrival order. Each runs to the
//!   next addressed pointer (NULL and DESCRIPTOR pointers included) or to the end of the heap.
//!   Zero-length items are skipped.
//! - Immediates follow, ordered by value; ties keep arrival order.
//! - NULL (id 0) is never an item, immediate or not. DESCRIPTOR items (immediate or not) are
//!   not items either; they are available separately. STREAM_CTRL items are ordinary items.
//! - A heap that is not contiguous (Python's `IncompleteHeap`) reports only its immediates.

use std::borrow::Cow;

use crate::memory::Buffer;
use crate::protocol::ids::{
    CTRL_STREAM_START, CTRL_STREAM_STOP, DESCRIPTOR_ID, NULL_ID, STREAM_CTRL_ID,
};
use crate::protocol::{Flavour, ItemPointer};

/// Where one item's value lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemRef {
    pub id: u64,
    pub is_immediate: bool,
    /// The low heap_address_bits of the pointer for immediates; 0 for addressed items.
    pub immediate_value: u64,
    /// Addressed items: start of the value in `ReceivedHeap::payload()`. Immediates: 0.
    pub offset: usize,
    /// Bytes in the value (heap_address_bits / 8 for immediates).
    pub length: usize,
    /// Immediates: the value as `length` big-endian bytes at the front. Zero otherwise.
    pub immediate_bytes: [u8; 8],
}

impl ItemRef {
    fn immediate(id: u64, value: u64, heap_address_bits: u32) -> Self {
        let width = (heap_address_bits / 8) as usize;
        let be = value.to_be_bytes();
        let mut bytes = [0u8; 8];
        bytes[..width].copy_from_slice(&be[8 - width..]);
        ItemRef {
            id,
            is_immediate: true,
            immediate_value: value,
            offset: 0,
            length: width,
            immediate_bytes: bytes,
        }
    }

    fn addressed(id: u64, offset: usize, length: usize) -> Self {
        ItemRef {
            id,
            is_immediate: false,
            immediate_value: 0,
            offset,
            length,
            immediate_bytes: [0; 8],
        }
    }
}

/// Everything a `ReceivedHeap` is built from (filled by `LiveHeap::finish`).
pub struct ReceivedHeapParts {
    pub cnt: u64,
    pub heap_address_bits: u32,
    pub bug_compat: u32,
    /// Raw item pointers, deduplicated, in arrival order, framing IDs 1..=4 removed.
    pub pointers: Box<[u64]>,
    pub payload: Option<Buffer>,
    /// Logical payload size: HEAP_LENGTH if known, else the end of the furthest payload byte.
    pub payload_len: usize,
    pub heap_length: Option<u64>,
    pub received_length: u64,
    pub payload_ranges: Vec<(u64, u64)>,
    pub complete: bool,
    pub contiguous: bool,
}

/// A heap delivered by heap assembly (complete, evicted or flushed).
pub struct ReceivedHeap {
    parts: ReceivedHeapParts,
    /// Computed once at creation, so they survive `take_payload`.
    start_of_stream: bool,
    end_of_stream: bool,
}

impl std::fmt::Debug for ReceivedHeap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceivedHeap")
            .field("cnt", &self.parts.cnt)
            .field("heap_length", &self.heap_length())
            .field("received_length", &self.parts.received_length)
            .field("complete", &self.parts.complete)
            .field("contiguous", &self.parts.contiguous)
            .finish()
    }
}

impl ReceivedHeap {
    pub fn new(mut parts: ReceivedHeapParts) -> Self {
        // Never let the logical length exceed the memory behind it.
        let available = parts.payload.as_ref().map_or(0, Buffer::len);
        parts.payload_len = parts.payload_len.min(available);
        let mut heap = ReceivedHeap {
            parts,
            start_of_stream: false,
            end_of_stream: false,
        };
        heap.start_of_stream = heap.has_control(CTRL_STREAM_START);
        heap.end_of_stream = heap.has_control(CTRL_STREAM_STOP);
        heap
    }

    /// Moves the payload buffer out (for zero-copy exposure); `payload()` is empty afterwards,
    /// while `items()` keeps describing offsets into the taken buffer.
    pub fn take_payload(&mut self) -> Option<Buffer> {
        self.parts.payload.take()
    }

    /// Bytes of the logical payload (the taken buffer may be longer).
    pub fn payload_len(&self) -> usize {
        self.parts.payload_len
    }

    pub fn cnt(&self) -> u64 {
        self.parts.cnt
    }

    pub fn heap_address_bits(&self) -> u32 {
        self.parts.heap_address_bits
    }

    pub fn bug_compat(&self) -> u32 {
        self.parts.bug_compat
    }

    /// The heap's flavour (address width from its packets, bug_compat from the stream).
    pub fn flavour(&self) -> Flavour {
        Flavour::with_address_bits(
            i64::from(self.parts.heap_address_bits),
            i64::from(self.parts.bug_compat),
        )
        .unwrap_or_default()
    }

    /// Raw item pointers (deduplicated, arrival order, framing IDs removed).
    pub fn pointers(&self) -> &[u64] {
        &self.parts.pointers
    }

    /// The heap's payload: `heap_length` bytes, or up to the furthest byte received if unsized.
    /// Bytes never received read as whatever the allocator supplied (zeros by default).
    pub fn payload(&self) -> &[u8] {
        match &self.parts.payload {
            Some(buffer) => &buffer[..self.parts.payload_len],
            None => &[],
        }
    }

    /// The buffer behind `payload()` (it may be longer than the payload).
    pub fn payload_buffer(&self) -> Option<&Buffer> {
        self.parts.payload.as_ref()
    }

    /// HEAP_LENGTH, or -1 when no packet carried one.
    pub fn heap_length(&self) -> i64 {
        self.parts.heap_length.map_or(-1, |l| l as i64)
    }

    pub fn received_length(&self) -> u64 {
        self.parts.received_length
    }

    /// Received payload ranges; empty unless the ring keeps them and the heap is incomplete.
    pub fn payload_ranges(&self) -> &[(u64, u64)] {
        &self.parts.payload_ranges
    }

    pub fn is_complete(&self) -> bool {
        self.parts.complete
    }

    /// True when spead2 would deliver a `Heap` rather than an `IncompleteHeap`: complete, or
    /// unsized with everything from 0 to the highest address seen.
    pub fn is_contiguous(&self) -> bool {
        self.parts.contiguous
    }

    fn iter_pointers(&self) -> impl Iterator<Item = ItemPointer> + '_ {
        self.parts.pointers.iter().map(|&p| ItemPointer(p))
    }

    /// Whether a STREAM_CTRL item among `items()` carries `value`. As in spead2, addressed
    /// STREAM_CTRL items count here (their value read as a big-endian integer, keeping the
    /// low 64 bits), although only immediates stop a stream. (spead2 4.5.1 itself crashes
    /// reading such values of 24 bytes or more.)
    fn has_control(&self, value: u64) -> bool {
        let hab = self.parts.heap_address_bits;
        // Most heaps have no STREAM_CTRL at all: avoid building the item list for them.
        if !self.iter_pointers().any(|p| p.id(hab) == STREAM_CTRL_ID) {
            return false;
        }
        self.items()
            .iter()
            .any(|item| item.id == STREAM_CTRL_ID && self.integer_value(item) == value)
    }

    fn integer_value(&self, item: &ItemRef) -> u64 {
        if item.is_immediate {
            item.immediate_value
        } else {
            self.addressed_value(item)
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
        }
    }

    pub fn is_start_of_stream(&self) -> bool {
        self.start_of_stream
    }

    pub fn is_end_of_stream(&self) -> bool {
        self.end_of_stream
    }

    /// What Python's `get_items()` returns: every item of a contiguous heap, or only the
    /// immediates of an incomplete one. Descriptors and NULL are excluded.
    pub fn items(&self) -> Vec<ItemRef> {
        if self.parts.contiguous {
            let mut out = self.addressed_items();
            out.extend(self.immediate_items());
            out
        } else {
            self.immediate_items()
        }
    }

    /// Immediate items (not NULL, not DESCRIPTOR), ordered by value.
    pub fn immediate_items(&self) -> Vec<ItemRef> {
        let mut out = self.all_immediates();
        out.retain(|item| is_plain_item(item.id));
        out
    }

    /// Addressed items (not NULL, not DESCRIPTOR, not empty), ordered by address. Values are
    /// clipped to the payload, so an incomplete heap never yields a range outside it.
    pub fn addressed_items(&self) -> Vec<ItemRef> {
        let mut out = self.all_addressed();
        out.retain(|item| is_plain_item(item.id) && item.length > 0);
        out
    }

    /// DESCRIPTOR items, addressed ones (by address) then immediate ones (by value).
    pub fn descriptor_items(&self) -> Vec<ItemRef> {
        let mut out = self.all_addressed();
        out.retain(|item| item.id == DESCRIPTOR_ID && item.length > 0);
        let mut immediates = self.all_immediates();
        immediates.retain(|item| item.id == DESCRIPTOR_ID);
        out.extend(immediates);
        out
    }

    /// The raw value of each descriptor item, ready for the descriptor parser.
    pub fn descriptor_payloads(&self) -> Vec<Cow<'_, [u8]>> {
        self.descriptor_items()
            .into_iter()
            .map(|item| {
                if item.is_immediate {
                    Cow::Owned(item.immediate_bytes[..item.length].to_vec())
                } else {
                    Cow::Borrowed(self.addressed_value(&item))
                }
            })
            .collect()
    }

    /// The bytes of an item's value (for immediates, borrowed from the `ItemRef` itself).
    pub fn value<'a>(&'a self, item: &'a ItemRef) -> &'a [u8] {
        if item.is_immediate {
            &item.immediate_bytes[..item.length.min(8)]
        } else {
            self.addressed_value(item)
        }
    }

    fn addressed_value(&self, item: &ItemRef) -> &[u8] {
        let payload = self.payload();
        let start = item.offset.min(payload.len());
        let end = item.offset.saturating_add(item.length).min(payload.len());
        &payload[start..end]
    }

    /// Every immediate pointer as an item, stable-sorted by value.
    fn all_immediates(&self) -> Vec<ItemRef> {
        let hab = self.parts.heap_address_bits;
        let mut out: Vec<ItemRef> = self
            .iter_pointers()
            .filter(|p| p.is_immediate())
            .map(|p| ItemRef::immediate(p.id(hab), p.value(hab), hab))
            .collect();
        out.sort_by_key(|item| item.immediate_value);
        out
    }

    /// Every addressed pointer as an item (NULL, descriptors and empty ones included),
    /// stable-sorted by address, each running to the next one or to the end of the payload.
    fn all_addressed(&self) -> Vec<ItemRef> {
        let hab = self.parts.heap_address_bits;
        let mut starts: Vec<(u64, u64)> = self
            .iter_pointers()
            .filter(|p| !p.is_immediate())
            .map(|p| (p.value(hab), p.id(hab)))
            .collect();
        starts.sort_by_key(|&(address, _)| address);
        let end = self.parts.payload_len as u64;
        let mut out = Vec::with_capacity(starts.len());
        for (i, &(address, id)) in starts.iter().enumerate() {
            let next = starts.get(i + 1).map_or(end, |&(a, _)| a);
            let start = address.min(end);
            let stop = next.min(end).max(start);
            out.push(ItemRef::addressed(
                id,
                start as usize,
                (stop - start) as usize,
            ));
        }
        out
    }
}

fn is_plain_item(id: u64) -> bool {
    id != NULL_ID && id != DESCRIPTOR_ID
}

#[cfg(test)]
mod tests {
    use super::*;

    const HAB: u32 = 48;

    fn imm(id: u64, value: u64) -> u64 {
        ItemPointer::immediate(id, value, HAB).0
    }

    fn addr(id: u64, address: u64) -> u64 {
        ItemPointer::addressed(id, address, HAB).0
    }

    fn heap(pointers: &[u64], payload: &[u8], contiguous: bool) -> ReceivedHeap {
        let mut buffer = Buffer::zeroed(payload.len());
        buffer.copy_from_slice(payload);
        ReceivedHeap::new(ReceivedHeapParts {
            cnt: 7,
            heap_address_bits: HAB,
            bug_compat: 0,
            pointers: pointers.into(),
            payload: Some(buffer),
            payload_len: payload.len(),
            heap_length: Some(payload.len() as u64),
            received_length: payload.len() as u64,
            payload_ranges: Vec::new(),
            complete: contiguous,
            contiguous,
        })
    }

    fn summary(h: &ReceivedHeap, items: &[ItemRef]) -> Vec<(u64, bool, Vec<u8>)> {
        items
            .iter()
            .map(|i| (i.id, i.is_immediate, h.value(i).to_vec()))
            .collect()
    }

    #[test]
    fn addressed_items_run_to_the_next_pointer_or_the_end() {
        let payload: Vec<u8> = (0..32).collect();
        let h = heap(
            &[addr(0x1000, 0), addr(NULL_ID, 4), addr(0x1001, 20)],
            &payload,
            true,
        );
        let items = h.items();
        assert_eq!(
            summary(&h, &items),
            vec![
                (0x1000, false, (0..4).collect()),
                (0x1001, false, (20..32).collect()),
            ]
        );
        assert_eq!((items[1].offset, items[1].length), (20, 12));
    }

    #[test]
    fn order_is_addressed_by_address_then_immediates_by_value_stably() {
        // Peer fact: pointers I(0x2000,1) A(0x2000,0) I(0x1000,2) A(0x1000,8) I(0x1500,1)
        // A(0x1500,16) I(0x1000,1) come out as A0x2000 A0x1000 A0x1500, then
        // I0x2000/1 I0x1500/1 I0x1000/1 I0x1000/2.
        let payload: Vec<u8> = (0..32).collect();
        let h = heap(
            &[
                imm(0x2000, 1),
                addr(0x2000, 0),
                imm(0x1000, 2),
                addr(0x1000, 8),
                imm(0x1500, 1),
                addr(0x1500, 16),
                imm(0x1000, 1),
            ],
            &payload,
            true,
        );
        let got: Vec<(u64, bool, u64)> = h
            .items()
            .iter()
            .map(|i| (i.id, i.is_immediate, i.immediate_value))
            .collect();
        assert_eq!(
            got,
            vec![
                (0x2000, false, 0),
                (0x1000, false, 0),
                (0x1500, false, 0),
                (0x2000, true, 1),
                (0x1500, true, 1),
                (0x1000, true, 1),
                (0x1000, true, 2),
            ]
        );
    }

    #[test]
    fn equal_addresses_give_the_earlier_pointer_zero_length() {
        // Peer fact: A(0x2000,8) A(0x1000,8) A(0x1500,0) yields 0x1500 (8 bytes) and
        // 0x1000 (the rest); 0x2000 is empty and skipped.
        let payload: Vec<u8> = (0..32).collect();
        let h = heap(
            &[addr(0x2000, 8), addr(0x1000, 8), addr(0x1500, 0)],
            &payload,
            true,
        );
        assert_eq!(
            summary(&h, &h.items()),
            vec![
                (0x1500, false, (0..8).collect()),
                (0x1000, false, (8..32).collect()),
            ]
        );
    }

    #[test]
    fn immediates_carry_big_endian_bytes_of_the_address_width() {
        let h = heap(
            &[imm(0x1004, 0x0102030405), imm(STREAM_CTRL_ID, 0)],
            &[0],
            true,
        );
        let items = h.items();
        assert_eq!(items[0].id, STREAM_CTRL_ID);
        assert_eq!(h.value(&items[0]), &[0, 0, 0, 0, 0, 0]);
        assert_eq!(items[1].immediate_value, 0x0102030405);
        assert_eq!(h.value(&items[1]), &[0, 1, 2, 3, 4, 5]);
        assert_eq!(items[1].length, 6);
        assert!(h.is_start_of_stream());
        assert!(!h.is_end_of_stream());
    }

    #[test]
    fn descriptors_and_null_are_not_items_but_descriptors_are_boundaries() {
        let payload: Vec<u8> = (0..32).collect();
        let h = heap(
            &[
                addr(0x1000, 0),
                addr(DESCRIPTOR_ID, 8),
                imm(NULL_ID, 7),
                imm(DESCRIPTOR_ID, 9),
            ],
            &payload,
            true,
        );
        assert_eq!(
            summary(&h, &h.items()),
            vec![(0x1000, false, (0..8).collect())]
        );
        let descriptors = h.descriptor_payloads();
        assert_eq!(descriptors.len(), 2);
        assert_eq!(&*descriptors[0], &payload[8..32]);
        assert_eq!(&*descriptors[1], &[0, 0, 0, 0, 0, 9]);
    }

    #[test]
    fn incomplete_heaps_report_only_immediates() {
        let h = heap(
            &[
                imm(0x2000, 1),
                addr(0x2000, 0),
                imm(STREAM_CTRL_ID, 0),
                imm(0, 3),
            ],
            &[0; 16],
            false,
        );
        let got: Vec<u64> = h.items().iter().map(|i| i.id).collect();
        assert_eq!(got, vec![STREAM_CTRL_ID, 0x2000]);
        assert_eq!(h.addressed_items().len(), 1);
    }

    #[test]
    fn addresses_beyond_the_payload_are_clipped() {
        let h = heap(&[addr(0x1000, 4), addr(0x1001, 40)], &[9; 8], false);
        let items = h.addressed_items();
        assert_eq!(items.len(), 1);
        assert_eq!((items[0].offset, items[0].length), (4, 4));
        assert_eq!(h.value(&items[0]), &[9; 4]);
    }

    #[test]
    fn addressed_stream_control_counts_as_an_integer() {
        // Peer facts: an addressed STREAM_CTRL item whose bytes are 00 02, or 01 then seven
        // zeros then 02 (low 64 bits), marks end of stream; 02 00 does not; 00 marks start.
        // In an incomplete heap addressed items are invisible, so they mark nothing.
        let cases: [(&[u8], bool, bool); 5] = [
            (&[0, 2], false, true),
            (&[1, 0, 0, 0, 0, 0, 0, 0, 2], false, true),
            (&[2, 0], false, false),
            (&[0], true, false),
            (&[0; 16], true, false),
        ];
        for (bytes, start, stop) in cases {
            let h = heap(&[addr(STREAM_CTRL_ID, 0)], bytes, true);
            assert_eq!(
                (h.is_start_of_stream(), h.is_end_of_stream()),
                (start, stop)
            );
        }
        let h = heap(&[addr(STREAM_CTRL_ID, 0)], &[0], false);
        assert!(!h.is_start_of_stream());
    }

    #[test]
    fn taking_the_payload_keeps_items_and_flags() {
        let mut h = heap(
            &[addr(STREAM_CTRL_ID, 0), addr(0x1000, 1)],
            &[0, 5, 6],
            true,
        );
        let items = h.items();
        let buffer = h.take_payload().expect("payload present");
        assert_eq!(&buffer[items[1].offset..][..items[1].length], &[5, 6]);
        assert!(h.is_start_of_stream());
        assert!(h.payload().is_empty());
        assert_eq!(h.payload_len(), 3);
        assert_eq!(h.items(), items);
    }

    #[test]
    fn heaps_can_cross_threads_and_know_their_flavour() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ReceivedHeap>();
        let h = heap(&[], &[0; 4], true);
        assert_eq!(h.flavour(), Flavour::with_address_bits(48, 0).unwrap());
    }

    #[test]
    fn stop_control_and_unknown_length() {
        let h = ReceivedHeap::new(ReceivedHeapParts {
            cnt: 3,
            heap_address_bits: 40,
            bug_compat: 0,
            pointers: vec![ItemPointer::immediate(STREAM_CTRL_ID, CTRL_STREAM_STOP, 40).0].into(),
            payload: None,
            payload_len: 10,
            heap_length: None,
            received_length: 0,
            payload_ranges: Vec::new(),
            complete: false,
            contiguous: true,
        });
        assert!(h.is_end_of_stream());
        assert_eq!(h.heap_length(), -1);
        assert_eq!(h.payload(), &[] as &[u8]);
        assert_eq!(h.items()[0].length, 5);
        assert_eq!(h.pointers().len(), 1);
    }
}
