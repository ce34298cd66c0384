//! The SPEAD wire format, pure: bytes in, typed values out, and back. No I/O, no threads.

pub mod descriptor;
pub mod flavour;
pub mod ids;
pub mod packet;

pub use flavour::{Flavour, FlavourError};
pub use packet::{DecodeError, ItemPointer, PacketHeader};
