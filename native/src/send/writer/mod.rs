//! Writers: the transports under a send stream. The stream's sender thread hands each writer
//! batches of packets whose bytes still live in the heaps' items (zero copy until the
//! socket, or until the copy into an in-memory destination).

pub mod bytes;
pub mod inproc;
pub mod tcp;
pub mod udp;

use std::fmt;
use std::io::{self, IoSlice};
use std::os::fd::RawFd;

/// One packet of a batch: its bytes as slices (the header block, then payload segments
/// pointing into the heap's items) and the substream it goes to.
pub struct OutPacket<'a> {
    pub slices: &'a [IoSlice<'a>],
    pub substream: usize,
}

impl OutPacket<'_> {
    /// Total bytes of the packet.
    pub fn len(&self) -> usize {
        self.slices.iter().map(|s| s.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The packet's bytes, copied into one buffer.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for s in self.slices {
            out.extend_from_slice(s);
        }
        out
    }
}

/// A transport. Used by one thread at a time: the stream's sender thread, or a caller
/// sending inline.
pub trait Writer: Send {
    /// Number of substreams (destinations) the writer serves; substream indices of packets
    /// are always below it.
    fn num_substreams(&self) -> usize;

    /// True if `write` never waits on a remote peer, so a blocking send may run it on the
    /// caller's thread (which cannot check for Ctrl-C meanwhile).
    fn may_run_inline(&self) -> bool {
        false
    }

    /// Sends `packets` in order. Each packet that could not be sent is reported in `errors`
    /// with its index in `packets`; later packets are still attempted (for datagrams one
    /// failure says nothing about the next; a stream transport fails the rest itself).
    fn write(&mut self, packets: &[OutPacket<'_>], errors: &mut Vec<(usize, io::Error)>);
}

/// Why a writer cannot be constructed.
#[derive(Debug)]
pub enum WriterError {
    /// Bad arguments (spead2 raises ValueError with this message).
    Invalid(&'static str),
    /// A socket operation failed (bind, connect, ...); `context` names the operation.
    Io {
        context: &'static str,
        error: io::Error,
    },
}

impl WriterError {
    fn io(context: &'static str) -> impl FnOnce(io::Error) -> WriterError {
        move |error| WriterError::Io { context, error }
    }
}

impl fmt::Display for WriterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(message) => f.write_str(message),
            Self::Io { context, error } => write!(f, "{context}: {error}"),
        }
    }
}

impl std::error::Error for WriterError {}

/// A copy of an error for each of several packets it failed (io::Error is not Clone).
pub fn clone_error(error: &io::Error) -> io::Error {
    match error.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(error.kind(), error.to_string()),
    }
}

/// Blocks until `fd` is writable: lets writers use sockets the caller made non-blocking
/// without changing the flags of the caller's (shared) file description.
pub(crate) fn wait_writable(fd: RawFd) -> io::Result<()> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd on the stack; infinite timeout.
        let rc = unsafe { libc::poll(&mut pfd, 1, -1) };
        if rc >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Sets SO_SNDBUF, warning (as spead2 does) when the kernel grants less than asked for.
pub(crate) fn set_send_buffer(socket: &socket2::Socket, size: usize) -> io::Result<()> {
    // The kernel takes an int; larger requests are capped rather than wrapped.
    let requested = size.min(i32::MAX as usize);
    socket.set_send_buffer_size(requested)?;
    let actual = socket.send_buffer_size()?;
    if actual < size {
        log::warn!(
            "requested socket buffer size {size} but only received {actual}: refer to \
             documentation for details on increasing buffer size"
        );
    }
    Ok(())
}
