//! Receive statistics: the indexed table spead2 exposes as `StreamStats`, plus drop reasons.

use std::sync::Arc;

use crate::protocol::DecodeError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatMode {
    /// Adds across batches and when stats are combined.
    Counter = 0,
    /// Keeps the largest value seen.
    Maximum = 1,
}

impl StatMode {
    pub fn combine(self, a: u64, b: u64) -> u64 {
        match self {
            StatMode::Counter => a.wrapping_add(b),
            StatMode::Maximum => a.max(b),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StatConfig {
    pub name: String,
    pub mode: StatMode,
}

/// Indices of the core statistics (`spead2.recv.stream_stat_indices`).
pub mod index {
    pub const HEAPS: usize = 0;
    pub const INCOMPLETE_HEAPS_EVICTED: usize = 1;
    pub const INCOMPLETE_HEAPS_FLUSHED: usize = 2;
    pub const PACKETS: usize = 3;
    pub const BATCHES: usize = 4;
    pub const MAX_BATCH: usize = 5;
    pub const SINGLE_PACKET_HEAPS: usize = 6;
    pub const SEARCH_DIST: usize = 7;
    pub const WORKER_BLOCKED: usize = 8;
    pub const CORE_COUNT: usize = 9;
}

const CORE_STATS: [(&str, StatMode); index::CORE_COUNT] = [
    ("heaps", StatMode::Counter),
    ("incomplete_heaps_evicted", StatMode::Counter),
    ("incomplete_heaps_flushed", StatMode::Counter),
    ("packets", StatMode::Counter),
    ("batches", StatMode::Counter),
    ("max_batch", StatMode::Maximum),
    ("single_packet_heaps", StatMode::Counter),
    ("search_dist", StatMode::Counter),
    ("worker_blocked", StatMode::Counter),
];

/// The ordered list of statistics a stream keeps: the core ones, then custom ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsConfig {
    stats: Vec<StatConfig>,
}

impl Default for StatsConfig {
    fn default() -> Self {
        let stats = CORE_STATS
            .iter()
            .map(|(name, mode)| StatConfig {
                name: (*name).to_owned(),
                mode: *mode,
            })
            .collect();
        StatsConfig { stats }
    }
}

impl StatsConfig {
    /// Appends a custom statistic; `None` if the name is taken.
    pub fn add(&mut self, name: &str, mode: StatMode) -> Option<usize> {
        if self.index_of(name).is_some() {
            return None;
        }
        self.stats.push(StatConfig {
            name: name.to_owned(),
            mode,
        });
        Some(self.stats.len() - 1)
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.stats.iter().position(|s| s.name == name)
    }

    pub fn len(&self) -> usize {
        self.stats.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stats.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<&StatConfig> {
        self.stats.get(index)
    }

    pub fn iter(&self) -> impl Iterator<Item = &StatConfig> {
        self.stats.iter()
    }
}

/// Values for one `StatsConfig`, index for index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    pub config: Arc<StatsConfig>,
    pub values: Vec<u64>,
}

impl Stats {
    pub fn new(config: Arc<StatsConfig>) -> Self {
        let values = vec![0; config.len()];
        Stats { config, values }
    }

    /// Folds `other` into `self` statistic by statistic, per each one's mode.
    pub fn merge(&mut self, other: &[u64]) {
        for ((value, cfg), o) in self.values.iter_mut().zip(self.config.iter()).zip(other) {
            *value = cfg.mode.combine(*value, *o);
        }
    }

    pub fn reset(&mut self) {
        self.values.iter_mut().for_each(|v| *v = 0);
    }
}

/// Every reason a packet or heap is discarded. spead2 only logs these; we also count them
/// (reported beside `StreamStats`, which keeps spead2's exact shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    Decode(DecodeError),
    /// A datagram whose length differs from the packet its header describes.
    SizeMismatch,
    /// A packet longer than the reader's `max_size`.
    TooLarge,
    /// No HEAP_LENGTH and `allow_unsized_heaps` is false.
    NoHeapLength,
    /// HEAP_LENGTH (or the highest address) exceeds the configured maximum heap size.
    HeapTooLarge,
    /// HEAP_LENGTH differs from an earlier packet of the same heap.
    HeapLengthMismatch,
    /// Out-of-order arrival while `allow_out_of_order` is false.
    OutOfOrder,
    /// A payload range already received.
    Duplicate,
    /// A payload range that overlaps part of one already received.
    PartialOverlap,
    /// More disjoint payload ranges than one heap may track.
    TooManyRanges,
    /// A packet whose flavour differs from earlier packets of its heap.
    FlavourMismatch,
    /// More item pointers than a heap may hold.
    TooManyPointers,
    /// The allocator could not supply the heap's memory.
    AllocationFailed,
    /// A packet for a heap the stream has already completed or stopped.
    AfterStop,
    /// An incomplete heap discarded because the ring only takes contiguous heaps.
    IncompleteHeap,
    /// Datagrams the kernel discarded because the socket's receive buffer was full
    /// (`SO_RXQ_OVFL`): the reader fell behind.
    SocketOverflow,
}

impl DropReason {
    pub const ALL: [DropReason; 24] = [
        DropReason::Decode(DecodeError::TooShort),
        DropReason::Decode(DecodeError::BadMagic),
        DropReason::Decode(DecodeError::BadFlavour),
        DropReason::Decode(DecodeError::PointersOverflow),
        DropReason::Decode(DecodeError::NoHeapCnt),
        DropReason::Decode(DecodeError::NoPayloadOffset),
        DropReason::Decode(DecodeError::NoPayloadLength),
        DropReason::Decode(DecodeError::PayloadOverflowsHeap),
        DropReason::Decode(DecodeError::PayloadOverflowsPacket),
        DropReason::SizeMismatch,
        DropReason::TooLarge,
        DropReason::NoHeapLength,
        DropReason::HeapTooLarge,
        DropReason::HeapLengthMismatch,
        DropReason::OutOfOrder,
        DropReason::Duplicate,
        DropReason::PartialOverlap,
        DropReason::TooManyRanges,
        DropReason::FlavourMismatch,
        DropReason::TooManyPointers,
        DropReason::AllocationFailed,
        DropReason::AfterStop,
        DropReason::IncompleteHeap,
        DropReason::SocketOverflow,
    ];

    pub fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|r| *r == self)
            .expect("every reason is listed")
    }

    /// Stable snake_case name for counters and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Decode(e) => e.reason(),
            DropReason::SizeMismatch => "size_mismatch",
            DropReason::TooLarge => "too_large",
            DropReason::NoHeapLength => "no_heap_length",
            DropReason::HeapTooLarge => "heap_too_large",
            DropReason::HeapLengthMismatch => "heap_length_mismatch",
            DropReason::OutOfOrder => "out_of_order",
            DropReason::Duplicate => "duplicate",
            DropReason::PartialOverlap => "partial_overlap",
            DropReason::TooManyRanges => "too_many_ranges",
            DropReason::FlavourMismatch => "flavour_mismatch",
            DropReason::TooManyPointers => "too_many_pointers",
            DropReason::AllocationFailed => "allocation_failed",
            DropReason::AfterStop => "after_stop",
            DropReason::IncompleteHeap => "incomplete_heap",
            DropReason::SocketOverflow => "socket_overflow",
        }
    }
}

/// One counter per `DropReason`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DropCounts {
    counts: [u64; DropReason::ALL.len()],
}

impl DropCounts {
    pub fn add(&mut self, reason: DropReason) {
        self.add_n(reason, 1);
    }

    pub fn add_n(&mut self, reason: DropReason, n: u64) {
        self.counts[reason.index()] += n;
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason.index()]
    }

    pub fn merge(&mut self, other: &DropCounts) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .copied()
            .zip(self.counts.iter().copied())
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_stats_are_in_spead2_order() {
        let cfg = StatsConfig::default();
        let names: Vec<_> = cfg.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names[index::PACKETS], "packets");
        assert_eq!(names[index::WORKER_BLOCKED], "worker_blocked");
        assert_eq!(cfg.get(index::MAX_BATCH).unwrap().mode, StatMode::Maximum);
        assert_eq!(cfg.len(), 9);
    }

    #[test]
    fn custom_stats_append_and_names_are_unique() {
        let mut cfg = StatsConfig::default();
        assert_eq!(cfg.add("pkg.x", StatMode::Counter), Some(9));
        assert_eq!(cfg.add("pkg.x", StatMode::Maximum), None);
        assert_eq!(cfg.add("heaps", StatMode::Counter), None);
        assert_eq!(cfg.index_of("pkg.x"), Some(9));
    }

    #[test]
    fn merge_follows_modes() {
        let mut s = Stats::new(Arc::new(StatsConfig::default()));
        s.values[index::PACKETS] = 5;
        s.values[index::MAX_BATCH] = 7;
        let mut other = vec![0; 9];
        other[index::PACKETS] = 3;
        other[index::MAX_BATCH] = 4;
        s.merge(&other);
        assert_eq!(s.values[index::PACKETS], 8);
        assert_eq!(s.values[index::MAX_BATCH], 7);
    }

    #[test]
    fn drop_reasons_have_distinct_names() {
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::ALL.len());
    }
}
