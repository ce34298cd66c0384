//! live_heap
