//! The receive side: heap assembly (sans-IO), the ringbuffer, streams and their readers.

pub mod assembler;
pub mod config;
pub mod heap;
pub mod live_heap;
pub mod pcap;
pub mod reader;
pub mod ringbuffer;
pub mod stats;
pub mod stream;
pub mod tcp_framer;
