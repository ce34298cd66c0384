//! The receive side: heap assembly (sans-IO), the ringbuffer, streams and their readers.

pub mod assembler;
pub mod config;
pub mod heap;
pub mod live_heap;
pub mod pcap;
// TEMP pub mod reader;
pub mod ringbuffer;
pub mod stats;
// TEMP pub mod stream;
pub mod tcp_framer;
