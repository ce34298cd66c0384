//! Heap assembly for one receive stream: validated packets in, finished heaps out (sans-IO).
//!
//! The slot discipline and statistics follow spead2 4.5.1 as observed from the outside:
//! - Each substream (heap_cnt mod `substreams`) has `max_heaps` slots used round-robin: every
//!   new heap takes the slot at the head, evicting whatever heap is still there (delivered as
//!   incomplete, counted in `incomplete_heaps_evicted` and `heaps`), and the head advances.
//!   A heap that completes frees its slot but does not move the head.
//! - A packet carrying a whole heap (HEAP_LENGTH == PAYLOAD_LENGTH) skips the lookup: it always
//!   starts a new heap, even if a heap with the same cnt is live, and it still takes (and may
//!   evict) the head slot. It counts in `single_packet_heaps` once accepted, even if an item
//!   address beyond the heap keeps it incomplete (it then stays in the slot).
//! - Other packets are looked up among the substream's live heaps; each lookup adds one to
//!   `search_dist` (spead2 counts hash-chain steps, one per lookup unless cnts collide).
//! - A rejected packet changes nothing: no eviction, no new heap. Every packet offered
//!   counts in `packets`, rejected ones included; a packet without HEAP_LENGTH refused by
//!   `allow_unsized_heaps=false` is rejected before the lookup.
//! - Once a heap completes its cnt is free: a later packet with that cnt starts a new heap.
//! - A packet that brings a STREAM_CTRL stop immediate (with `stop_on_stop_item`) stops the
//!   stream at once. If its heap is then complete it is dropped: not delivered, not in `heaps`
//!   (but in `single_packet_heaps` when it was one packet). If incomplete it stays live and is
//!   flushed like the others. Packets after the stop are not counted.
//! - At stop every live heap is flushed, substream by substream, oldest first within one;
//!   each counts in `incomplete_heaps_flushed` and `heaps`, even an unsized heap that is
//!   contiguous (which Python still receives as a `Heap`).
//! - Unsized heaps never complete: they leave only by eviction or flush.

use super::config::StreamConfig;
use super::heap::ReceivedHeap;
use super::live_heap::{HeapRules, LiveHeap};
use super::stats::{index, DropReason};
use crate::memory::copy::Source;
use crate::protocol::PacketHeader;

/// What an accepted packet did to the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketOutcome {
    Accepted,
    /// The packet carried the stop item and `stop_on_stop_item` is set: the caller should
    /// `flush` and stop. Later packets are rejected with `DropReason::AfterStop`.
    Stop,
}

/// Marks an empty slot; heap cnts are below 2^56, so no real cnt collides with it.
const EMPTY: u64 = u64::MAX;

/// The live heaps of one substream.
struct Substream {
    /// cnt of the heap in each slot, or EMPTY. Kept apart from the heaps for a tight scan.
    cnts: Box<[u64]>,
    heaps: Box<[LiveHeap]>,
    /// The slot the next new heap takes.
    head: usize,
    /// The slot of the last lookup hit, tried first (packets of one heap come in runs).
    last: usize,
}

impl Substream {
    fn new(max_heaps: usize) -> Self {
        Substream {
            cnts: vec![EMPTY; max_heaps].into_boxed_slice(),
            heaps: (0..max_heaps).map(|_| LiveHeap::new()).collect(),
            head: 0,
            last: 0,
        }
    }

    /// The newest live heap with this cnt (several can share one when a whole-heap packet
    /// arrives for a live cnt; spead2 then finds the newer heap).
    fn find(&mut self, cnt: u64) -> Option<usize> {
        if self.cnts[self.last] == cnt {
            return Some(self.last);
        }
        // Slots are taken in order from the head, so newest first is [..head) backwards,
        // then [head..) backwards.
        let (newer, older) = self.cnts.split_at(self.head);
        let slot = match newer.iter().rposition(|&c| c == cnt) {
            Some(slot) => slot,
            None => self.head + older.iter().rposition(|&c| c == cnt)?,
        };
        self.last = slot;
        Some(slot)
    }

    fn take_head(&mut self) -> usize {
        let slot = self.head;
        self.head = (slot + 1) % self.cnts.len();
        slot
    }

    fn occupied(&self) -> usize {
        self.cnts.iter().filter(|&&c| c != EMPTY).count()
    }
}

/// The per-stream heap assembly state machine.
pub struct Assembler {
    rules: HeapRules,
    substreams: Box<[Substream]>,
    /// Where new heaps are built before they earn a slot.
    spare: LiveHeap,
    stop_on_stop_item: bool,
    allow_unsized_heaps: bool,
    stopped: bool,
}

impl Assembler {
    /// `keep_payload_ranges` is `RingStreamConfig.incomplete_keep_payload_ranges`.
    pub fn new(config: &StreamConfig, keep_payload_ranges: bool) -> Self {
        let max_heaps = config.max_heaps.max(1);
        let substreams = (0..config.substreams.max(1))
            .map(|_| Substream::new(max_heaps))
            .collect();
        Assembler {
            rules: HeapRules::new(config, keep_payload_ranges),
            substreams,
            spare: LiveHeap::new(),
            stop_on_stop_item: config.stop_on_stop_item,
            allow_unsized_heaps: config.allow_unsized_heaps,
            stopped: false,
        }
    }

    /// Feeds one decoded packet. Finished heaps go to `out`; statistics are added to `batch`
    /// (indexed by `stats::index`).
    pub fn add_packet(
        &mut self,
        packet: &PacketHeader<'_>,
        batch: &mut [u64],
        out: &mut impl FnMut(ReceivedHeap),
    ) -> Result<PacketOutcome, DropReason> {
        if self.stopped {
            return Err(DropReason::AfterStop);
        }
        bump(batch, index::PACKETS);
        if packet.heap_length.is_none() && !self.allow_unsized_heaps {
            log::info!("packet rejected because it has no HEAP_LEN");
            return Err(DropReason::NoHeapLength);
        }
        let sub = self.substream_of(packet.heap_cnt);
        let outcome = if packet.heap_length == Some(packet.payload_length) {
            self.start_heap(sub, packet, true, batch, out)
        } else {
            bump(batch, index::SEARCH_DIST);
            match self.substreams[sub].find(packet.heap_cnt) {
                Some(slot) => self.add_to_slot(sub, slot, packet, batch, out),
                None => self.start_heap(sub, packet, false, batch, out),
            }
        }?;
        if outcome == PacketOutcome::Stop {
            self.stopped = true;
        }
        Ok(outcome)
    }

    /// Delivers every live heap (at stop), counting each in `incomplete_heaps_flushed`.
    pub fn flush(&mut self, batch: &mut [u64], out: &mut impl FnMut(ReceivedHeap)) {
        for substream in self.substreams.iter_mut() {
            let n = substream.cnts.len();
            for k in 0..n {
                let slot = (substream.head + k) % n;
                if substream.cnts[slot] == EMPTY {
                    continue;
                }
                substream.cnts[slot] = EMPTY;
                let heap = substream.heaps[slot].finish(&self.rules);
                bump(batch, index::INCOMPLETE_HEAPS_FLUSHED);
                bump(batch, index::HEAPS);
                out(heap);
            }
        }
    }

    /// True once a stop item has been accepted.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Heaps currently under construction, over all substreams.
    pub fn live_heaps(&self) -> usize {
        self.substreams.iter().map(Substream::occupied).sum()
    }

    pub fn rules(&self) -> &HeapRules {
        &self.rules
    }

    /// Where the packets added from now on are (see `memory::copy::Source`).
    pub fn set_source(&mut self, source: Source) {
        self.rules.source = source;
    }

    fn substream_of(&self, cnt: u64) -> usize {
        let n = self.substreams.len();
        if n == 1 {
            0
        } else {
            (cnt % n as u64) as usize
        }
    }

    fn add_to_slot(
        &mut self,
        sub: usize,
        slot: usize,
        packet: &PacketHeader<'_>,
        batch: &mut [u64],
        out: &mut impl FnMut(ReceivedHeap),
    ) -> Result<PacketOutcome, DropReason> {
        let substream = &mut self.substreams[sub];
        let heap = &mut substream.heaps[slot];
        heap.add_packet(packet, &self.rules)?;
        if heap.is_complete() {
            substream.cnts[slot] = EMPTY;
            return Ok(deliver(
                heap,
                &self.rules,
                self.stop_on_stop_item,
                batch,
                out,
            ));
        }
        let end_of_stream = heap.is_end_of_stream();
        Ok(self.outcome_of(end_of_stream))
    }

    /// Builds a new heap from its first packet; if accepted it takes the head slot.
    fn start_heap(
        &mut self,
        sub: usize,
        packet: &PacketHeader<'_>,
        single_packet: bool,
        batch: &mut [u64],
        out: &mut impl FnMut(ReceivedHeap),
    ) -> Result<PacketOutcome, DropReason> {
        self.spare.start(packet.heap_cnt, packet.heap_address_bits);
        if let Err(reason) = self.spare.add_packet(packet, &self.rules) {
            self.spare.discard();
            return Err(reason);
        }
        if single_packet {
            bump(batch, index::SINGLE_PACKET_HEAPS);
        }
        let substream = &mut self.substreams[sub];
        let slot = substream.take_head();
        if substream.cnts[slot] != EMPTY {
            substream.cnts[slot] = EMPTY;
            let evicted = substream.heaps[slot].finish(&self.rules);
            bump(batch, index::INCOMPLETE_HEAPS_EVICTED);
            bump(batch, index::HEAPS);
            out(evicted);
        }
        if self.spare.is_complete() {
            let stop = self.stop_on_stop_item;
            return Ok(deliver(&mut self.spare, &self.rules, stop, batch, out));
        }
        std::mem::swap(&mut substream.heaps[slot], &mut self.spare);
        substream.cnts[slot] = packet.heap_cnt;
        substream.last = slot;
        let end_of_stream = substream.heaps[slot].is_end_of_stream();
        Ok(self.outcome_of(end_of_stream))
    }

    fn outcome_of(&self, end_of_stream: bool) -> PacketOutcome {
        if end_of_stream && self.stop_on_stop_item {
            PacketOutcome::Stop
        } else {
            PacketOutcome::Accepted
        }
    }
}

/// Hands a complete heap to `out`, unless it is the stop heap of a stream that stops on it.
fn deliver(
    heap: &mut LiveHeap,
    rules: &HeapRules,
    stop_on_stop_item: bool,
    batch: &mut [u64],
    out: &mut impl FnMut(ReceivedHeap),
) -> PacketOutcome {
    if heap.is_end_of_stream() && stop_on_stop_item {
        heap.discard();
        return PacketOutcome::Stop;
    }
    let finished = heap.finish(rules);
    bump(batch, index::HEAPS);
    out(finished);
    PacketOutcome::Accepted
}

fn bump(batch: &mut [u64], stat: usize) {
    debug_assert!(
        stat < batch.len(),
        "batch stats shorter than the core stats"
    );
    if let Some(value) = batch.get_mut(stat) {
        *value += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ids::{CTRL_STREAM_START, CTRL_STREAM_STOP, NULL_ID, STREAM_CTRL_ID};
    use crate::protocol::packet::PacketSpec;
    use crate::protocol::ItemPointer;

    const HAB: u32 = 48;

    fn data() -> Vec<u8> {
        (0..32).collect()
    }

    fn packet(
        cnt: u64,
        len: Option<u64>,
        offset: u64,
        payload: &[u8],
        items: &[ItemPointer],
    ) -> Vec<u8> {
        PacketSpec {
            heap_address_bits: HAB,
            heap_cnt: cnt,
            heap_length: len,
            payload_offset: offset,
            items: items.to_vec(),
            payload: payload.to_vec(),
        }
        .emit()
    }

    fn item0() -> ItemPointer {
        ItemPointer::addressed(0x1000, 0, HAB)
    }

    /// Half `i` (0 or 1) of a 32-byte heap `cnt`.
    fn half(cnt: u64, i: u64) -> Vec<u8> {
        let d = data();
        let at = 16 * i as usize;
        packet(cnt, Some(32), 16 * i, &d[at..at + 16], &[item0()])
    }

    fn whole(cnt: u64) -> Vec<u8> {
        packet(cnt, Some(32), 0, &data(), &[item0()])
    }

    fn stop_item() -> ItemPointer {
        ItemPointer::immediate(STREAM_CTRL_ID, CTRL_STREAM_STOP, HAB)
    }

    /// The end heap spead2's sender makes: one byte of padding and a NULL pointer.
    fn stop_heap(cnt: u64) -> Vec<u8> {
        packet(
            cnt,
            Some(1),
            0,
            &[0],
            &[stop_item(), ItemPointer::addressed(NULL_ID, 0, HAB)],
        )
    }

    struct Harness {
        asm: Assembler,
        batch: Vec<u64>,
        heaps: Vec<ReceivedHeap>,
    }

    impl Harness {
        fn new(config: StreamConfig) -> Self {
            Harness {
                asm: Assembler::new(&config, true),
                batch: vec![0; index::CORE_COUNT],
                heaps: Vec::new(),
            }
        }

        fn with(f: impl FnOnce(&mut StreamConfig)) -> Self {
            let mut config = StreamConfig::default();
            f(&mut config);
            Self::new(config)
        }

        fn feed(&mut self, bytes: &[u8]) -> Result<PacketOutcome, DropReason> {
            let (p, _) = PacketHeader::parse(bytes).expect("test packet decodes");
            let heaps = &mut self.heaps;
            self.asm
                .add_packet(&p, &mut self.batch, &mut |h| heaps.push(h))
        }

        fn feed_all(&mut self, packets: &[Vec<u8>]) {
            for p in packets {
                let _ = self.feed(p);
            }
        }

        fn flush(&mut self) {
            let heaps = &mut self.heaps;
            self.asm.flush(&mut self.batch, &mut |h| heaps.push(h));
        }

        /// (cnt, contiguous) of each delivered heap, in order.
        fn delivered(&self) -> Vec<(u64, bool)> {
            self.heaps
                .iter()
                .map(|h| (h.cnt(), h.is_contiguous()))
                .collect()
        }

        /// heaps, evicted, flushed, packets, single_packet_heaps, search_dist.
        fn stats(&self) -> [u64; 6] {
            let b = &self.batch;
            [
                b[index::HEAPS],
                b[index::INCOMPLETE_HEAPS_EVICTED],
                b[index::INCOMPLETE_HEAPS_FLUSHED],
                b[index::PACKETS],
                b[index::SINGLE_PACKET_HEAPS],
                b[index::SEARCH_DIST],
            ]
        }
    }

    #[test]
    fn two_packet_heap_is_delivered_when_complete() {
        let mut h = Harness::new(StreamConfig::default());
        assert_eq!(h.feed(&half(1, 0)), Ok(PacketOutcome::Accepted));
        assert!(h.heaps.is_empty());
        assert_eq!(h.feed(&half(1, 1)), Ok(PacketOutcome::Accepted));
        assert_eq!(h.delivered(), vec![(1, true)]);
        assert_eq!(h.heaps[0].payload(), data().as_slice());
        // Peer: heaps 1, packets 2, search_dist 2.
        assert_eq!(h.stats(), [1, 0, 0, 2, 0, 2]);
        assert_eq!(h.asm.live_heaps(), 0);
    }

    #[test]
    fn single_packet_heaps_skip_the_lookup() {
        let mut h = Harness::new(StreamConfig::default());
        h.feed_all(&[whole(1), whole(2)]);
        assert_eq!(h.delivered(), vec![(1, true), (2, true)]);
        assert_eq!(h.stats(), [2, 0, 0, 2, 2, 0]);
    }

    #[test]
    fn whole_packet_starts_a_new_heap_even_if_its_cnt_is_live() {
        // Peer: half1 then whole1 gives Heap 1, then IncompleteHeap 1 at stop.
        let mut h = Harness::new(StreamConfig::default());
        h.feed_all(&[half(1, 0), whole(1)]);
        h.flush();
        assert_eq!(h.delivered(), vec![(1, true), (1, false)]);
        assert_eq!(h.stats(), [2, 0, 1, 2, 1, 1]);
    }

    #[test]
    fn lookups_find_the_newest_heap_of_a_cnt() {
        // Peer: half1 (heap A), then a whole packet for cnt 1 whose item address lies beyond
        // the heap (heap B, stays live), then another heap, then the second half of cnt 1:
        // it goes to B (the newer), whose highest address exceeds its HEAP_LENGTH, so it is
        // rejected there and A stays incomplete.
        let mut h = Harness::new(StreamConfig::default());
        let beyond = [ItemPointer::addressed(0x1003, 40, HAB)];
        h.feed(&half(1, 0)).unwrap();
        h.feed(&packet(1, Some(32), 0, &data(), &beyond)).unwrap();
        h.feed(&half(2, 0)).unwrap();
        assert_eq!(h.feed(&half(1, 1)), Err(DropReason::HeapLengthMismatch));
        h.flush();
        let got: Vec<(u64, u64)> = h
            .heaps
            .iter()
            .map(|x| (x.cnt(), x.received_length()))
            .collect();
        assert_eq!(got, vec![(1, 16), (1, 32), (2, 16)]);
        assert_eq!(h.stats(), [3, 0, 3, 4, 1, 3]);
    }

    #[test]
    fn a_completed_cnt_starts_afresh() {
        // Peer: half1 half1b half1 gives Heap 1 then IncompleteHeap 1; whole1 then half1b
        // drops the second packet (a new heap must start at 0) yet counts it.
        let mut h = Harness::new(StreamConfig::default());
        h.feed_all(&[half(1, 0), half(1, 1), half(1, 0)]);
        h.flush();
        assert_eq!(h.delivered(), vec![(1, true), (1, false)]);
        assert_eq!(h.stats(), [2, 0, 1, 3, 0, 3]);
        let mut h = Harness::new(StreamConfig::default());
        h.feed(&whole(1)).unwrap();
        assert_eq!(h.feed(&half(1, 1)), Err(DropReason::OutOfOrder));
        h.flush();
        assert_eq!(h.stats(), [1, 0, 0, 2, 1, 1]);
    }

    #[test]
    fn eviction_is_round_robin_and_whole_heaps_take_slots_too() {
        // Peer, max_heaps=2: half1 half2 half3 whole4 half5 half6 delivers 1, 2 (evicted),
        // 4, 3 (evicted), then flushes 5 and 6.
        let mut h = Harness::with(|c| c.max_heaps = 2);
        h.feed_all(&[
            half(1, 0),
            half(2, 0),
            half(3, 0),
            whole(4),
            half(5, 0),
            half(6, 0),
        ]);
        h.flush();
        let cnts: Vec<u64> = h.heaps.iter().map(|x| x.cnt()).collect();
        assert_eq!(cnts, vec![1, 2, 4, 3, 5, 6]);
        assert_eq!(h.stats(), [6, 3, 2, 6, 1, 5]);
    }

    #[test]
    fn whole_heaps_advance_the_head_past_free_slots() {
        // Peer, max_heaps=4: half1 then wholes 2..6: heap 1 is evicted by heap 5.
        let mut h = Harness::new(StreamConfig::default());
        h.feed(&half(1, 0)).unwrap();
        for cnt in 2..7 {
            h.feed(&whole(cnt)).unwrap();
        }
        let cnts: Vec<u64> = h.heaps.iter().map(|x| x.cnt()).collect();
        assert_eq!(cnts, vec![2, 3, 4, 1, 5, 6]);
        assert_eq!(h.stats(), [6, 1, 0, 6, 5, 1]);
    }

    #[test]
    fn a_rejected_new_heap_evicts_nothing() {
        // Peer, max_heaps=2: half1 half2 then heap 3 starting at 16 leaves 1 and 2 live.
        let mut h = Harness::with(|c| c.max_heaps = 2);
        h.feed_all(&[half(1, 0), half(2, 0)]);
        assert_eq!(h.feed(&half(3, 1)), Err(DropReason::OutOfOrder));
        assert_eq!(h.asm.live_heaps(), 2);
        h.flush();
        assert_eq!(h.stats(), [2, 0, 2, 3, 0, 3]);
    }

    #[test]
    fn substreams_evict_independently_and_flush_in_order() {
        // Peer, substreams=2 max_heaps=1: halves 1..5 evict 1, 2, 3 and flush 4, 5.
        let mut h = Harness::with(|c| {
            c.substreams = 2;
            c.max_heaps = 1;
        });
        h.feed_all(&(1..6).map(|c| half(c, 0)).collect::<Vec<_>>());
        h.flush();
        let cnts: Vec<u64> = h.heaps.iter().map(|x| x.cnt()).collect();
        assert_eq!(cnts, vec![1, 2, 3, 4, 5]);
        assert_eq!(h.stats(), [5, 3, 2, 5, 0, 5]);
        // Peer, substreams=2 max_heaps=3: halves 1,2,3,4,6 flush as 2,4,6,1,3.
        let mut h = Harness::with(|c| {
            c.substreams = 2;
            c.max_heaps = 3;
        });
        h.feed_all(&[1, 2, 3, 4, 6].map(|c| half(c, 0)));
        h.flush();
        let cnts: Vec<u64> = h.heaps.iter().map(|x| x.cnt()).collect();
        assert_eq!(cnts, vec![2, 4, 6, 1, 3]);
    }

    #[test]
    fn flush_goes_oldest_first_from_the_head() {
        // Peer, max_heaps=2: half1 half2 half3 evicts 1 and flushes 2 then 3.
        let mut h = Harness::with(|c| c.max_heaps = 2);
        h.feed_all(&[half(1, 0), half(2, 0), half(3, 0)]);
        h.flush();
        let cnts: Vec<u64> = h.heaps.iter().map(|x| x.cnt()).collect();
        assert_eq!(cnts, vec![1, 2, 3]);
        assert_eq!(h.stats(), [3, 1, 2, 3, 0, 3]);
    }

    #[test]
    fn interleaved_heaps_each_cost_one_search_step() {
        // Peer: halves 1..4 then second halves 4..1 give search_dist 8.
        let mut h = Harness::new(StreamConfig::default());
        h.feed_all(&(1..5).map(|c| half(c, 0)).collect::<Vec<_>>());
        h.feed_all(&(1..5).rev().map(|c| half(c, 1)).collect::<Vec<_>>());
        let cnts: Vec<u64> = h.heaps.iter().map(|x| x.cnt()).collect();
        assert_eq!(cnts, vec![4, 3, 2, 1]);
        assert_eq!(h.stats(), [4, 0, 0, 8, 0, 8]);
    }

    #[test]
    fn unsized_heaps_are_refused_when_disallowed_before_lookup() {
        let mut h = Harness::with(|c| c.allow_unsized_heaps = false);
        let d = data();
        assert_eq!(
            h.feed(&packet(1, None, 0, &d[..16], &[item0()])),
            Err(DropReason::NoHeapLength)
        );
        h.feed(&whole(2)).unwrap();
        assert_eq!(h.stats(), [1, 0, 0, 2, 1, 0]);
    }

    #[test]
    fn unsized_heaps_leave_only_at_flush_or_eviction() {
        // Peer: an unsized contiguous heap arrives at stop as a Heap, counted as flushed.
        let mut h = Harness::new(StreamConfig::default());
        let d = data();
        let second = [ItemPointer::addressed(0x1001, 8, HAB)];
        h.feed(&packet(1, None, 0, &d[..16], &[item0()])).unwrap();
        h.feed(&packet(1, None, 16, &d[16..], &second)).unwrap();
        assert!(h.heaps.is_empty());
        h.flush();
        assert_eq!(h.delivered(), vec![(1, true)]);
        assert_eq!(h.stats(), [1, 0, 1, 2, 0, 2]);
        let heap = &h.heaps[0];
        assert_eq!(heap.heap_length(), -1);
        let items = heap.items();
        assert_eq!(items.len(), 2);
        assert_eq!(heap.value(&items[1]), &d[8..]);
        // Evicted the same way.
        let mut h = Harness::with(|c| c.max_heaps = 1);
        h.feed(&packet(1, None, 0, &d[..16], &[])).unwrap();
        h.feed(&half(2, 0)).unwrap();
        assert_eq!(h.delivered(), vec![(1, true)]);
        assert_eq!(h.stats(), [1, 1, 0, 2, 0, 2]);
    }

    #[test]
    fn single_packet_stop_heap_stops_without_delivery() {
        // Peer: half1, stop heap, half3: packets 2, heaps 1 (flushed 1), single 1.
        let mut h = Harness::new(StreamConfig::default());
        h.feed(&half(1, 0)).unwrap();
        assert_eq!(h.feed(&stop_heap(2)), Ok(PacketOutcome::Stop));
        assert!(h.asm.is_stopped());
        assert_eq!(h.feed(&half(3, 0)), Err(DropReason::AfterStop));
        h.flush();
        assert_eq!(h.delivered(), vec![(1, false)]);
        assert_eq!(h.stats(), [1, 0, 1, 2, 1, 1]);
    }

    #[test]
    fn stop_in_the_first_packet_of_a_heap_stops_and_flushes_it() {
        // Peer: the incomplete stop heap is flushed (eos=True) and counted.
        let d = data();
        let mut h = Harness::new(StreamConfig::default());
        h.feed(&half(1, 0)).unwrap();
        let first = packet(2, Some(32), 0, &d[..16], &[item0(), stop_item()]);
        assert_eq!(h.feed(&first), Ok(PacketOutcome::Stop));
        h.flush();
        assert_eq!(h.delivered(), vec![(1, false), (2, false)]);
        assert!(h.heaps[1].is_end_of_stream());
        assert_eq!(h.stats(), [2, 0, 2, 2, 0, 2]);
    }

    #[test]
    fn stop_completing_a_heap_drops_it() {
        let d = data();
        let mut h = Harness::with(|c| c.max_heaps = 1);
        h.feed(&half(1, 0)).unwrap();
        let last = packet(1, Some(32), 16, &d[16..], &[stop_item()]);
        assert_eq!(h.feed(&last), Ok(PacketOutcome::Stop));
        h.flush();
        assert!(h.heaps.is_empty());
        assert_eq!(h.stats(), [0, 0, 0, 2, 0, 2]);
    }

    #[test]
    fn stop_heap_evicts_like_any_new_heap() {
        // Peer, max_heaps=1: half1 then the stop heap: heap 1 counted as evicted.
        let mut h = Harness::with(|c| c.max_heaps = 1);
        h.feed(&half(1, 0)).unwrap();
        assert_eq!(h.feed(&stop_heap(2)), Ok(PacketOutcome::Stop));
        h.flush();
        assert_eq!(h.stats(), [1, 1, 0, 2, 1, 1]);
    }

    #[test]
    fn stop_item_is_an_ordinary_heap_without_stop_on_stop_item() {
        let mut h = Harness::with(|c| c.stop_on_stop_item = false);
        h.feed(&half(1, 0)).unwrap();
        assert_eq!(h.feed(&stop_heap(2)), Ok(PacketOutcome::Accepted));
        h.feed(&half(3, 0)).unwrap();
        h.flush();
        assert_eq!(h.delivered(), vec![(2, true), (1, false), (3, false)]);
        assert!(h.heaps[0].is_end_of_stream());
        assert_eq!(h.stats(), [3, 0, 2, 3, 1, 2]);
    }

    #[test]
    fn rejected_packets_do_not_stop_the_stream() {
        let d = data();
        let mut h = Harness::new(StreamConfig::default());
        h.feed(&half(1, 0)).unwrap();
        let repeat = packet(1, Some(32), 0, &d[..16], &[stop_item()]);
        assert_eq!(h.feed(&repeat), Err(DropReason::OutOfOrder));
        assert!(!h.asm.is_stopped());
        // An addressed STREAM_CTRL is just an item.
        let addressed = packet(
            2,
            Some(8),
            0,
            &[2; 8],
            &[ItemPointer::addressed(STREAM_CTRL_ID, 0, HAB)],
        );
        assert_eq!(h.feed(&addressed), Ok(PacketOutcome::Accepted));
        assert!(!h.heaps[0].is_end_of_stream());
    }

    #[test]
    fn item_beyond_heap_keeps_a_single_packet_heap_live() {
        // Peer: single_packet_heaps counts it, but it is delivered incomplete at stop.
        let mut h = Harness::new(StreamConfig::default());
        let beyond = [item0(), ItemPointer::addressed(0x1003, 40, HAB)];
        h.feed(&packet(1, Some(32), 0, &data(), &beyond)).unwrap();
        assert!(h.heaps.is_empty());
        h.flush();
        assert_eq!(h.delivered(), vec![(1, false)]);
        assert_eq!(h.heaps[0].payload_ranges(), &[(0, 32)]);
        assert_eq!(h.stats(), [1, 0, 1, 1, 1, 0]);
    }

    #[test]
    fn out_of_order_heaps_complete_in_any_order() {
        let d = data();
        let mut h = Harness::with(|c| c.allow_out_of_order = true);
        h.feed(&packet(1, Some(32), 24, &d[24..], &[])).unwrap();
        h.feed(&packet(1, Some(32), 0, &d[..8], &[item0()]))
            .unwrap();
        assert_eq!(
            h.feed(&packet(1, Some(32), 0, &d[..8], &[])),
            Err(DropReason::Duplicate)
        );
        h.feed(&packet(1, Some(32), 8, &d[8..24], &[])).unwrap();
        assert_eq!(h.delivered(), vec![(1, true)]);
        assert_eq!(h.heaps[0].payload(), d.as_slice());
        assert_eq!(h.stats(), [1, 0, 0, 4, 0, 4]);
    }

    #[test]
    fn huge_heaps_are_counted_packets_but_never_allocated() {
        let mut h = Harness::new(StreamConfig::default());
        let wide = |cnt: u64, len: Option<u64>, offset: u64| {
            PacketSpec {
                heap_address_bits: 56,
                heap_cnt: cnt,
                heap_length: len,
                payload_offset: offset,
                items: vec![],
                payload: vec![1; 8],
            }
            .emit()
        };
        let top = (1u64 << 56) - 1;
        assert_eq!(
            h.feed(&wide(1, Some(1 << 48), 0)),
            Err(DropReason::HeapTooLarge)
        );
        assert_eq!(
            h.feed(&wide(2, Some(top), top - 8)),
            Err(DropReason::HeapTooLarge)
        );
        assert_eq!(
            h.feed(&wide(3, None, top - 8)),
            Err(DropReason::HeapTooLarge)
        );
        assert_eq!(h.asm.live_heaps(), 0);
        assert_eq!(h.stats(), [0, 0, 0, 3, 0, 3]);
    }

    #[test]
    fn delivered_items_and_control_flags() {
        let mut h = Harness::new(StreamConfig::default());
        let start = ItemPointer::immediate(STREAM_CTRL_ID, CTRL_STREAM_START, HAB);
        let items = [item0(), start, ItemPointer::immediate(0x1001, 0x0a0b, HAB)];
        h.feed(&packet(7, Some(32), 0, &data(), &items)).unwrap();
        let heap = &h.heaps[0];
        assert!(heap.is_start_of_stream() && heap.is_complete());
        let got: Vec<(u64, Vec<u8>)> = heap
            .items()
            .iter()
            .map(|i| (i.id, heap.value(i).to_vec()))
            .collect();
        assert_eq!(
            got,
            vec![
                (0x1000, data()),
                (STREAM_CTRL_ID, vec![0; 6]),
                (0x1001, vec![0, 0, 0, 0, 0x0a, 0x0b]),
            ]
        );
    }
}
