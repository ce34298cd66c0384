//! Readers: one per transport behind the `thread_pool::Reader` interface. Each turns its input
//! into batches of packets for a stream; none contains protocol logic.

pub mod backlog;
pub mod buffer;
pub mod inproc;
pub mod pcap_file;
pub mod tcp;
pub mod udp;
