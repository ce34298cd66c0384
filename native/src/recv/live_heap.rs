//! A heap under construction: the packets of one heap cnt, merged into one payload buffer.
//!
//! Rules, as spead2 4.5.1 applies them (checked against the real library with hand-made
//! packets; the limits on size and pointers are ours):
//! - Every packet of a heap must use the heap's flavour (address width), else it is rejected
//!   ("flavour is inconsistent with the heap").
//! - HEAP_LENGTH, when a packet carries one, must equal any earlier one, and must not be below
//!   the highest address seen in earlier packets (payload ends and item addresses). Packets
//!   without HEAP_LENGTH are fine in a sized heap, and a later HEAP_LENGTH sizes an unsized one.
//! - In order (the default): a packet must start where the received payload ends, so a new
//!   heap starts at offset 0. Zero-length packets follow the same rule.
//! - Out of order: received ranges are kept sorted and merged when adjacent. A packet whose
//!   start lies inside a received range is a silent duplicate; one that starts in a gap but
//!   runs into the next range is rejected as a partial overlap (logged). A zero-length packet
//!   in a gap is accepted and leaves an empty range, which spead2 reports in payload_ranges.
//! - Item pointers are deduplicated by their full 64-bit value, across and within packets.
//! - An item address beyond HEAP_LENGTH is accepted, but the heap can then never complete.
//!   Addressed pointers with framing IDs are dropped, yet their addresses still count.
//! - A packet without HEAP_LENGTH whose payload runs past the heap's known length is rejected
//!   here; spead2 4.5.1 accepts it and writes past the end of its buffer.
//!
//! Memory: a sized heap's buffer is allocated once, HEAP_LENGTH bytes, when its length is first
//! known; an unsized heap grows geometrically (allocate, copy, release), bounded by
//! `max_heap_size`. Each payload byte is otherwise copied exactly once, from packet to buffer.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use super::config::{Memcpy, StreamConfig};
use super::heap::{ReceivedHeap, ReceivedHeapParts};
use super::stats::DropReason;
use crate::memory::copy::{copy_payload, Source};
use crate::memory::{Allocator, Buffer};
use crate::protocol::ids::{CTRL_STREAM_STOP, HEAP_CNT_ID, PAYLOAD_LENGTH_ID, STREAM_CTRL_ID};
use crate::protocol::{DecodeError, PacketHeader};

/// Most disjoint payload ranges an out-of-order heap may hold (bounds memory and insert cost).
pub const MAX_PAYLOAD_RANGES: usize = 1 << 16;
/// First buffer size for an unsized heap (later ones double).
const MIN_UNSIZED_CAPACITY: u64 = 4096;
/// Up to this many pointers, duplicates are found by a linear scan; beyond, by a hash set.
const LINEAR_DEDUP_LIMIT: usize = 16;
/// Scratch capacity kept between heaps; anything larger is released when a heap ends.
const RETAINED_CAPACITY: usize = 4096;

/// The stream settings that heap assembly obeys.
#[derive(Clone)]
pub struct HeapRules {
    pub allow_out_of_order: bool,
    /// Copy the received ranges into incomplete `ReceivedHeap`s
    /// (`RingStreamConfig.incomplete_keep_payload_ranges`).
    pub keep_payload_ranges: bool,
    pub max_heap_size: u64,
    pub max_heap_pointers: usize,
    pub bug_compat: u32,
    pub memcpy: Memcpy,
    /// Where the current batch's packets are (the reader says so; see `memory::copy`).
    pub source: Source,
    pub allocator: Arc<dyn Allocator>,
}

impl HeapRules {
    pub fn new(config: &StreamConfig, keep_payload_ranges: bool) -> Self {
        HeapRules {
            allow_out_of_order: config.allow_out_of_order,
            keep_payload_ranges,
            max_heap_size: config.max_heap_size,
            max_heap_pointers: config.max_heap_pointers,
            bug_compat: config.bug_compat,
            memcpy: config.memcpy,
            source: Source::Cache,
            allocator: Arc::clone(&config.allocator),
        }
    }
}

/// A heap being assembled. Reused between heaps to keep its scratch allocations.
#[derive(Default)]
pub struct LiveHeap {
    cnt: u64,
    heap_address_bits: u32,
    heap_length: Option<u64>,
    received_length: u64,
    /// Highest address seen: payload ends and item addresses.
    min_length: u64,
    /// End of the furthest payload byte received.
    payload_end: u64,
    packets: u64,
    end_of_stream: bool,
    pointers: Vec<u64>,
    seen: PointerSet,
    payload: Option<Buffer>,
    ranges: RangeSet,
}

impl LiveHeap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes this an empty heap `cnt` in flavour SPEAD-64-`heap_address_bits`.
    pub fn start(&mut self, cnt: u64, heap_address_bits: u32) {
        self.clear();
        self.cnt = cnt;
        self.heap_address_bits = heap_address_bits;
    }

    /// Adds one packet of this heap, or rejects it leaving the heap unchanged.
    pub fn add_packet(
        &mut self,
        packet: &PacketHeader<'_>,
        rules: &HeapRules,
    ) -> Result<(), DropReason> {
        self.check_flavour(packet)?;
        self.check_heap_length(packet)?;
        // Both terms are below 2^56, so the sum cannot overflow.
        let end = packet.payload_offset + packet.payload_length;
        self.check_fits(end)?;
        let scan = PointerScan::of(packet);
        self.check_size(packet, end, &scan, rules)?;
        self.check_pointer_count(packet, &scan, rules)?;
        let placement = self.place(packet, end, rules)?;
        self.reserve(packet.heap_length, end, rules)?;
        self.commit(packet, end, placement, &scan, rules);
        Ok(())
    }

    /// Hands the heap over and leaves this one empty (scratch capacity kept).
    pub fn finish(&mut self, rules: &HeapRules) -> ReceivedHeap {
        let contiguous = self.is_contiguous();
        let payload_ranges = if rules.keep_payload_ranges && !contiguous {
            self.payload_ranges()
        } else {
            Vec::new()
        };
        let logical_len = self.heap_length.unwrap_or(self.payload_end);
        let parts = ReceivedHeapParts {
            cnt: self.cnt,
            heap_address_bits: self.heap_address_bits,
            bug_compat: rules.bug_compat,
            pointers: self.pointers.as_slice().into(),
            payload: self.payload.take(),
            payload_len: usize::try_from(logical_len).unwrap_or(usize::MAX),
            heap_length: self.heap_length,
            received_length: self.received_length,
            payload_ranges,
            complete: self.is_complete(),
            contiguous,
        };
        self.clear();
        ReceivedHeap::new(parts)
    }

    /// Drops the heap (its buffer goes back to the allocator) and leaves this one empty.
    pub fn discard(&mut self) {
        self.clear();
    }

    pub fn cnt(&self) -> u64 {
        self.cnt
    }

    pub fn heap_address_bits(&self) -> u32 {
        self.heap_address_bits
    }

    pub fn heap_length(&self) -> Option<u64> {
        self.heap_length
    }

    pub fn received_length(&self) -> u64 {
        self.received_length
    }

    /// The highest address seen so far (payload ends and item addresses).
    pub fn min_length(&self) -> u64 {
        self.min_length
    }

    /// Packets accepted into this heap.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Raw item pointers kept so far (deduplicated, arrival order, framing IDs removed).
    pub fn pointers(&self) -> &[u64] {
        &self.pointers
    }

    /// Bytes of the payload buffer currently allocated (0 before the first allocation).
    pub fn capacity(&self) -> usize {
        self.payload.as_ref().map_or(0, Buffer::len)
    }

    /// Received ranges, sorted and merged.
    pub fn payload_ranges(&self) -> Vec<(u64, u64)> {
        if !self.ranges.ranges.is_empty() {
            self.ranges.ranges.clone()
        } else if self.received_length > 0 {
            // In-order heaps are a single prefix and keep no range set.
            vec![(0, self.received_length)]
        } else {
            Vec::new()
        }
    }

    /// Every byte of a known HEAP_LENGTH received, and no item address beyond it.
    pub fn is_complete(&self) -> bool {
        self.heap_length == Some(self.received_length) && self.min_length == self.received_length
    }

    /// Everything from 0 to the highest address seen has arrived (and the heap length, if
    /// known, is reached). spead2 delivers such a heap as `Heap`, otherwise `IncompleteHeap`.
    pub fn is_contiguous(&self) -> bool {
        self.received_length == self.min_length
            && self
                .heap_length
                .is_none_or(|len| len == self.received_length)
    }

    /// A STREAM_CTRL immediate with value CTRL_STREAM_STOP has been accepted.
    pub fn is_end_of_stream(&self) -> bool {
        self.end_of_stream
    }

    fn clear(&mut self) {
        self.heap_length = None;
        self.received_length = 0;
        self.min_length = 0;
        self.payload_end = 0;
        self.packets = 0;
        self.end_of_stream = false;
        self.pointers.clear();
        if self.pointers.capacity() > RETAINED_CAPACITY {
            self.pointers = Vec::new();
        }
        self.seen.clear();
        self.payload = None;
        self.ranges.clear();
    }

    fn check_flavour(&self, packet: &PacketHeader<'_>) -> Result<(), DropReason> {
        if packet.heap_address_bits != self.heap_address_bits {
            log::info!("packet rejected because its flavour is inconsistent with the heap");
            return Err(DropReason::FlavourMismatch);
        }
        Ok(())
    }

    fn check_heap_length(&self, packet: &PacketHeader<'_>) -> Result<(), DropReason> {
        let Some(len) = packet.heap_length else {
            return Ok(());
        };
        if self.heap_length.is_some_and(|known| known != len) {
            log::info!("packet rejected because its HEAP_LEN is inconsistent with the heap");
            return Err(DropReason::HeapLengthMismatch);
        }
        if len < self.min_length {
            log::info!("packet rejected because its HEAP_LEN is too small for the heap");
            return Err(DropReason::HeapLengthMismatch);
        }
        Ok(())
    }

    /// A packet without HEAP_LENGTH must still fit the length the heap already has. (spead2
    /// 4.5.1 does not check this and writes past the end of its heap buffer.)
    fn check_fits(&self, end: u64) -> Result<(), DropReason> {
        if self.heap_length.is_some_and(|len| end > len) {
            log::info!("packet rejected because payload would overflow given heap length");
            return Err(DropReason::Decode(DecodeError::PayloadOverflowsHeap));
        }
        Ok(())
    }

    /// Nothing in the packet may reach beyond `max_heap_size`: checked before any allocation.
    fn check_size(
        &self,
        packet: &PacketHeader<'_>,
        end: u64,
        scan: &PointerScan,
        rules: &HeapRules,
    ) -> Result<(), DropReason> {
        let reach = packet
            .heap_length
            .unwrap_or(0)
            .max(end)
            .max(scan.max_address);
        if reach > rules.max_heap_size {
            log::warn!(
                "packet rejected because heap {} would exceed max_heap_size ({} > {})",
                self.cnt,
                reach,
                rules.max_heap_size
            );
            return Err(DropReason::HeapTooLarge);
        }
        Ok(())
    }

    fn check_pointer_count(
        &self,
        packet: &PacketHeader<'_>,
        scan: &PointerScan,
        rules: &HeapRules,
    ) -> Result<(), DropReason> {
        if self.pointers.len() + scan.candidates <= rules.max_heap_pointers {
            return Ok(());
        }
        // Near the limit, count only pointers the heap lacks (duplicates within the packet
        // are counted each time, which errs on the side of rejecting).
        let fresh = kept_pointers(packet)
            .filter(|&p| !self.seen.contains(&self.pointers, p))
            .count();
        if self.pointers.len() + fresh > rules.max_heap_pointers {
            log::warn!(
                "packet rejected because heap {} would exceed max_heap_pointers ({})",
                self.cnt,
                rules.max_heap_pointers
            );
            return Err(DropReason::TooManyPointers);
        }
        Ok(())
    }

    fn place(
        &self,
        packet: &PacketHeader<'_>,
        end: u64,
        rules: &HeapRules,
    ) -> Result<Option<Placement>, DropReason> {
        let offset = packet.payload_offset;
        if !rules.allow_out_of_order {
            if offset == self.received_length {
                return Ok(None);
            }
            if self.packets == 0 {
                log::debug!(
                    "packet rejected because it does not start heap {} at offset 0",
                    self.cnt
                );
            } else if offset > self.received_length {
                // A gap ahead (lost packets): spead2 drops it without a word; the heap is
                // reported incomplete later.
                log::debug!(
                    "packet rejected because it skips ahead in heap {}",
                    self.cnt
                );
            } else {
                log::warn!(
                    "packet rejected because it is out-of-order in the heap (you might need to \
                     set allow_out_of_order to false in the stream config)"
                );
            }
            return Err(DropReason::OutOfOrder);
        }
        match self.ranges.place(offset, end) {
            Ok(placement) => Ok(Some(placement)),
            Err(RangeError::Duplicate) => {
                log::debug!("packet rejected because its payload was already received");
                Err(DropReason::Duplicate)
            }
            Err(RangeError::PartialOverlap) => {
                log::warn!("packet rejected because it partially overlaps existing payload");
                Err(DropReason::PartialOverlap)
            }
            Err(RangeError::TooMany) => {
                log::warn!(
                    "packet rejected because heap {} has too many disjoint payload ranges",
                    self.cnt
                );
                Err(DropReason::TooManyRanges)
            }
        }
    }

    /// Makes the buffer hold the whole heap (sized) or at least `end` bytes (unsized).
    fn reserve(
        &mut self,
        packet_heap_length: Option<u64>,
        end: u64,
        rules: &HeapRules,
    ) -> Result<(), DropReason> {
        let have = self.capacity() as u64;
        let size = match self.heap_length.or(packet_heap_length) {
            Some(len) if len <= have => return Ok(()),
            Some(len) => len,
            None if end <= have => return Ok(()),
            None => end
                .max(have.saturating_mul(2))
                .max(MIN_UNSIZED_CAPACITY)
                .min(rules.max_heap_size),
        };
        self.reallocate(size, rules)
    }

    fn reallocate(&mut self, size: u64, rules: &HeapRules) -> Result<(), DropReason> {
        let size = usize::try_from(size).map_err(|_| DropReason::HeapTooLarge)?;
        let mut buffer = match rules.allocator.allocate(size) {
            Ok(buffer) if buffer.len() >= size => buffer,
            Ok(_) => return Err(self.allocation_failed(size, "allocator returned a short buffer")),
            Err(e) => return Err(self.allocation_failed(size, &e.to_string())),
        };
        if let Some(old) = &self.payload {
            // `payload_end` never exceeds the old buffer, and the new one is larger.
            let keep = self.payload_end as usize;
            buffer[..keep].copy_from_slice(&old[..keep]);
        }
        self.payload = Some(buffer);
        Ok(())
    }

    fn allocation_failed(&self, size: usize, why: &str) -> DropReason {
        log::warn!(
            "packet rejected because allocating {} bytes for heap {} failed: {}",
            size,
            self.cnt,
            why
        );
        DropReason::AllocationFailed
    }

    fn commit(
        &mut self,
        packet: &PacketHeader<'_>,
        end: u64,
        placement: Option<Placement>,
        scan: &PointerScan,
        rules: &HeapRules,
    ) {
        if packet.heap_length.is_some() {
            self.heap_length = packet.heap_length;
        }
        if let Some(buffer) = self.payload.as_mut() {
            // `reserve` made the buffer at least `end` bytes long, so this always matches.
            let target = buffer.get_mut(packet.payload_offset as usize..end as usize);
            debug_assert!(target.is_some(), "payload buffer too short");
            if let Some(target) = target {
                copy_payload(target, packet.payload, rules.memcpy, rules.source);
            }
        }
        self.received_length += packet.payload_length;
        self.payload_end = self.payload_end.max(end);
        self.min_length = self.min_length.max(end).max(scan.max_address);
        if let Some(placement) = placement {
            self.ranges.commit(placement, packet.payload_offset, end);
        }
        for pointer in kept_pointers(packet) {
            if !self.seen.contains(&self.pointers, pointer) {
                self.pointers.push(pointer);
                self.seen.note(&self.pointers, pointer);
            }
        }
        self.end_of_stream |= scan.stop;
        self.packets += 1;
    }
}

/// A packet's raw pointers, without the framing IDs HEAP_CNT..PAYLOAD_LENGTH (spead2 keeps
/// none of those in a heap, immediate or addressed).
fn kept_pointers<'a>(packet: &PacketHeader<'a>) -> impl Iterator<Item = u64> + 'a {
    let hab = packet.heap_address_bits;
    packet
        .iter_pointers()
        .filter(move |p| !is_framing(p.id(hab)))
        .map(|p| p.0)
}

fn is_framing(id: u64) -> bool {
    (HEAP_CNT_ID..=PAYLOAD_LENGTH_ID).contains(&id)
}

/// What a packet's pointers would contribute, gathered before anything changes.
struct PointerScan {
    candidates: usize,
    max_address: u64,
    stop: bool,
}

impl PointerScan {
    fn of(packet: &PacketHeader<'_>) -> Self {
        let hab = packet.heap_address_bits;
        let mut scan = PointerScan {
            candidates: 0,
            max_address: 0,
            stop: false,
        };
        for p in packet.iter_pointers() {
            let id = p.id(hab);
            if !p.is_immediate() {
                // Even the addresses of framing IDs count: spead2 drops those pointers but
                // still raises the heap's highest address.
                scan.max_address = scan.max_address.max(p.value(hab));
            } else if id == STREAM_CTRL_ID && p.value(hab) == CTRL_STREAM_STOP {
                scan.stop = true;
            }
            if !is_framing(id) {
                scan.candidates += 1;
            }
        }
        scan
    }
}

/// Deduplication of a heap's pointers: a scan while few, a hash set once many.
#[derive(Default)]
struct PointerSet {
    hashed: HashSet<u64, BuildHasherDefault<PointerHasher>>,
    active: bool,
}

impl PointerSet {
    fn clear(&mut self) {
        self.active = false;
        if self.hashed.capacity() > RETAINED_CAPACITY {
            self.hashed = HashSet::default();
        } else {
            self.hashed.clear();
        }
    }

    fn contains(&self, pointers: &[u64], pointer: u64) -> bool {
        if self.active {
            self.hashed.contains(&pointer)
        } else {
            pointers.contains(&pointer)
        }
    }

    /// Records `pointer`, which was just pushed onto `pointers`.
    fn note(&mut self, pointers: &[u64], pointer: u64) {
        if self.active {
            self.hashed.insert(pointer);
        } else if pointers.len() > LINEAR_DEDUP_LIMIT {
            self.hashed.extend(pointers.iter().copied());
            self.active = true;
        }
    }
}

/// Multiplicative hash for pointer values (which are not attacker-keyed table indices that
/// matter here: a collision flood only slows one bounded heap).
#[derive(Default)]
struct PointerHasher(u64);

impl Hasher for PointerHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, value: u64) {
        let mixed = (self.0 ^ value).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = mixed ^ (mixed >> 29);
    }
}

/// Where an out-of-order packet's range goes in the set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    /// Extends the range at this index (which ends where the packet starts).
    Extend(usize),
    /// Becomes a new range at this index (or the start of the next one, if adjacent).
    Insert(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RangeError {
    Duplicate,
    PartialOverlap,
    TooMany,
}

/// Received payload ranges of an out-of-order heap: sorted, disjoint, adjacent ones merged.
#[derive(Default)]
struct RangeSet {
    ranges: Vec<(u64, u64)>,
}

impl RangeSet {
    fn clear(&mut self) {
        self.ranges.clear();
        if self.ranges.capacity() > RETAINED_CAPACITY {
            self.ranges = Vec::new();
        }
    }

    fn place(&self, start: u64, end: u64) -> Result<Placement, RangeError> {
        let r = &self.ranges;
        // Packets mostly arrive in order, so try after the last range before searching.
        let i = match r.last() {
            Some(&(s, _)) if s <= start => r.len(),
            _ => r.partition_point(|&(s, _)| s <= start),
        };
        if i > 0 && start < r[i - 1].1 {
            return Err(RangeError::Duplicate);
        }
        let joins_next = match r.get(i) {
            Some(&(s, _)) if s < end => return Err(RangeError::PartialOverlap),
            Some(&(s, _)) => s == end,
            None => false,
        };
        if i > 0 && r[i - 1].1 == start {
            return Ok(Placement::Extend(i - 1));
        }
        if !joins_next && r.len() >= MAX_PAYLOAD_RANGES {
            return Err(RangeError::TooMany);
        }
        Ok(Placement::Insert(i))
    }

    fn commit(&mut self, placement: Placement, start: u64, end: u64) {
        match placement {
            Placement::Extend(p) => {
                self.ranges[p].1 = end;
                if let Some(&(s, e)) = self.ranges.get(p + 1) {
                    if s == end {
                        self.ranges[p].1 = e;
                        self.ranges.remove(p + 1);
                    }
                }
            }
            Placement::Insert(i) => match self.ranges.get_mut(i) {
                Some(next) if next.0 == end => next.0 = start,
                _ => self.ranges.insert(i, (start, end)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::DefaultAllocator;
    use crate::protocol::ids::{HEAP_LENGTH_ID, NULL_ID};
    use crate::protocol::packet::PacketSpec;
    use crate::protocol::ItemPointer;
    use std::io;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const HAB: u32 = 48;

    fn rules(allow_out_of_order: bool) -> HeapRules {
        HeapRules {
            allow_out_of_order,
            keep_payload_ranges: true,
            max_heap_size: 1 << 20,
            max_heap_pointers: 64,
            bug_compat: 0,
            memcpy: Memcpy::Std,
            source: Source::Cache,
            allocator: Arc::new(DefaultAllocator),
        }
    }

    fn spec(
        heap_length: Option<u64>,
        offset: u64,
        payload: &[u8],
        items: &[ItemPointer],
    ) -> Vec<u8> {
        PacketSpec {
            heap_address_bits: HAB,
            heap_cnt: 1,
            heap_length,
            payload_offset: offset,
            items: items.to_vec(),
            payload: payload.to_vec(),
        }
        .emit()
    }

    fn add(heap: &mut LiveHeap, bytes: &[u8], rules: &HeapRules) -> Result<(), DropReason> {
        let (packet, _) = PacketHeader::parse(bytes).expect("test packet decodes");
        heap.add_packet(&packet, rules)
    }

    fn fresh() -> LiveHeap {
        let mut heap = LiveHeap::new();
        heap.start(1, HAB);
        heap
    }

    fn data() -> Vec<u8> {
        (0..32).collect()
    }

    /// (offset, length) of a packet of `data()`, heap length 32.
    fn part(offset: u64, len: usize) -> Vec<u8> {
        let d = data();
        spec(
            Some(32),
            offset,
            &d[offset as usize..offset as usize + len],
            &[],
        )
    }

    #[test]
    fn in_order_packets_assemble_a_complete_heap() {
        let r = rules(false);
        let mut heap = fresh();
        add(&mut heap, &part(0, 16), &r).unwrap();
        assert!(!heap.is_complete());
        assert_eq!(heap.payload_ranges(), vec![(0, 16)]);
        add(&mut heap, &part(16, 16), &r).unwrap();
        assert!(heap.is_complete() && heap.is_contiguous());
        assert_eq!(heap.capacity(), 32);
        let done = heap.finish(&r);
        assert_eq!(done.payload(), data().as_slice());
        assert_eq!((done.heap_length(), done.received_length()), (32, 32));
        assert!(
            done.payload_ranges().is_empty(),
            "complete heaps carry no ranges"
        );
        assert_eq!(heap.received_length(), 0, "finish leaves the heap empty");
    }

    #[test]
    fn in_order_mode_rejects_gaps_repeats_and_late_starts() {
        let r = rules(false);
        let mut heap = fresh();
        assert_eq!(
            add(&mut heap, &part(16, 16), &r),
            Err(DropReason::OutOfOrder)
        );
        add(&mut heap, &part(0, 16), &r).unwrap();
        assert_eq!(
            add(&mut heap, &part(0, 16), &r),
            Err(DropReason::OutOfOrder)
        );
        assert_eq!(
            add(&mut heap, &part(24, 8), &r),
            Err(DropReason::OutOfOrder)
        );
        assert_eq!(heap.received_length(), 16);
        // A zero-length packet where the payload ends is in order.
        add(&mut heap, &spec(Some(32), 16, &[], &[]), &r).unwrap();
        assert_eq!(heap.packets(), 2);
    }

    #[test]
    fn out_of_order_ranges_merge_and_detect_duplicates() {
        let r = rules(true);
        let mut heap = fresh();
        add(&mut heap, &part(24, 8), &r).unwrap();
        add(&mut heap, &part(0, 8), &r).unwrap();
        assert_eq!(heap.payload_ranges(), vec![(0, 8), (24, 32)]);
        // Starts inside a received range: duplicate, even if it runs further.
        assert_eq!(add(&mut heap, &part(4, 8), &r), Err(DropReason::Duplicate));
        // Starts in the gap but runs into the next range: partial overlap.
        assert_eq!(
            add(&mut heap, &part(16, 12), &r),
            Err(DropReason::PartialOverlap)
        );
        add(&mut heap, &part(16, 8), &r).unwrap();
        assert_eq!(heap.payload_ranges(), vec![(0, 8), (16, 32)]);
        assert!(!heap.is_complete());
        add(&mut heap, &part(8, 8), &r).unwrap();
        assert_eq!(heap.payload_ranges(), vec![(0, 32)]);
        assert!(heap.is_complete());
        assert_eq!(heap.finish(&r).payload(), data().as_slice());
    }

    #[test]
    fn zero_length_packets_in_gaps_leave_empty_ranges() {
        // Peer facts: z8 then [16,24) reports ranges [(8,8),(16,24)]; z8 then [0,8) merges to
        // [(0,8)]; z8 then [0,16) is a partial overlap; z8 twice is accepted twice.
        let r = rules(true);
        let mut heap = fresh();
        add(&mut heap, &spec(Some(32), 8, &[], &[]), &r).unwrap();
        add(&mut heap, &spec(Some(32), 8, &[], &[]), &r).unwrap();
        add(&mut heap, &part(16, 8), &r).unwrap();
        assert_eq!(heap.payload_ranges(), vec![(8, 8), (16, 24)]);
        assert_eq!(
            add(&mut heap, &part(0, 16), &r),
            Err(DropReason::PartialOverlap)
        );
        add(&mut heap, &part(0, 8), &r).unwrap();
        assert_eq!(heap.payload_ranges(), vec![(0, 8), (16, 24)]);
        add(&mut heap, &part(8, 8), &r).unwrap();
        assert_eq!(heap.payload_ranges(), vec![(0, 24)]);
    }

    #[test]
    fn range_placement_rules() {
        let mut set = RangeSet::default();
        for (s, e) in [(8, 16), (20, 24)] {
            let p = set.place(s, e).unwrap();
            set.commit(p, s, e);
        }
        assert_eq!(set.place(4, 10), Err(RangeError::PartialOverlap));
        assert_eq!(set.place(16, 21), Err(RangeError::PartialOverlap));
        assert_eq!(set.place(15, 20), Err(RangeError::Duplicate));
        assert_eq!(set.place(8, 8), Err(RangeError::Duplicate));
        let p = set.place(16, 20).unwrap();
        assert_eq!(p, Placement::Extend(0));
        set.commit(p, 16, 20);
        assert_eq!(set.ranges, vec![(8, 24)]);
        let p = set.place(0, 8).unwrap();
        assert_eq!(p, Placement::Insert(0));
        set.commit(p, 0, 8);
        assert_eq!(set.ranges, vec![(0, 24)]);
    }

    #[test]
    fn range_count_is_bounded() {
        let mut set = RangeSet::default();
        for k in 0..MAX_PAYLOAD_RANGES as u64 {
            let p = set.place(2 * k, 2 * k + 1).unwrap();
            set.commit(p, 2 * k, 2 * k + 1);
        }
        let n = MAX_PAYLOAD_RANGES as u64;
        assert_eq!(set.place(2 * n, 2 * n + 1), Err(RangeError::TooMany));
        // Filling a gap merges and is still allowed.
        assert!(set.place(1, 2).is_ok());
    }

    #[test]
    fn heap_length_must_be_consistent_and_cover_earlier_addresses() {
        let r = rules(false);
        let mut heap = fresh();
        add(&mut heap, &part(0, 16), &r).unwrap();
        let d = data();
        let other = spec(Some(40), 16, &d[16..], &[]);
        assert_eq!(
            add(&mut heap, &other, &r),
            Err(DropReason::HeapLengthMismatch)
        );
        // Peer fact: an address beyond HEAP_LENGTH is accepted, but then a later packet
        // carrying that HEAP_LENGTH is "too small for the heap".
        let mut heap = fresh();
        let beyond = [ItemPointer::addressed(0x1000, 40, HAB)];
        add(&mut heap, &spec(Some(32), 0, &d[..16], &beyond), &r).unwrap();
        assert_eq!(heap.min_length(), 40);
        assert_eq!(
            add(&mut heap, &spec(Some(32), 16, &d[16..], &[]), &r),
            Err(DropReason::HeapLengthMismatch)
        );
        // Without HEAP_LENGTH the packet is accepted, yet the heap never completes.
        add(&mut heap, &spec(None, 16, &d[16..], &[]), &r).unwrap();
        assert_eq!(heap.received_length(), 32);
        assert!(!heap.is_complete() && !heap.is_contiguous());
    }

    #[test]
    fn unsized_packets_must_fit_a_sized_heap() {
        let r = rules(false);
        let mut heap = fresh();
        add(&mut heap, &spec(Some(8), 0, b"abcd", &[]), &r).unwrap();
        assert_eq!(
            add(&mut heap, &spec(None, 4, &[b'x'; 32], &[]), &r),
            Err(DropReason::Decode(DecodeError::PayloadOverflowsHeap))
        );
        add(&mut heap, &spec(None, 4, b"efgh", &[]), &r).unwrap();
        assert!(heap.is_complete());
        assert_eq!(heap.finish(&r).payload(), b"abcdefgh");
    }

    #[test]
    fn flavour_must_match_the_heap() {
        let r = rules(false);
        let mut heap = fresh();
        add(&mut heap, &part(0, 16), &r).unwrap();
        let mut other = PacketSpec {
            heap_address_bits: 40,
            heap_cnt: 1,
            heap_length: Some(32),
            payload_offset: 16,
            items: vec![],
            payload: vec![0; 16],
        };
        assert_eq!(
            add(&mut heap, &other.emit(), &r),
            Err(DropReason::FlavourMismatch)
        );
        other.heap_address_bits = HAB;
        add(&mut heap, &other.emit(), &r).unwrap();
    }

    /// Counts allocations and fails those above `limit` bytes.
    struct CountingAllocator {
        calls: AtomicUsize,
        bytes: AtomicUsize,
        limit: usize,
    }

    impl CountingAllocator {
        fn new(limit: usize) -> Arc<Self> {
            Arc::new(CountingAllocator {
                calls: AtomicUsize::new(0),
                bytes: AtomicUsize::new(0),
                limit,
            })
        }
    }

    impl Allocator for CountingAllocator {
        fn allocate(&self, size: usize) -> io::Result<Buffer> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.bytes.fetch_add(size, Ordering::SeqCst);
            if size > self.limit {
                return Err(io::Error::new(io::ErrorKind::OutOfMemory, "test limit"));
            }
            Ok(Buffer::zeroed(size))
        }
    }

    /// A SPEAD-64-56 packet, so lengths and offsets can reach 2^56 - 1.
    fn wide(heap_length: Option<u64>, offset: u64, items: &[ItemPointer]) -> Vec<u8> {
        PacketSpec {
            heap_address_bits: 56,
            heap_cnt: 1,
            heap_length,
            payload_offset: offset,
            items: items.to_vec(),
            payload: vec![1; 8],
        }
        .emit()
    }

    #[test]
    fn huge_lengths_and_offsets_are_rejected_without_allocating() {
        let alloc = CountingAllocator::new(usize::MAX);
        let mut r = rules(true);
        r.allocator = alloc.clone();
        let top = (1u64 << 56) - 1;
        let cases = [
            wide(Some(1 << 48), 0, &[]),
            wide(Some(top), 0, &[]),
            wide(Some(top), top - 8, &[]),
            wide(None, top - 8, &[]),
            wide(None, (1 << 20) - 4, &[]),
            wide(None, 0, &[ItemPointer::addressed(0x1000, top, 56)]),
        ];
        for bytes in &cases {
            let mut heap = LiveHeap::new();
            heap.start(1, 56);
            assert_eq!(add(&mut heap, bytes, &r), Err(DropReason::HeapTooLarge));
            assert_eq!(heap.capacity(), 0);
        }
        assert_eq!(alloc.calls.load(Ordering::SeqCst), 0);
        // Exactly max_heap_size is fine.
        let mut heap = fresh();
        add(&mut heap, &spec(Some(1 << 20), 0, &[1; 8], &[]), &r).unwrap();
        assert_eq!(alloc.bytes.load(Ordering::SeqCst), 1 << 20);
    }

    #[test]
    fn allocation_failure_rejects_and_leaves_the_heap_unchanged() {
        let mut r = rules(false);
        r.allocator = CountingAllocator::new(100);
        let mut heap = fresh();
        let bytes = spec(
            Some(200),
            0,
            &[1; 8],
            &[ItemPointer::immediate(0x1000, 1, HAB)],
        );
        assert_eq!(
            add(&mut heap, &bytes, &r),
            Err(DropReason::AllocationFailed)
        );
        assert_eq!((heap.received_length(), heap.packets()), (0, 0));
        assert!(heap.pointers().is_empty());
    }

    #[test]
    fn sized_heaps_allocate_once_and_copy_each_byte_once() {
        let alloc = CountingAllocator::new(usize::MAX);
        let mut r = rules(false);
        r.allocator = alloc.clone();
        let mut heap = fresh();
        for k in 0..4 {
            add(&mut heap, &part(8 * k, 8), &r).unwrap();
        }
        assert_eq!(alloc.calls.load(Ordering::SeqCst), 1);
        assert_eq!(heap.finish(&r).payload(), data().as_slice());
    }

    #[test]
    fn unsized_heaps_grow_geometrically_within_the_limit() {
        let alloc = CountingAllocator::new(usize::MAX);
        let mut r = rules(false);
        r.allocator = alloc.clone();
        r.max_heap_size = 20_000;
        let mut heap = fresh();
        let chunk: Vec<u8> = (0..1000).map(|i| (i % 251) as u8).collect();
        let mut expected = Vec::new();
        for k in 0..20 {
            add(&mut heap, &spec(None, 1000 * k, &chunk, &[]), &r).unwrap();
            expected.extend_from_slice(&chunk);
        }
        // 4096, 8192, 16384, then clamped to 20000.
        assert_eq!(alloc.calls.load(Ordering::SeqCst), 4);
        assert_eq!(heap.capacity(), 20_000);
        assert_eq!(
            add(&mut heap, &spec(None, 20_000, &[1], &[]), &r),
            Err(DropReason::HeapTooLarge)
        );
        assert!(heap.is_contiguous() && !heap.is_complete());
        let done = heap.finish(&r);
        assert_eq!(done.heap_length(), -1);
        assert_eq!(done.payload(), expected.as_slice());
    }

    #[test]
    fn a_late_heap_length_sizes_an_unsized_heap() {
        let r = rules(false);
        let mut heap = fresh();
        let d = data();
        add(&mut heap, &spec(None, 0, &d[..16], &[]), &r).unwrap();
        assert_eq!(heap.heap_length(), None);
        add(&mut heap, &spec(Some(32), 16, &d[16..], &[]), &r).unwrap();
        assert!(heap.is_complete());
        assert_eq!(heap.finish(&r).payload(), d.as_slice());
    }

    #[test]
    fn pointers_are_deduplicated_and_framing_ids_dropped() {
        let r = rules(false);
        let mut heap = fresh();
        let a = ItemPointer::addressed(0x1000, 0, HAB);
        let i = ItemPointer::immediate(0x1001, 5, HAB);
        let framing = [
            ItemPointer::addressed(HEAP_CNT_ID, 8, HAB),
            ItemPointer::immediate(HEAP_LENGTH_ID, 32, HAB),
            ItemPointer::addressed(PAYLOAD_LENGTH_ID, 4, HAB),
        ];
        let mut items = vec![a, a, i, ItemPointer::addressed(NULL_ID, 4, HAB)];
        items.extend_from_slice(&framing);
        let d = data();
        add(&mut heap, &spec(Some(32), 0, &d[..16], &items), &r).unwrap();
        add(&mut heap, &spec(Some(32), 16, &d[16..], &[i, a]), &r).unwrap();
        assert_eq!(heap.pointers(), &[a.0, i.0, items[3].0]);
        assert!(heap.is_complete());
        // Peer fact: an addressed framing pointer is dropped, yet its address still counts
        // as the heap's highest address, so one beyond HEAP_LENGTH leaves the heap incomplete.
        let mut heap = fresh();
        let beyond = [ItemPointer::addressed(HEAP_CNT_ID, 44, HAB)];
        add(&mut heap, &spec(Some(32), 0, &d, &beyond), &r).unwrap();
        assert!(heap.pointers().is_empty());
        assert_eq!(heap.min_length(), 44);
        assert!(!heap.is_complete());
    }

    #[test]
    fn many_pointers_switch_to_hashed_dedup_and_respect_the_limit() {
        let r = rules(false);
        let mut heap = fresh();
        let first: Vec<ItemPointer> = (0..40)
            .map(|k| ItemPointer::immediate(0x1000 + k, k, HAB))
            .collect();
        add(&mut heap, &spec(Some(32), 0, &[0; 8], &first), &r).unwrap();
        assert!(heap.seen.active);
        // Repeats cost nothing against the limit (64).
        add(&mut heap, &spec(Some(32), 8, &[0; 8], &first), &r).unwrap();
        assert_eq!(heap.pointers().len(), 40);
        let more: Vec<ItemPointer> = (0..25)
            .map(|k| ItemPointer::immediate(0x2000 + k, k, HAB))
            .collect();
        assert_eq!(
            add(&mut heap, &spec(Some(32), 16, &[0; 8], &more), &r),
            Err(DropReason::TooManyPointers)
        );
        add(&mut heap, &spec(Some(32), 16, &[0; 8], &more[..24]), &r).unwrap();
        assert_eq!(heap.pointers().len(), 64);
    }

    #[test]
    fn stop_control_marks_end_of_stream_only_as_an_immediate() {
        let r = rules(false);
        let mut heap = fresh();
        let addressed = [ItemPointer::addressed(STREAM_CTRL_ID, 0, HAB)];
        add(&mut heap, &spec(Some(32), 0, &[2; 16], &addressed), &r).unwrap();
        assert!(!heap.is_end_of_stream());
        let stop = [ItemPointer::immediate(
            STREAM_CTRL_ID,
            CTRL_STREAM_STOP,
            HAB,
        )];
        add(&mut heap, &spec(Some(32), 16, &[2; 16], &stop), &r).unwrap();
        assert!(heap.is_end_of_stream());
    }

    #[test]
    fn contiguity_of_unsized_and_incomplete_heaps() {
        let r = rules(true);
        // Peer fact: an unsized heap with only a zero-length packet is delivered as a Heap.
        let mut heap = fresh();
        add(&mut heap, &spec(None, 0, &[], &[]), &r).unwrap();
        assert!(heap.is_contiguous() && !heap.is_complete());
        assert_eq!(heap.capacity(), 0);
        // Unsized with an item address beyond the received payload: incomplete.
        let mut heap = fresh();
        let beyond = [ItemPointer::addressed(0x1001, 24, HAB)];
        add(&mut heap, &spec(None, 0, &[0; 16], &beyond), &r).unwrap();
        assert!(!heap.is_contiguous());
        // Sized and half received: incomplete, with its ranges when asked.
        let mut heap = fresh();
        add(&mut heap, &part(8, 8), &r).unwrap();
        let done = heap.finish(&r);
        assert!(!done.is_contiguous());
        assert_eq!(done.payload_ranges(), &[(8, 16)]);
        let mut no_ranges = r.clone();
        no_ranges.keep_payload_ranges = false;
        let mut heap = fresh();
        add(&mut heap, &part(8, 8), &r).unwrap();
        assert!(heap.finish(&no_ranges).payload_ranges().is_empty());
    }

    #[test]
    fn pointer_hasher_spreads_values() {
        let hash = |v: u64| {
            let mut h = PointerHasher::default();
            h.write_u64(v);
            h.finish()
        };
        assert_ne!(hash(1), hash(2));
        assert_ne!(hash(0) >> 57, hash(1 << 40) >> 57);
    }
}
