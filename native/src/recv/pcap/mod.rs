//! Reading UDP packets out of pcap and pcapng capture files, with a filter.
//!
//! [`PcapReader`] is the entry point; the submodules are its layers: [`file`] reads the
//! capture containers, [`frame`] decodes link, IP and UDP headers, and [`filter`] implements
//! the pcap-filter(7) subset. Everything is pure: no sockets, just a [`std::io::Read`].

mod error;
pub mod file;
pub mod filter;
pub mod frame;
mod reader;
#[cfg(test)]
mod testutil;

pub use error::PcapError;
pub use filter::{Filter, FilterError};
pub use reader::PcapReader;
