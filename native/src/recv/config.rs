//! Receive-stream configuration in core terms (the Python `StreamConfig` and
//! `RingStreamConfig` bind to these).

use std::sync::Arc;

use super::stats::StatsConfig;
use crate::memory::recycle::Recycler;
use crate::memory::Allocator;

pub const DEFAULT_MAX_HEAPS: usize = 4;
pub const DEFAULT_RING_HEAPS: usize = 4;
/// Largest heap a stream will allocate memory for. spead2 has no such limit (a hostile
/// HEAP_LENGTH makes it attempt the allocation); ours makes such packets a counted drop.
pub const DEFAULT_MAX_HEAP_SIZE: u64 = 1 << 32;
/// Most item pointers one heap may accumulate (protects against zero-payload floods).
pub const DEFAULT_MAX_HEAP_POINTERS: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memcpy {
    Std = 0,
    NonTemporal = 1,
}

#[derive(Clone)]
pub struct StreamConfig {
    pub max_heaps: usize,
    pub substreams: usize,
    pub bug_compat: u32,
    pub memcpy: Memcpy,
    pub allocator: Arc<dyn Allocator>,
    pub stop_on_stop_item: bool,
    pub allow_unsized_heaps: bool,
    pub allow_out_of_order: bool,
    pub stream_id: u64,
    pub explicit_start: bool,
    pub stats: Arc<StatsConfig>,
    pub max_heap_size: u64,
    pub max_heap_pointers: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_heaps: DEFAULT_MAX_HEAPS,
            substreams: 1,
            bug_compat: 0,
            memcpy: Memcpy::Std,
            allocator: Arc::new(Recycler::new()),
            stop_on_stop_item: true,
            allow_unsized_heaps: true,
            allow_out_of_order: false,
            stream_id: 0,
            explicit_start: false,
            stats: Arc::new(StatsConfig::default()),
            max_heap_size: DEFAULT_MAX_HEAP_SIZE,
            max_heap_pointers: DEFAULT_MAX_HEAP_POINTERS,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingConfig {
    pub heaps: usize,
    pub contiguous_only: bool,
    pub incomplete_keep_payload_ranges: bool,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            heaps: DEFAULT_RING_HEAPS,
            contiguous_only: true,
            incomplete_keep_payload_ranges: false,
        }
    }
}
