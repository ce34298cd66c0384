//! Reads UDP datagrams (unicast or multicast, IPv4 or IPv6) in batches with recvmmsg.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

use crate::recv::stats::DropReason;
use crate::recv::stream::StreamShared;
use crate::thread_pool::{Context, Progress, Reader};

pub const DEFAULT_MAX_SIZE: usize = 9200;
pub const DEFAULT_BUFFER_SIZE: usize = 8 * 1024 * 1024;
/// Datagrams per recvmmsg call.
const BATCH: usize = 64;
/// recvmmsg calls per run before yielding to other readers on the worker.
const CALLS_PER_RUN: usize = 16;

/// How a socket joins a multicast group.
#[derive(Clone, Copy, Debug)]
pub enum Multicast {
    V4 { interface: Ipv4Addr },
    V6 { interface_index: u32 },
}

/// Creates, configures and binds a UDP socket for receiving.
///
/// A multicast socket binds to the group address, so it only sees that group's traffic, and
/// allows address reuse so several receivers on one host can share the group.
pub fn bind(
    addr: SocketAddr,
    buffer_size: usize,
    multicast: Option<Multicast>,
) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if multicast.is_some() {
        socket.set_reuse_address(true)?;
    }
    set_receive_buffer(&socket, buffer_size)?;
    socket.bind(&addr.into())?;
    match (addr.ip(), multicast) {
        (IpAddr::V4(group), Some(Multicast::V4 { interface })) => {
            socket.join_multicast_v4(&group, &interface)?
        }
        (IpAddr::V6(group), Some(Multicast::V6 { interface_index })) => {
            socket.join_multicast_v6(&group, interface_index)?
        }
        (_, None) => {}
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "multicast address family mismatch",
            ))
        }
    }
    Ok(socket)
}

/// Asks for `size` bytes of kernel buffer and warns if granted less (Linux reports double
/// the usable amount, so compare against half what it returns).
pub fn set_receive_buffer(socket: &Socket, size: usize) -> io::Result<()> {
    if size == 0 {
        return Ok(());
    }
    socket.set_recv_buffer_size(size)?;
    let granted = socket.recv_buffer_size()? / 2;
    if granted < size {
        log::warn!(
            "requested socket buffer size {size} but only received {granted}: \
             refer to documentation for details on increasing buffer size"
        );
    }
    Ok(())
}

/// The unspecified address for a family, used when no bind hostname is given.
pub fn any_address(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

pub struct UdpReader {
    shared: Arc<StreamShared>,
    socket: mio::net::UdpSocket,
    max_size: usize,
    /// One slot per datagram of a batch, each `max_size + 1` long so oversize datagrams show.
    buffers: Vec<Vec<u8>>,
}

impl UdpReader {
    pub fn new(shared: Arc<StreamShared>, socket: Socket, max_size: usize) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let socket = mio::net::UdpSocket::from_std(socket.into());
        let buffers = (0..BATCH).map(|_| vec![0u8; max_size + 1]).collect();
        Ok(UdpReader {
            shared,
            socket,
            max_size,
            buffers,
        })
    }

    /// Receives up to BATCH datagrams; returns their lengths' count.
    fn receive(&mut self, lengths: &mut [usize; BATCH]) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let mut iovecs: Vec<libc::iovec> = self
            .buffers
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: mmsghdr is plain data; all-zero is a valid value (null name, no control).
        let mut headers: Vec<libc::mmsghdr> =
            (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
        for (h, iov) in headers.iter_mut().zip(iovecs.iter_mut()) {
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: each header points at one iovec, which points into a live buffer of the
        // stated length; `headers`, `iovecs` and `self.buffers` outlive the call, and the
        // kernel writes at most iov_len bytes per buffer and BATCH headers.
        let n = unsafe {
            libc::recvmmsg(
                self.socket.as_raw_fd(),
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (len, h) in lengths.iter_mut().zip(&headers[..n]) {
            *len = if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                usize::MAX
            } else {
                h.msg_len as usize
            };
        }
        Ok(n)
    }
}

impl Reader for UdpReader {
    fn source(&mut self) -> Option<&mut dyn mio::event::Source> {
        Some(&mut self.socket)
    }

    fn run(&mut self, _ctx: &Context<'_>) -> Progress {
        let mut lengths = [0usize; BATCH];
        for _ in 0..CALLS_PER_RUN {
            if self.shared.is_stopping() {
                return Progress::Done;
            }
            let n = match self.receive(&mut lengths) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Idle,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("error reading from UDP socket: {e}");
                    return Progress::Idle;
                }
            };
            let mut batch = self.shared.batch();
            for (buffer, &len) in self.buffers.iter().zip(&lengths[..n]) {
                if len > self.max_size {
                    log::info!("dropped packet larger than max_size ({})", self.max_size);
                    batch.drop_packet(DropReason::TooLarge);
                } else {
                    batch.add_datagram(&buffer[..len]);
                }
                if batch.is_stopped() {
                    return Progress::Done;
                }
            }
        }
        Progress::More
    }
}
