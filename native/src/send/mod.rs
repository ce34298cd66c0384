//! The send side: heaps, the packet generator (sans-IO), and streams with their writers.

pub mod group;
pub mod heap;
pub mod packet_generator;
pub mod rate;
pub mod stream;
pub mod writer;
