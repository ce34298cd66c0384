//! A sequence of packets through `Assembler`: the first bytes choose the stream
//! configuration, the rest is a script of packets, each either raw bytes (exercising
//! `PacketHeader::parse` on the way in) or built from fields so most of them are valid and
//! reach the slot and payload logic. Heaps and statistics are checked for invariants.
#![no_main]

use _spead2::protocol::ids::{CTRL_STREAM_STOP, STREAM_CTRL_ID};
use _spead2::protocol::packet::PacketSpec;
use _spead2::protocol::{ItemPointer, PacketHeader};
use _spead2::recv::assembler::Assembler;
use _spead2::recv::config::StreamConfig;
use _spead2::recv::heap::ReceivedHeap;
use _spead2::recv::stats::index;
use libfuzzer_sys::fuzz_target;

/// Keeps allocations per heap small so the fuzzer explores logic, not memory.
const MAX_HEAP_SIZE: u64 = 1 << 16;

/// Reads the fuzz input front to back; runs dry as zeros.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }
}

fn config(input: &mut Input<'_>) -> (StreamConfig, bool) {
    let flags = input.u8();
    let shape = input.u8();
    let config = StreamConfig {
        max_heaps: usize::from(shape & 7) + 1,
        substreams: usize::from((shape >> 3) & 3) + 1,
        stop_on_stop_item: flags & 1 != 0,
        allow_unsized_heaps: flags & 2 != 0,
        allow_out_of_order: flags & 4 != 0,
        bug_compat: u32::from((flags >> 4) & 7),
        max_heap_size: MAX_HEAP_SIZE,
        max_heap_pointers: usize::from(input.u8()) + 1,
        ..StreamConfig::default()
    };
    (config, flags & 8 != 0)
}

/// A packet assembled from fields drawn from the input.
fn structured_packet(input: &mut Input<'_>) -> Vec<u8> {
    let kind = input.u8();
    let heap_address_bits = [40, 48, 32, 56][usize::from(kind & 3)];
    let heap_cnt = u64::from(input.u8() & 15);
    let heap_length = if kind & 4 != 0 {
        None
    } else {
        Some(u64::from(input.u16() % 2048))
    };
    let payload_offset = u64::from(input.u16() % 2048);
    let payload_len = usize::from(input.u8());
    let n_items = usize::from((kind >> 3) & 3);
    let mut items = Vec::with_capacity(n_items + 1);
    for _ in 0..n_items {
        let id = u64::from(input.u8());
        let value = u64::from(input.u16());
        items.push(if id & 1 != 0 {
            ItemPointer::immediate(id >> 1, value, heap_address_bits)
        } else {
            ItemPointer::addressed(id >> 1, value % 2048, heap_address_bits)
        });
    }
    if kind & 0x20 != 0 {
        items.push(ItemPointer::immediate(
            STREAM_CTRL_ID,
            CTRL_STREAM_STOP,
            heap_address_bits,
        ));
    }
    let payload = input.bytes(payload_len).to_vec();
    PacketSpec {
        heap_address_bits,
        heap_cnt,
        heap_length,
        payload_offset,
        items,
        payload,
    }
    .emit()
}

fn check_heap(heap: &ReceivedHeap) {
    assert!(heap.payload_len() as u64 <= MAX_HEAP_SIZE);
    assert!(heap.received_length() <= MAX_HEAP_SIZE);
    assert_eq!(heap.payload().len(), heap.payload_len());
    if heap.is_complete() {
        assert!(heap.is_contiguous());
    }
    for &(start, end) in heap.payload_ranges() {
        assert!(start <= end);
    }
    let _ = heap.pointers().len();
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input { data };
    let (config, keep_payload_ranges) = config(&mut input);
    let mut batch = vec![0u64; config.stats.len().max(index::CORE_COUNT)];
    let mut assembler = Assembler::new(&config, keep_payload_ranges);
    let mut delivered: u64 = 0;
    let mut out = |heap: ReceivedHeap| {
        check_heap(&heap);
        delivered += 1;
    };
    let mut offered: u64 = 0;
    let mut accepted_after_stop = false;
    while !input.is_empty() && offered < 256 {
        let packet_bytes = if input.u8() & 0xc0 == 0xc0 {
            let n = usize::from(input.u16() % 4096);
            input.bytes(n).to_vec()
        } else {
            structured_packet(&mut input)
        };
        let Ok((packet, _size)) = PacketHeader::parse(&packet_bytes) else {
            continue;
        };
        let was_stopped = assembler.is_stopped();
        offered += 1;
        let result = assembler.add_packet(&packet, &mut batch, &mut out);
        if was_stopped && result.is_ok() {
            accepted_after_stop = true;
        }
        assert!(assembler.live_heaps() <= config.max_heaps * config.substreams);
    }
    assembler.flush(&mut batch, &mut out);
    assert!(!accepted_after_stop);
    assert_eq!(assembler.live_heaps(), 0);
    assert_eq!(batch[index::HEAPS], delivered);
    assert!(batch[index::PACKETS] <= offered);
});
