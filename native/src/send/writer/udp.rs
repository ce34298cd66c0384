//! UDP writer: one destination per substream, batches sent with `sendmmsg` whose iovecs
//! point straight at the packets' header blocks and item bytes, with runs of equal-sized
//! packets coalesced by UDP GSO where the kernel supports it (see `gso`).

mod gso;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::{clone_error, set_send_buffer, wait_writable, OutPacket, Writer, WriterError};
use gso::{iovec_ptr, may_be_gso_error, GsoState, Message, Scratch};

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
    gso: GsoState,
    scratch: Scratch,
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
        let gso = GsoState::new(&socket, endpoints);
        UdpWriter {
            socket,
            destinations: endpoints.iter().map(|&e| SockAddr::from(e)).collect(),
            gso,
            scratch: Scratch::default(),
        }
    }

    /// The local address (useful in tests and for logging).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))
    }

    /// Whether runs of equal-sized packets are still coalesced with UDP GSO (false if the
    /// kernel lacks it, after a refusal that showed it unusable, or after `disable_gso`).
    pub fn gso_enabled(&self) -> bool {
        self.gso.is_enabled()
    }

    /// Sends one datagram per packet from now on (for comparisons and benchmarks).
    pub fn disable_gso(&mut self) {
        self.gso.disable();
    }

    /// Sends the messages laid out in `self.scratch`, reporting failed packets in `errors`.
    fn send_prepared(&mut self, errors: &mut Vec<(usize, io::Error)>) {
        let fd = self.socket.as_raw_fd();
        let mut next = 0;
        while next < self.scratch.headers.len() {
            let message = self.scratch.messages[next];
            match send_batch(fd, &mut self.scratch.headers[next..]) {
                Ok(0) => {
                    // Only possible for an empty request; never loop on it.
                    let error = io::Error::other("sendmmsg sent no message");
                    report_all(&message, &error, errors);
                    next += 1;
                }
                Ok(sent) => {
                    let done = &self.scratch.messages[next..next + sent];
                    self.gso.sent += done.iter().filter(|m| m.segment != 0).count() as u64;
                    next += sent;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(e) = wait_writable(fd) {
                        report_all(&message, &e, errors);
                        next += 1;
                    }
                }
                Err(e) => {
                    let learned = self.message_failed(&message, e, errors);
                    next += 1;
                    let rest = message.first + message.count;
                    if learned && next < self.scratch.headers.len() {
                        // Lay the rest of the batch out again under the new limits.
                        self.scratch.lay_out(rest, &self.gso, &self.destinations);
                        next = 0;
                    }
                }
            }
        }
    }

    /// Handles a message the kernel refused as a whole; true if GSO's limits changed.
    fn message_failed(
        &mut self,
        message: &Message,
        error: io::Error,
        errors: &mut Vec<(usize, io::Error)>,
    ) -> bool {
        log::debug!("UDP send failed: {error}");
        let packets = message.first..message.first + message.count;
        if message.segment == 0 || !may_be_gso_error(&error) {
            // What the first datagram would have got without GSO too (say, a pending ICMP
            // error or an unreachable network); the others still get their own attempt.
            errors.push((message.first, error));
            for packet in packets.skip(1) {
                if let Err(e) = self.send_single(packet) {
                    errors.push((packet, e));
                }
            }
            return false;
        }
        // Possibly GSO's own limits: resend one datagram per packet, so each packet gets
        // exactly the outcome it would have had without GSO, then learn from the error if
        // plain sending worked where GSO did not.
        self.gso.refused += 1;
        let mut plain_worked = false;
        for packet in packets {
            match self.send_single(packet) {
                Ok(()) => plain_worked |= packet == message.first,
                Err(e) => errors.push((packet, e)),
            }
        }
        if plain_worked {
            let substream = self.scratch.spans[message.first].substream;
            self.gso.failed(&error, message, substream);
        }
        plain_worked
    }

    /// Sends one packet of the prepared batch as a datagram of its own.
    fn send_single(&mut self, packet: usize) -> io::Result<()> {
        let fd = self.socket.as_raw_fd();
        let span = &self.scratch.spans[packet];
        let iovecs = iovec_ptr(&mut self.scratch.iovecs, &span.iovecs);
        let mut header = message_header(&self.destinations[span.substream], iovecs);
        loop {
            match send_batch(fd, std::slice::from_mut(&mut header)) {
                Ok(0) => return Err(io::Error::other("sendmmsg sent no message")),
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_writable(fd)?,
                Err(e) => return Err(e),
            }
        }
    }
}

/// One `sendmmsg` over `headers`; Ok(n) messages sent, or the error of the first.
fn send_batch(fd: RawFd, headers: &mut [libc::mmsghdr]) -> io::Result<usize> {
    let count = headers.len().min(MAX_IOV) as libc::c_uint;
    // SAFETY: `headers` holds `count` initialised mmsghdrs whose name, iovec and control
    // pointers refer to the writer's destinations, to iovecs in its scratch space (which
    // point into the packets being written or into copies of them) and to its control
    // buffers, all alive and unmodified for the duration of the call; the kernel only
    // reads them (and writes msg_len within the array).
    let rc = unsafe { libc::sendmmsg(fd, headers.as_mut_ptr(), count, libc::MSG_NOSIGNAL) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        // Never more than asked for; the clamp keeps callers' slicing in bounds regardless.
        Ok((rc as usize).min(count as usize))
    }
}

/// Reports `error` for every packet of `message`.
fn report_all(message: &Message, error: &io::Error, errors: &mut Vec<(usize, io::Error)>) {
    for packet in message.first..message.first + message.count {
        errors.push((packet, clone_error(error)));
    }
}

/// An iovec over `bytes`; it is only ever passed to sends, which read through it.
fn iovec_of(bytes: &[u8]) -> libc::iovec {
    libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    }
}

/// A message header sending the iovecs at `iovecs` (pointer, count) as one datagram to
/// `destination`.
fn message_header(destination: &SockAddr, iovecs: (*mut libc::iovec, usize)) -> libc::mmsghdr {
    // SAFETY: mmsghdr is a plain C struct of integers and pointers, for which all-zero is
    // a valid value (null name and iovec, no control data, no flags).
    let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
    // sendmmsg only reads the address, so casting away const is sound.
    header.msg_hdr.msg_name = destination.as_ptr() as *mut libc::c_void;
    header.msg_hdr.msg_namelen = destination.len();
    header.msg_hdr.msg_iov = iovecs.0;
    header.msg_hdr.msg_iovlen = iovecs.1 as _;
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
        let flat: Vec<Vec<u8>> = packets
            .iter()
            .filter(|p| p.slices.len() > MAX_IOV)
            .map(OutPacket::to_vec)
            .collect();
        self.scratch.prepare(packets, &flat);
        self.scratch.lay_out(0, &self.gso, &self.destinations);
        self.send_prepared(errors);
        // The pointers into `packets` and `flat` must not outlive this call.
        self.scratch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::IoSlice;
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

    /// A receiver with room for a whole test batch even before it reads.
    fn roomy_receiver(addr: &str) -> Option<UdpSocket> {
        let r = UdpSocket::bind(addr).ok()?;
        r.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        socket2::SockRef::from(&r)
            .set_recv_buffer_size(4 << 20)
            .unwrap();
        Some(r)
    }

    /// Test packets as (bytes, substream): runs of `len`-byte packets ending with shorter
    /// ones, like heaps of several sizes, spread over `substreams`; each packet's bytes
    /// are distinct so that a misplaced segment boundary shows.
    fn heap_like_packets(len: usize, substreams: usize) -> Vec<(Vec<u8>, usize)> {
        let mut out = Vec::new();
        let tails = [len, 1, len / 2, 7, len - 1];
        for (heap, &tail) in tails.iter().cycle().take(12).enumerate() {
            let full = 1 + heap % 50;
            for i in 0..=full {
                let size = if i == full { tail } else { len };
                let bytes = (0..size).map(|b| (b * 31 + i * 7 + heap) as u8).collect();
                out.push((bytes, heap % substreams));
            }
        }
        out
    }

    /// Writes `packets` in batches of up to 64 (as the stream does), each packet as a
    /// header slice and two payload slices, and reads back every datagram per receiver.
    fn write_and_collect(
        w: &mut UdpWriter,
        packets: &[(Vec<u8>, usize)],
        receivers: &[UdpSocket],
    ) -> Vec<Vec<Vec<u8>>> {
        let mut got = vec![Vec::new(); receivers.len()];
        let mut buf = vec![0u8; 65536];
        for batch in packets.chunks(64) {
            let slices: Vec<[IoSlice<'_>; 3]> = batch
                .iter()
                .map(|(bytes, _)| {
                    let (head, rest) = bytes.split_at(bytes.len().min(8));
                    let (a, b) = rest.split_at(rest.len() / 3);
                    [IoSlice::new(head), IoSlice::new(a), IoSlice::new(b)]
                })
                .collect();
            let out: Vec<OutPacket<'_>> = slices
                .iter()
                .zip(batch)
                .map(|(s, &(_, substream))| packet(s, substream))
                .collect();
            let mut errors = Vec::new();
            w.write(&out, &mut errors);
            assert!(errors.is_empty(), "{errors:?}");
            for (i, r) in receivers.iter().enumerate() {
                for _ in batch.iter().filter(|p| p.1 == i) {
                    let n = r.recv(&mut buf).unwrap();
                    got[i].push(buf[..n].to_vec());
                }
            }
        }
        got
    }

    /// What each receiver must see: the packets to it, in order, one datagram each.
    fn expected(packets: &[(Vec<u8>, usize)], substreams: usize) -> Vec<Vec<Vec<u8>>> {
        (0..substreams)
            .map(|i| {
                packets
                    .iter()
                    .filter(|p| p.1 == i)
                    .map(|p| p.0.clone())
                    .collect()
            })
            .collect()
    }

    /// Sends the same packets with and without GSO; both must arrive as the same datagrams.
    fn gso_matches_plain(addr: &str, mode: UdpMode, len: usize) {
        let Some(receivers) = (0..4)
            .map(|_| roomy_receiver(addr))
            .collect::<Option<Vec<_>>>()
        else {
            eprintln!("no {addr} here; skipped");
            return;
        };
        let packets = heap_like_packets(len, 2);
        let want = expected(&packets, 2);
        let endpoints: Vec<SocketAddr> =
            receivers.iter().map(|r| r.local_addr().unwrap()).collect();
        let mut gso = UdpWriter::new(&endpoints[..2], 1 << 20, mode).unwrap();
        let mut plain = UdpWriter::new(&endpoints[2..], 1 << 20, mode).unwrap();
        plain.disable_gso();
        assert!(gso.gso_enabled(), "this kernel has UDP GSO");
        assert_eq!(write_and_collect(&mut gso, &packets, &receivers[..2]), want);
        assert_eq!(
            write_and_collect(&mut plain, &packets, &receivers[2..]),
            want
        );
        assert!(gso.gso_enabled());
        assert!(gso.gso.sent > packets.len() as u64 / 64);
        assert_eq!(plain.gso.sent, 0);
    }

    #[test]
    fn gso_datagrams_match_plain_ones() {
        let unicast = UdpMode::Unicast {
            interface_address: None,
        };
        for len in [1472, 8972, 100] {
            gso_matches_plain("127.0.0.1:0", unicast, len);
        }
        gso_matches_plain("[::1]:0", unicast, 1452);
    }

    #[test]
    fn gso_multicast_datagrams_match_plain_ones() {
        let group: Ipv4Addr = "239.255.12.34".parse().unwrap();
        let receivers: Vec<UdpSocket> = (0..4)
            .map(|_| {
                let r = UdpSocket::bind((group, 0)).unwrap();
                r.join_multicast_v4(&group, &Ipv4Addr::LOCALHOST).unwrap();
                r.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                r
            })
            .collect();
        let endpoints: Vec<SocketAddr> =
            receivers.iter().map(|r| r.local_addr().unwrap()).collect();
        let mode = UdpMode::MulticastV4 {
            ttl: 1,
            interface_address: Ipv4Addr::LOCALHOST,
        };
        let packets = heap_like_packets(1472, 2);
        let want = expected(&packets, 2);
        let mut gso = UdpWriter::new(&endpoints[..2], 1 << 20, mode).unwrap();
        let mut plain = UdpWriter::new(&endpoints[2..], 1 << 20, mode).unwrap();
        plain.disable_gso();
        assert_eq!(write_and_collect(&mut gso, &packets, &receivers[..2]), want);
        assert_eq!(
            write_and_collect(&mut plain, &packets, &receivers[2..]),
            want
        );
        assert!(gso.gso.sent > 0);
    }

    #[test]
    fn oversized_packet_between_runs_fails_alone() {
        let r = roomy_receiver("127.0.0.1:0").unwrap();
        let mode = UdpMode::Unicast {
            interface_address: None,
        };
        let mut w = UdpWriter::new(&[r.local_addr().unwrap()], 1 << 20, mode).unwrap();
        let small = vec![5u8; 1000];
        let big = vec![6u8; 70_000];
        let ok = [IoSlice::new(&small)];
        let too_big = [IoSlice::new(&big)];
        let batch = [
            packet(&ok, 0),
            packet(&ok, 0),
            packet(&too_big, 0),
            packet(&ok, 0),
            packet(&ok, 0),
        ];
        let mut errors = Vec::new();
        w.write(&batch, &mut errors);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, 2);
        assert_eq!(errors[0].1.raw_os_error(), Some(libc::EMSGSIZE));
        let mut buf = [0u8; 2000];
        for _ in 0..4 {
            assert_eq!(r.recv(&mut buf).unwrap(), 1000);
        }
        assert_eq!((w.gso.sent, w.gso.refused), (2, 0));
        assert!(w.gso_enabled());
    }

    #[test]
    fn refused_segment_size_is_resent_plainly_and_remembered() {
        // SO_NO_CHECK makes the kernel refuse GSO with EINVAL, as a segment above the
        // route's MTU would.
        let own = UdpSocket::bind("127.0.0.1:0").unwrap();
        let one: libc::c_int = 1;
        // SAFETY: `one` is a live c_int and the length passed is its size.
        let rc = unsafe {
            libc::setsockopt(
                own.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_NO_CHECK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        let receivers = [roomy_receiver("127.0.0.1:0").unwrap()];
        let mut w =
            UdpWriter::from_socket(OwnedFd::from(own), &[receivers[0].local_addr().unwrap()])
                .unwrap();
        assert!(w.gso_enabled());
        let packets = heap_like_packets(1000, 1);
        assert_eq!(
            write_and_collect(&mut w, &packets, &receivers),
            expected(&packets, 1)
        );
        // Only the first run of 1000-byte packets was tried with GSO (and refused); the
        // others went out singly, and smaller segments may still be tried.
        assert_eq!((w.gso.sent, w.gso.refused), (0, 1));
        assert!(w.gso_enabled());
        let smaller = vec![(vec![1u8; 999], 0), (vec![2u8; 999], 0)];
        assert_eq!(
            write_and_collect(&mut w, &smaller, &receivers),
            expected(&smaller, 1)
        );
        assert_eq!((w.gso.sent, w.gso.refused), (0, 2));
    }

    #[test]
    fn device_refusal_turns_gso_off() {
        // UDP-Lite sockets accept the GSO option but every GSO send fails with EIO, as on
        // a device without checksum offload.
        const UDPLITE: i32 = 136;
        let lite = || -> Option<Socket> {
            let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::from(UDPLITE))).ok()?;
            s.bind(&SockAddr::from(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))))
                .unwrap();
            Some(s)
        };
        let (Some(own), Some(r)) = (lite(), lite()) else {
            eprintln!("no UDP-Lite in this kernel; skipped");
            return;
        };
        let r = UdpSocket::from(r);
        r.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut w = UdpWriter::from_socket(own.into(), &[r.local_addr().unwrap()]).unwrap();
        assert!(w.gso_enabled());
        let packets = heap_like_packets(1000, 1);
        let receivers = [r];
        assert_eq!(
            write_and_collect(&mut w, &packets, &receivers),
            expected(&packets, 1)
        );
        assert!(!w.gso_enabled());
        assert_eq!((w.gso.sent, w.gso.refused), (0, 1));
    }

    /// Every datagram that arrives at `r` until it has been quiet for a while.
    fn drain(r: &UdpSocket) -> Vec<Vec<u8>> {
        let mut buf = vec![0u8; 65536];
        let mut got = Vec::new();
        r.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        while let Ok(n) = r.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
        got
    }

    /// Heaps sent through a stream arrive as the same datagrams with GSO as without.
    #[test]
    fn stream_heaps_arrive_as_the_same_datagrams() {
        use crate::protocol::Flavour;
        use crate::send::group::GroupMode;
        use crate::send::heap::SendHeap;
        use crate::send::stream::{HeapRef, Stream, StreamConfig};
        use std::sync::Arc;

        let heap = |len: usize, seed: usize| {
            let mut heap = SendHeap::new(Flavour::default());
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + seed) as u8).collect();
            heap.add_item(0x1000, Arc::new(data), false);
            heap.add_item(0x1001, Arc::new(vec![seed as u8; 3]), false);
            HeapRef {
                substream_index: seed % 2,
                ..HeapRef::new(Arc::new(heap))
            }
        };
        let group: Vec<HeapRef> = [60_000, 3000, 1, 14_000, 1472 * 5, 30_000]
            .iter()
            .enumerate()
            .map(|(seed, &len)| heap(len, seed))
            .collect();
        let mut results = Vec::new();
        for (use_gso, max_packet_size) in [(true, 1472), (false, 1472), (true, 8972), (false, 8972)]
        {
            let receivers: Vec<UdpSocket> = (0..2)
                .map(|_| roomy_receiver("127.0.0.1:0").unwrap())
                .collect();
            let endpoints: Vec<SocketAddr> =
                receivers.iter().map(|r| r.local_addr().unwrap()).collect();
            let mode = UdpMode::Unicast {
                interface_address: None,
            };
            let mut writer = UdpWriter::new(&endpoints, 1 << 20, mode).unwrap();
            if !use_gso {
                writer.disable_gso();
            }
            let config = StreamConfig {
                max_packet_size,
                max_heaps: group.len(),
                ..StreamConfig::default()
            };
            let stream = Stream::new(config, Box::new(writer)).unwrap();
            for mode in [GroupMode::Serial, GroupMode::RoundRobin] {
                stream.send_heaps(&group, mode).unwrap().wait().unwrap();
            }
            drop(stream);
            let got: Vec<Vec<Vec<u8>>> = receivers.iter().map(drain).collect();
            results.push(got);
        }
        assert_eq!(results[0], results[1]);
        assert_eq!(results[2], results[3]);
        // 2 x 6 heaps; the 60 kB heap alone makes 42 packets of 1472 bytes.
        assert!(results[1][0].len() > 84, "{}", results[1][0].len());
        assert!(results[1][0].iter().all(|d| d.len() <= 1472));
        assert!(results[1][0].iter().filter(|d| d.len() == 1472).count() > 80);
        let lens: Vec<usize> = results[3][0].iter().map(Vec::len).collect();
        assert!(
            lens.iter().filter(|&&l| l > 8900 && l <= 8972).count() >= 10,
            "{lens:?}"
        );
    }
}
