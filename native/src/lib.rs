//! Native core of the spead2-compatible SPEAD stack.
//!
//! `protocol` is pure; `recv` and `memory` build on it; I/O lives only in readers and
//! writers; `python` binds, and holds no protocol logic.

pub mod inproc;
pub mod memory;
pub mod protocol;
pub mod recv;
pub mod send;
pub mod sockopt;
pub mod thread_pool;

#[cfg(feature = "python")]
mod python;
