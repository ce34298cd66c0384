//! A receive stream: readers feed packets in batches to one `Assembler`; finished heaps go to
//! the ringbuffer for the consumer.
//!
//! Two ways to stop, with spead2's semantics:
//! - from the network (stop item, end of a buffer/file/TCP connection, stopped inproc queue):
//!   live heaps are flushed *into* the ring, then the ring stops, so the consumer sees them;
//! - from the consumer (`stop()`): the ring stops first (waking any worker blocked on it), so
//!   flushed heaps are counted but discarded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::assembler::{Assembler, PacketOutcome};
use super::config::{RingConfig, StreamConfig};
use super::heap::ReceivedHeap;
use super::ringbuffer::{PushError, Ringbuffer};
use super::stats::{index, DropCounts, DropReason, Stats};
use crate::memory::copy::Source;
use crate::protocol::{DecodeError, PacketHeader};
use crate::thread_pool::{Reader, ReaderHandle, ThreadPool};

/// Mutable state behind the stream lock, held for a whole batch.
struct Core {
    assembler: Assembler,
    stopped: bool,
}

/// Totals, behind their own short-lived lock: a batch blocked on a full ring holds the stream
/// lock, and reading statistics must not wait for it (its counts appear when it ends).
struct Totals {
    stats: Stats,
    drops: DropCounts,
}

#[derive(Default)]
struct Readers {
    running: Vec<ReaderHandle>,
    /// Readers built before `start()` with `explicit_start`.
    pending: Vec<Box<dyn Reader>>,
    started: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddReaderError {
    /// `explicit_start` and `start()` was already called.
    AlreadyStarted,
}

/// What readers hold: everything needed to push packets into the stream.
pub struct StreamShared {
    config: StreamConfig,
    ring_config: RingConfig,
    ring: Ringbuffer<ReceivedHeap>,
    core: Mutex<Core>,
    totals: Mutex<Totals>,
    readers: Mutex<Readers>,
    pool: Arc<ThreadPool>,
    /// Set as soon as stopping begins, so readers can give up without the lock.
    stopping: AtomicBool,
}

pub struct Stream {
    shared: Arc<StreamShared>,
}

impl Stream {
    pub fn new(
        pool: Arc<ThreadPool>,
        config: StreamConfig,
        ring_config: RingConfig,
    ) -> std::io::Result<Self> {
        let assembler = Assembler::new(&config, ring_config.incomplete_keep_payload_ranges);
        let stats = Stats::new(config.stats.clone());
        let started = !config.explicit_start;
        let shared = StreamShared {
            ring: Ringbuffer::new(ring_config.heaps)?,
            core: Mutex::new(Core {
                assembler,
                stopped: false,
            }),
            totals: Mutex::new(Totals {
                stats,
                drops: DropCounts::default(),
            }),
            readers: Mutex::new(Readers {
                started,
                ..Readers::default()
            }),
            config,
            ring_config,
            pool,
            stopping: AtomicBool::new(false),
        };
        Ok(Stream {
            shared: Arc::new(shared),
        })
    }

    pub fn shared(&self) -> &Arc<StreamShared> {
        &self.shared
    }

    pub fn config(&self) -> &StreamConfig {
        &self.shared.config
    }

    pub fn ring_config(&self) -> &RingConfig {
        &self.shared.ring_config
    }

    pub fn ring(&self) -> &Ringbuffer<ReceivedHeap> {
        &self.shared.ring
    }

    /// Adds a reader built by one of the reader constructors (which received `shared()`).
    pub fn add_reader(&self, reader: Box<dyn Reader>) -> Result<(), AddReaderError> {
        let mut readers = lock(&self.shared.readers);
        if self.shared.stopping.load(Ordering::Acquire) {
            // As spead2: accepted, but the reader never runs.
            return Ok(());
        }
        if !readers.started {
            readers.pending.push(reader);
            return Ok(());
        }
        if self.shared.config.explicit_start {
            return Err(AddReaderError::AlreadyStarted);
        }
        let handle = self.shared.pool.add_reader(reader);
        readers.running.push(handle);
        Ok(())
    }

    /// Starts readers held back by `explicit_start`.
    pub fn start(&self) {
        let mut readers = lock(&self.shared.readers);
        if readers.started {
            return;
        }
        readers.started = true;
        let pending = std::mem::take(&mut readers.pending);
        for reader in pending {
            let handle = self.shared.pool.add_reader(reader);
            readers.running.push(handle);
        }
    }

    /// Stops from the consumer's side; idempotent. Blocks until no reader can run.
    pub fn stop(&self) {
        self.shared.ring.stop();
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.remove_readers();
        let mut core = lock(&self.shared.core);
        if !core.stopped {
            self.shared.flush_locked(&mut core);
        }
    }

    pub fn stats(&self) -> Stats {
        lock(&self.shared.totals).stats.clone()
    }

    pub fn drop_counts(&self) -> DropCounts {
        lock(&self.shared.totals).drops.clone()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl StreamShared {
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    pub fn config(&self) -> &StreamConfig {
        &self.config
    }

    /// Opens a batch: the stream lock is held until the batch is dropped.
    pub fn batch(&self) -> Batch<'_> {
        let core = lock(&self.core);
        let values = vec![0; self.config.stats.len()];
        Batch {
            shared: self,
            core,
            values,
            drops: DropCounts::default(),
            sink: DeliverySink::default(),
            packets: 0,
            stop: false,
        }
    }

    fn remove_readers(&self) {
        let (running, pending) = {
            let mut readers = lock(&self.readers);
            (
                std::mem::take(&mut readers.running),
                std::mem::take(&mut readers.pending),
            )
        };
        drop(pending);
        for handle in running {
            handle.remove();
        }
    }

    /// Emits every live heap and marks the stream stopped (lock held by the caller).
    fn flush_locked(&self, core: &mut Core) {
        let mut values = vec![0; self.config.stats.len()];
        let mut drops = DropCounts::default();
        let mut sink = DeliverySink::default();
        core.assembler
            .flush(&mut values, &mut |heap| sink.deliver(self, heap));
        sink.wake(self);
        sink.settle(&mut values, &mut drops);
        self.add_totals(&values, &drops);
        core.stopped = true;
    }

    fn add_totals(&self, values: &[u64], drops: &DropCounts) {
        let mut totals = lock(&self.totals);
        totals.stats.merge(values);
        totals.drops.merge(drops);
    }

    /// Hands one finished heap to the ring, blocking while it is full. The consumer is not
    /// woken here: `DeliverySink` wakes it every few heaps and when the batch ends.
    fn deliver(&self, heap: ReceivedHeap) -> Delivery {
        if self.ring_config.contiguous_only && !heap.is_contiguous() {
            log::warn!(
                "dropped incomplete heap {} ({}/{} bytes of payload)",
                heap.cnt(),
                heap.received_length(),
                heap.heap_length()
            );
            return Delivery::DroppedIncomplete;
        }
        match self.ring.try_push_quiet(heap) {
            Ok(()) => Delivery::Queued,
            Err((PushError::Full, heap)) => {
                // Fails only if stopped while blocked: the consumer no longer wants it.
                let _ = self.ring.push(heap);
                Delivery::Blocked
            }
            Err((PushError::Stopped, _)) => Delivery::Queued,
        }
    }
}

enum Delivery {
    Queued,
    Blocked,
    DroppedIncomplete,
}

/// Heaps queued before the consumer is woken, within one batch. A consumer that keeps up
/// sleeps on an empty ring; waking it costs the worker about as much as assembling a small
/// heap, so it is woken once per this many heaps (and always when the batch ends, which for a
/// network reader is one receive call, so a heap never waits for the next packet).
const HEAPS_PER_WAKE: usize = 4;

/// Tallies deliveries separately from the batch statistics, which the assembler borrows.
#[derive(Default)]
struct DeliverySink {
    blocked: u64,
    dropped_incomplete: u64,
    /// Heaps queued since the consumer was last woken.
    unwoken: usize,
}

impl DeliverySink {
    fn deliver(&mut self, shared: &StreamShared, heap: ReceivedHeap) {
        match shared.deliver(heap) {
            Delivery::Queued => {
                self.unwoken += 1;
                if self.unwoken >= HEAPS_PER_WAKE {
                    self.wake(shared);
                }
            }
            Delivery::Blocked => {
                self.blocked += 1;
                self.unwoken = 0;
            }
            Delivery::DroppedIncomplete => self.dropped_incomplete += 1,
        }
    }

    /// Wakes the consumer for the heaps queued quietly so far.
    fn wake(&mut self, shared: &StreamShared) {
        if std::mem::take(&mut self.unwoken) > 0 {
            shared.ring.wake();
        }
    }

    fn settle(&mut self, values: &mut [u64], drops: &mut DropCounts) {
        values[index::WORKER_BLOCKED] += std::mem::take(&mut self.blocked);
        for _ in 0..std::mem::take(&mut self.dropped_incomplete) {
            drops.add(DropReason::IncompleteHeap);
        }
    }
}

/// Logs why a packet was rejected, with the sizes where spead2 gives them.
fn log_decode_error(e: DecodeError, data: &[u8]) {
    match (e, PacketHeader::framed_size(data)) {
        (DecodeError::PayloadOverflowsPacket, Ok(Some(claimed))) => {
            log::info!("{e} ({claimed} > {})", data.len());
        }
        // spead2 words a zero-width field differently from widths that do not sum to 64.
        (DecodeError::BadFlavour, _) if data[2] == 0 || data[3] == 0 => {
            log::info!("packet rejected because flavour is invalid");
        }
        _ => log::info!("{e}"),
    }
}

/// One reader wake-up's worth of packets, applied under the stream lock.
pub struct Batch<'a> {
    shared: &'a StreamShared,
    core: MutexGuard<'a, Core>,
    values: Vec<u64>,
    drops: DropCounts,
    sink: DeliverySink,
    packets: u64,
    stop: bool,
}

impl Batch<'_> {
    /// True once the stream will take no more packets.
    pub fn is_stopped(&self) -> bool {
        self.stop || self.core.stopped || self.shared.is_stopping()
    }

    /// Decodes and assembles packets from the start of `data`; returns the bytes consumed,
    /// or `None` if the data does not start with a valid packet (counted and logged).
    pub fn add_packet(&mut self, data: &[u8]) -> Option<usize> {
        match PacketHeader::parse(data) {
            Ok((packet, size)) => {
                self.add_parsed(&packet);
                Some(size)
            }
            Err(e) => {
                log_decode_error(e, data);
                self.drops.add(DropReason::Decode(e));
                None
            }
        }
    }

    /// A whole datagram: it must be exactly one packet.
    pub fn add_datagram(&mut self, data: &[u8]) {
        match PacketHeader::parse(data) {
            Ok((packet, size)) if size == data.len() => self.add_parsed(&packet),
            Ok((_, size)) => {
                log::info!(
                    "discarding packet due to size mismatch ({size} != {})",
                    data.len()
                );
                self.drops.add(DropReason::SizeMismatch);
            }
            Err(e) => {
                log_decode_error(e, data);
                self.drops.add(DropReason::Decode(e));
            }
        }
    }

    /// Counts a packet a reader discarded before decoding (e.g. longer than max_size).
    pub fn drop_packet(&mut self, reason: DropReason) {
        self.drops.add(reason);
    }

    /// Counts `n` packets lost before the reader saw them (e.g. by the kernel).
    pub fn drop_packets(&mut self, reason: DropReason, n: u64) {
        self.drops.add_n(reason, n);
    }

    fn add_parsed(&mut self, packet: &PacketHeader<'_>) {
        if self.is_stopped() {
            return;
        }
        self.packets += 1;
        let shared = self.shared;
        let Batch {
            core, values, sink, ..
        } = self;
        let result = core
            .assembler
            .add_packet(packet, values, &mut |heap| sink.deliver(shared, heap));
        match result {
            Ok(PacketOutcome::Stop) => self.stop = true,
            Ok(_) => {}
            Err(reason) => self.drops.add(reason),
        }
    }

    /// The packets of this batch come from a large buffer in memory, most likely not in
    /// cache, so payload copies prefetch ahead (see `memory::copy`).
    pub fn source_in_memory(&mut self) {
        self.core.assembler.set_source(Source::Memory);
    }

    /// The network ended the stream (end of buffer, file or connection).
    pub fn end_of_stream(&mut self) {
        self.stop = true;
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        self.core.assembler.set_source(Source::Cache);
        if self.packets > 0 {
            self.values[index::BATCHES] += 1;
            self.values[index::MAX_BATCH] = self.values[index::MAX_BATCH].max(self.packets);
        }
        self.sink.wake(self.shared);
        self.sink.settle(&mut self.values, &mut self.drops);
        self.shared.add_totals(&self.values, &self.drops);
        if self.stop && !self.core.stopped {
            // Stop from the network: flush into the ring before stopping it.
            self.shared.flush_locked(&mut self.core);
            self.shared.ring.stop();
            self.shared.stopping.store(true, Ordering::Release);
            // Readers on other workers may be waiting for the lock we hold: ask them to go
            // without waiting (each also sees `stopping` and finishes on its own).
            let readers = std::mem::take(&mut lock(&self.shared.readers).running);
            for handle in readers {
                handle.remove_nowait();
            }
        }
    }
}
