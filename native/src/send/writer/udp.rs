//! UDP writer: one destination per substream, batches sent with `sendmmsg` whose iovecs
//! point straight at the packets' header blocks and item bytes.

use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::{clone_error, set_send_buffer, wait_writable, OutPacket, Writer, WriterError};

/// `spead2.send.UdpStream.DEFAULT_BUFFER_SIZE`.
pub const DEFAULT_BUFFER_SIZE: usize = 524_288;

/// Most messages per `sendmmsg` call and iovecs per message (Linux UIO_MAXIOV).
const MAX_IOV: usize = 1024;

/// The socket set-up of each `UdpStream` constructor overload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpMode {
    /// Plain sends, optionally bound to a local (source) address.
    Unicast { interface_address: Option<IpAddr> },
    /// Multicast with a TTL (IPv4) or hop limit (IPv6); every endpoint must be multicast.
    Multicast { ttl: u32 },
    /// IPv4 multicast with a TTL and an outgoing interface chosen by its address.
    MulticastV4 {
        ttl: u32,
        interface_address: Ipv4Addr,
    },
    /// IPv6 multicast with a hop limit and an outgoing interface chosen by its index.
    MulticastV6 { hops: u32, interface_index: u32 },
}

pub struct UdpWriter {
    socket: Socket,
    destinations: Vec<SockAddr>,
}

/// Checks that all endpoints share one address family and returns it.
fn common_domain(endpoints: &[SocketAddr]) -> Result<Domain, WriterError> {
    let first = endpoints
        .first()
        .ok_or(WriterError::Invalid("Endpoint list must be non-empty"))?;
    if endpoints.iter().any(|e| e.is_ipv4() != first.is_ipv4()) {
        return Err(WriterError::Invalid(
            "Endpoint does not match protocol of the socket",
        ));
    }
    Ok(Domain::for_address(*first))
}

/// The multicast checks of the TTL overloads, with spead2's messages.
fn check_endpoints(endpoints: &[SocketAddr], mode: UdpMode) -> Result<(), WriterError> {
    let ok = |pred: fn(&SocketAddr) -> bool, message: &'static str| {
        if endpoints.iter().all(pred) {
            Ok(())
        } else {
            Err(WriterError::Invalid(message))
        }
    };
    match mode {
        UdpMode::Unicast { .. } => Ok(()),
        UdpMode::Multicast { .. } => ok(
            |e| e.ip().is_multicast(),
            "endpoint is not a multicast address",
        ),
        UdpMode::MulticastV4 { .. } => ok(
            |e| e.is_ipv4() && e.ip().is_multicast(),
            "endpoint is not an IPv4 multicast address",
        ),
        UdpMode::MulticastV6 { .. } => ok(
            |e| e.is_ipv6() && e.ip().is_multicast(),
            "endpoint is not an IPv6 multicast address",
        ),
    }
}

fn configure(socket: &Socket, domain: Domain, mode: UdpMode) -> Result<(), WriterError> {
    match mode {
        UdpMode::Unicast {
            interface_address: Some(address),
        } => socket
            .bind(&SockAddr::from(SocketAddr::new(address, 0)))
            .map_err(WriterError::io("bind")),
        UdpMode::Unicast { .. } => Ok(()),
        UdpMode::Multicast { ttl } if domain == Domain::IPV4 => socket
            .set_multicast_ttl_v4(ttl)
            .map_err(WriterError::io("set_option")),
        UdpMode::Multicast { ttl } => socket
            .set_multicast_hops_v6(ttl)
            .map_err(WriterError::io("set_option")),
        UdpMode::MulticastV4 {
            ttl,
            interface_address,
        } => socket
            .set_multicast_ttl_v4(ttl)
            .and_then(|()| socket.set_multicast_if_v4(&interface_address))
            .map_err(WriterError::io("set_option")),
        UdpMode::MulticastV6 {
            hops,
            interface_index,
        } => socket
            .set_multicast_hops_v6(hops)
            .and_then(|()| socket.set_multicast_if_v6(interface_index))
            .map_err(WriterError::io("set_option")),
    }
}

impl UdpWriter {
    /// A new socket sending to `endpoints` (substream i goes to `endpoints[i]`).
    pub fn new(
        endpoints: &[SocketAddr],
        buffer_size: usize,
        mode: UdpMode,
    ) -> Result<UdpWriter, WriterError> {
        let domain = common_domain(endpoints)?;
        check_endpoints(endpoints, mode)?;
        if let UdpMode::Unicast {
            interface_address: Some(address),
        } = mode
        {
            if address.is_ipv4() != (domain == Domain::IPV4) {
                return Err(WriterError::Io {
                    context: "bind",
                    error: io::Error::from_raw_os_error(libc::EINVAL),
                });
            }
        }
        let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))
            .map_err(WriterError::io("socket"))?;
        set_send_buffer(&socket, buffer_size).map_err(WriterError::io("set_option"))?;
        configure(&socket, domain, mode)?;
        Ok(Self::with_socket(socket, endpoints))
    }

    /// Sends through an existing socket (the caller passes a duplicate it no longer needs;
    /// its options, binding and blocking mode are left as they are).
    pub fn from_socket(
        socket: OwnedFd,
        endpoints: &[SocketAddr],
    ) -> Result<UdpWriter, WriterError> {
        let socket = Socket::from(socket);
        if endpoints.is_empty() {
            // spead2 accepts this: a stream with no substreams.
            return Ok(Self::with_socket(socket, endpoints));
        }
        let domain = common_domain(endpoints)?;
        let local = socket
            .local_addr()
            .map_err(WriterError::io("getsockname"))?;
        if local.domain() != domain {
            return Err(WriterError::Invalid(
                "Endpoint does not match protocol of the socket",
            ));
        }
        Ok(Self::with_socket(socket, endpoints))
    }

    fn with_socket(socket: Socket, endpoints: &[SocketAddr]) -> UdpWriter {
        UdpWriter {
            socket,
            destinations: endpoints.iter().map(|&e| SockAddr::from(e)).collect(),
        }
    }

    /// The local address (useful in tests and for logging).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))
    }

    /// One `sendmmsg` over `headers`; Ok(n) messages sent, or the error of the first.
    fn send_some(&self, headers: &mut [libc::mmsghdr]) -> io::Result<usize> {
        let count = headers.len().min(MAX_IOV) as libc::c_uint;
        // SAFETY: `headers` holds `count` initialised mmsghdrs whose name and iovec pointers
        // refer to `self.destinations` and to the caller's IoSlices (ABI-compatible with
        // iovec), all alive for the duration of the call; the kernel only reads them (and
        // writes msg_len within the array).
        let rc = unsafe {
            libc::sendmmsg(
                self.socket.as_raw_fd(),
                headers.as_mut_ptr(),
                count,
                libc::MSG_NOSIGNAL,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc as usize)
        }
    }
}

/// A message header sending `slices` as one datagram to `destination`.
fn message_header(destination: &SockAddr, slices: &[IoSlice<'_>]) -> libc::mmsghdr {
    // SAFETY: mmsghdr is a plain C struct of integers and pointers, for which all-zero is
    // a valid value (null name and iovec, no control data, no flags).
    let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
    header.msg_hdr.msg_name = destination.as_ptr() as *mut libc::c_void;
    header.msg_hdr.msg_namelen = destination.len();
    // IoSlice is documented to be ABI-compatible with iovec on Unix; sendmmsg only
    // reads the iovecs, so casting away const is sound.
    header.msg_hdr.msg_iov = slices.as_ptr() as *mut libc::iovec;
    header.msg_hdr.msg_iovlen = slices.len() as _;
    header
}

impl Writer for UdpWriter {
    fn num_substreams(&self) -> usize {
        self.destinations.len()
    }

    /// A datagram waits at most for the local send buffer to drain, never for the receiver.
    fn may_run_inline(&self) -> bool {
        true
    }

    fn write(&mut self, packets: &[OutPacket<'_>], errors: &mut Vec<(usize, io::Error)>) {
        // Packets with more slices than a message allows (many tiny items) are copied
        // into one buffer each; the common case stays zero-copy.
        let flat: Vec<Option<Vec<u8>>> = packets
            .iter()
            .map(|p| (p.slices.len() > MAX_IOV).then(|| p.to_vec()))
            .collect();
        let flat_slices: Vec<Option<[IoSlice<'_>; 1]>> = flat
            .iter()
            .map(|f| f.as_ref().map(|bytes| [IoSlice::new(bytes)]))
            .collect();
        let mut headers: Vec<libc::mmsghdr> = packets
            .iter()
            .zip(&flat_slices)
            .map(|(p, flat)| {
                let slices: &[IoSlice<'_>] = match flat {
                    Some(one) => one,
                    None => p.slices,
                };
                message_header(&self.destinations[p.substream], slices)
            })
            .collect();
        let mut start = 0;
        while start < headers.len() {
            match self.send_some(&mut headers[start..]) {
                Ok(0) => {
                    // Only possible for an empty request; never loop on it.
                    errors.push((start, io::Error::other("sendmmsg sent no message")));
                    start += 1;
                }
                Ok(sent) => start += sent,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = wait_writable(self.socket.as_raw_fd()) {
                        errors.push((start, e));
                        start += 1;
                    }
                }
                Err(e) => {
                    log::debug!("UDP send failed: {e}");
                    errors.push((start, clone_error(&e)));
                    start += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::Duration;

    fn receiver() -> UdpSocket {
        let r = UdpSocket::bind("127.0.0.1:0").unwrap();
        r.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        r
    }

    fn packet<'a>(slices: &'a [IoSlice<'a>], substream: usize) -> OutPacket<'a> {
        OutPacket { slices, substream }
    }

    #[test]
    fn sends_each_packet_to_its_substream() {
        let (a, b) = (receiver(), receiver());
        let endpoints = [a.local_addr().unwrap(), b.local_addr().unwrap()];
        let mut w = UdpWriter::new(
            &endpoints,
            DEFAULT_BUFFER_SIZE,
            UdpMode::Unicast {
                interface_address: None,
            },
        )
        .unwrap();
        assert_eq!(w.num_substreams(), 2);
        let item = vec![7u8; 1000];
        let first = [IoSlice::new(b"head"), IoSlice::new(&item[..10])];
        let second = [IoSlice::new(b"H2"), IoSlice::new(&item)];
        let mut errors = Vec::new();
        w.write(&[packet(&first, 1), packet(&second, 0)], &mut errors);
        assert!(errors.is_empty());
        let mut buf = [0u8; 2000];
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], [&b"head"[..], &[7u8; 10]].concat());
        let n = a.recv(&mut buf).unwrap();
        assert_eq!(n, 1002);
        assert_eq!(&buf[..2], b"H2");
    }

    #[test]
    fn oversized_datagram_fails_alone() {
        let r = receiver();
        let mut w = UdpWriter::new(
            &[r.local_addr().unwrap()],
            DEFAULT_BUFFER_SIZE,
            UdpMode::Unicast {
                interface_address: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            },
        )
        .unwrap();
        let big = vec![0u8; 70_000];
        let too_big = [IoSlice::new(&big)];
        let ok = [IoSlice::new(b"fine")];
        let mut errors = Vec::new();
        w.write(&[packet(&too_big, 0), packet(&ok, 0)], &mut errors);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, 0);
        assert_eq!(errors[0].1.raw_os_error(), Some(libc::EMSGSIZE));
        let mut buf = [0u8; 16];
        let (n, from) = r.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"fine");
        assert_eq!(from.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn many_slices_are_flattened() {
        let r = receiver();
        let mut w = UdpWriter::new(
            &[r.local_addr().unwrap()],
            0,
            UdpMode::Unicast {
                interface_address: None,
            },
        )
        .unwrap();
        let bytes: Vec<u8> = (0..2000u32).map(|i| i as u8).collect();
        let slices: Vec<IoSlice<'_>> = bytes.chunks(1).map(IoSlice::new).collect();
        let mut errors = Vec::new();
        w.write(&[packet(&slices, 0)], &mut errors);
        assert!(errors.is_empty());
        let mut buf = [0u8; 4000];
        let n = r.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &bytes[..]);
    }

    #[test]
    fn endpoint_checks_match_spead2() {
        let v4: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let v6: SocketAddr = "[::1]:9000".parse().unwrap();
        let mc4: SocketAddr = "239.1.2.3:9000".parse().unwrap();
        let mc6: SocketAddr = "[ff14::1]:9000".parse().unwrap();
        let unicast = UdpMode::Unicast {
            interface_address: None,
        };
        let message = |r: Result<UdpWriter, WriterError>| match r {
            Err(WriterError::Invalid(m)) => m,
            Err(e) => panic!("unexpected {e}"),
            Ok(_) => "ok",
        };
        assert_eq!(
            message(UdpWriter::new(&[], 0, unicast)),
            "Endpoint list must be non-empty"
        );
        assert_eq!(
            message(UdpWriter::new(&[v4, v6], 0, unicast)),
            "Endpoint does not match protocol of the socket"
        );
        assert_eq!(
            message(UdpWriter::new(&[v4], 0, UdpMode::Multicast { ttl: 4 })),
            "endpoint is not a multicast address"
        );
        let mode4 = UdpMode::MulticastV4 {
            ttl: 4,
            interface_address: Ipv4Addr::LOCALHOST,
        };
        assert_eq!(
            message(UdpWriter::new(&[v4], 0, mode4)),
            "endpoint is not an IPv4 multicast address"
        );
        assert_eq!(message(UdpWriter::new(&[mc4], 0, mode4)), "ok");
        assert_eq!(
            message(UdpWriter::new(&[mc4], 0, UdpMode::Multicast { ttl: 4 })),
            "ok"
        );
        let mode6 = UdpMode::MulticastV6 {
            hops: 4,
            interface_index: 0,
        };
        assert_eq!(
            message(UdpWriter::new(&[mc4], 0, mode6)),
            "endpoint is not an IPv6 multicast address"
        );
        // IPv6 may be disabled in a container: only the argument check is certain.
        let _ = UdpWriter::new(&[mc6], 0, mode6);
    }

    #[test]
    fn bind_failures_are_io_errors() {
        let v4: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        let mode = UdpMode::Unicast {
            interface_address: Some("10.99.99.99".parse().unwrap()),
        };
        match UdpWriter::new(&[v4], 0, mode) {
            Err(WriterError::Io { context, error }) => {
                assert_eq!(context, "bind");
                assert_eq!(error.raw_os_error(), Some(libc::EADDRNOTAVAIL));
            }
            _ => panic!("expected a bind error"),
        }
    }

    #[test]
    fn existing_socket_must_match_the_endpoints() {
        let own = UdpSocket::bind("127.0.0.1:0").unwrap();
        let r = receiver();
        let v6: SocketAddr = "[::1]:9000".parse().unwrap();
        let fd = OwnedFd::from(own.try_clone().unwrap());
        assert!(matches!(
            UdpWriter::from_socket(fd, &[v6]),
            Err(WriterError::Invalid(_))
        ));
        // A non-blocking caller socket still works (sends wait for room instead).
        own.set_nonblocking(true).unwrap();
        let fd = OwnedFd::from(own.try_clone().unwrap());
        let mut w = UdpWriter::from_socket(fd, &[r.local_addr().unwrap()]).unwrap();
        assert_eq!(w.local_addr().unwrap(), own.local_addr().unwrap());
        let mut errors = Vec::new();
        w.write(&[packet(&[IoSlice::new(b"x")], 0)], &mut errors);
        assert!(errors.is_empty());
        let mut buf = [0u8; 4];
        let (n, from) = r.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from), (&b"x"[..], own.local_addr().unwrap()));
    }
}
