//! Reads UDP datagrams (unicast or multicast, IPv4 or IPv6) in batches with recvmmsg, with
//! UDP GRO (receive coalescing) on the sockets it creates where the kernel has it.

mod gro;
mod overflow;
mod slots;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::recv::reader::backlog::Backlog;
use crate::recv::stats::DropReason;
use crate::recv::stream::{Batch, StreamShared};
use crate::thread_pool::{Context, Progress, Reader};
use slots::{Received, Slots};

pub const DEFAULT_MAX_SIZE: usize = 9200;
pub const DEFAULT_BUFFER_SIZE: usize = 8 * 1024 * 1024;
/// recvmmsg calls per run before yielding to other readers on the worker.
const CALLS_PER_RUN: usize = 16;
/// Datagrams (GRO segments counted one by one) read between two empty reads that mark a
/// stream as fast (`Backlog`): a plain recvmmsg batch's worth queued up while the worker was
/// away ...
const FAST_ENTER: usize = 64;
/// ... and that keep it fast: 8 datagrams in one nap of about 130 us is 0.7 Gb/s of
/// 1472-byte or 4.4 Gb/s of 9000-byte datagrams; slower streams fall back to blocking ...
const FAST_STAY: usize = 8;
/// ... as does one that pauses for longer than the worker's naps after a fast stretch.
const FAST_GAP: Duration = Duration::from_millis(1);

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
    gro::enable(&socket);
    overflow::enable(&socket);
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
    slots: Slots,
    drops: overflow::DropTracker,
    backlog: Backlog,
}

impl UdpReader {
    /// Reads from `socket`. If the socket has UDP GRO on (as `bind` leaves it where the
    /// kernel can, or as the caller set it), coalesced datagrams are split back up; if it
    /// reports its drop counter (`SO_RXQ_OVFL`, likewise), kernel drops are counted.
    pub fn new(shared: Arc<StreamShared>, socket: Socket, max_size: usize) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let gro = gro::is_enabled(&socket);
        let slots = Slots::new(max_size, gro, overflow::is_enabled(&socket));
        let socket = mio::net::UdpSocket::from_std(socket.into());
        Ok(UdpReader {
            shared,
            socket,
            max_size,
            slots,
            drops: overflow::DropTracker::default(),
            backlog: Backlog::new(FAST_ENTER, FAST_STAY, FAST_GAP),
        })
    }

    /// Hands one received datagram (or GRO super-datagram) to `batch`; false once the
    /// stream has stopped.
    fn deliver(&self, batch: &mut Batch<'_>, datagram: &Received<'_>) -> bool {
        // A zero segment size never comes out of gro::segment_size; filtered again so that
        // `chunks` cannot panic whatever the source.
        match datagram.segment.filter(|&s| s > 0) {
            None if datagram.truncated => self.too_large(batch),
            None => self.deliver_one(batch, datagram.data),
            Some(segment) => {
                // Only whole segments are usable if the kernel truncated the buffer.
                let whole = if datagram.truncated {
                    datagram.data.len() - datagram.data.len() % segment
                } else {
                    datagram.data.len()
                };
                for packet in datagram.data[..whole].chunks(segment) {
                    self.deliver_one(batch, packet);
                    if batch.is_stopped() {
                        return false;
                    }
                }
                if datagram.truncated {
                    log::warn!("coalesced UDP datagram truncated; its tail is lost");
                    self.too_large(batch);
                }
            }
        }
        !batch.is_stopped()
    }

    fn deliver_one(&self, batch: &mut Batch<'_>, packet: &[u8]) {
        if packet.len() > self.max_size {
            self.too_large(batch);
        } else {
            batch.add_datagram(packet);
        }
    }

    fn too_large(&self, batch: &mut Batch<'_>) {
        log::info!("dropped packet larger than max_size ({})", self.max_size);
        batch.drop_packet(DropReason::TooLarge);
    }
}

impl Reader for UdpReader {
    fn source(&mut self) -> Option<&mut dyn mio::event::Source> {
        Some(&mut self.socket)
    }

    fn run(&mut self, _ctx: &Context<'_>) -> Progress {
        use std::os::fd::AsRawFd;
        for _ in 0..CALLS_PER_RUN {
            if self.shared.is_stopping() {
                return Progress::Done;
            }
            let n = match self.slots.receive(self.socket.as_raw_fd()) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return self.backlog.empty(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("error reading from UDP socket: {e}");
                    return Progress::Idle;
                }
            };
            let mut batch = self.shared.batch();
            for i in 0..n {
                let received = self.slots.received(i);
                self.backlog.read(received.datagrams());
                if let Some(reading) = received.overflow {
                    let dropped = self.drops.advance(reading);
                    if dropped > 0 {
                        batch.drop_packets(DropReason::SocketOverflow, dropped);
                    }
                }
                if !self.deliver(&mut batch, &received) {
                    return Progress::Done;
                }
            }
        }
        Progress::More
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Flavour;
    use crate::recv::config::{RingConfig, StreamConfig};
    use crate::recv::stream::Stream;
    use crate::send::group::GroupMode;
    use crate::send::heap::SendHeap;
    use crate::send::stream::{HeapRef, Stream as SendStream, StreamConfig as SendConfig};
    use crate::send::writer::udp::{UdpMode, UdpWriter};
    use crate::send::writer::{OutPacket, Writer};
    use crate::thread_pool::ThreadPool;
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    fn local() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    fn writer_to(addr: SocketAddr, gso: bool) -> UdpWriter {
        let mode = UdpMode::Unicast {
            interface_address: None,
        };
        let mut w = UdpWriter::new(&[addr], 1 << 20, mode).unwrap();
        if !gso {
            w.disable_gso();
        }
        w
    }

    /// Writes `packets` in one batch and checks that all went.
    fn write(w: &mut UdpWriter, packets: &[Vec<u8>]) {
        let slices: Vec<[IoSlice<'_>; 1]> = packets.iter().map(|p| [IoSlice::new(p)]).collect();
        let out: Vec<OutPacket<'_>> = slices
            .iter()
            .map(|s| OutPacket {
                slices: s,
                substream: 0,
            })
            .collect();
        let mut errors = Vec::new();
        w.write(&out, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
    }

    /// Receives until `want` datagrams (counting each GRO segment) have arrived; returns
    /// each receive as (total length, GRO segment size).
    fn receive_all(socket: &Socket, slots: &mut Slots, want: usize) -> Vec<(usize, Option<usize>)> {
        let mut got = Vec::new();
        let mut packets = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while packets < want && std::time::Instant::now() < deadline {
            match slots.receive(socket.as_raw_fd()) {
                Ok(n) => {
                    for i in 0..n {
                        let r = slots.received(i);
                        packets += r.segment.map_or(1, |s| r.data.len().div_ceil(s));
                        got.push((r.data.len(), r.segment));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("{e}"),
            }
        }
        got
    }

    #[test]
    fn bound_sockets_get_gro_and_coalesced_datagrams_say_so() {
        let socket = bind(local(), 1 << 20, None).unwrap();
        assert!(gro::is_enabled(&socket));
        socket.set_nonblocking(true).unwrap();
        let mut slots = Slots::new(DEFAULT_MAX_SIZE, true, true);
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        let mut packets: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 1000]).collect();
        packets.push(vec![10; 300]);
        write(&mut writer_to(addr, true), &packets);
        assert_eq!(receive_all(&socket, &mut slots, 11), [(10_300, Some(1000))]);
        // Without GSO on the sending side the datagrams stay separate.
        write(&mut writer_to(addr, false), &packets[8..]);
        assert_eq!(
            receive_all(&socket, &mut slots, 3),
            [(1000, None), (1000, None), (300, None)]
        );
    }

    #[test]
    fn a_coalesced_datagram_counts_as_its_segments() {
        let data = [0u8; 10_300];
        let received = |segment| Received {
            data: &data,
            segment,
            truncated: false,
            overflow: None,
        };
        assert_eq!(received(Some(1000)).datagrams(), 11);
        assert_eq!(received(Some(10_300)).datagrams(), 1);
        assert_eq!(received(None).datagrams(), 1);
        assert_eq!(received(Some(0)).datagrams(), 1);
    }

    #[test]
    fn caller_sockets_keep_their_gro_setting() {
        let plain = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
        assert!(!gro::is_enabled(&plain));
        plain.bind(&local().into()).unwrap();
        plain.set_nonblocking(true).unwrap();
        let addr = plain.local_addr().unwrap().as_socket().unwrap();
        let mut slots = Slots::new(DEFAULT_MAX_SIZE, false, false);
        let packets: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 1000]).collect();
        write(&mut writer_to(addr, true), &packets);
        // The kernel splits GSO sends for sockets without GRO.
        assert_eq!(receive_all(&plain, &mut slots, 3), [(1000, None); 3]);
        assert!(!gro::is_enabled(&plain));
    }

    /// A receive stream reading a socket made by `bind`, with `max_size`.
    fn receiver(max_size: usize) -> (Stream, SocketAddr) {
        let pool = ThreadPool::new(1, &[]).unwrap();
        let config = StreamConfig {
            max_heaps: 8,
            ..StreamConfig::default()
        };
        let ring = RingConfig {
            heaps: 64,
            ..RingConfig::default()
        };
        let stream = Stream::new(pool, config, ring).unwrap();
        let socket = bind(local(), 4 << 20, None).unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        let reader = UdpReader::new(stream.shared().clone(), socket, max_size).unwrap();
        stream.add_reader(Box::new(reader)).unwrap();
        (stream, addr)
    }

    fn heap_data(len: usize, seed: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 13 + seed) as u8).collect()
    }

    /// Heaps sent with GSO (or without) to a GRO reader arrive complete and byte-exact.
    fn heaps_arrive(gso: bool, packet_size: usize) {
        let (stream, addr) = receiver(DEFAULT_MAX_SIZE);
        let sizes = [100_000, 1, 5000, 65_536, 1472 * 7, 30_001];
        let sender = std::thread::spawn(move || {
            let config = SendConfig {
                max_packet_size: packet_size,
                max_heaps: 16,
                ..SendConfig::default()
            };
            let send = SendStream::new(config, Box::new(writer_to(addr, gso))).unwrap();
            for (seed, &len) in sizes.iter().enumerate() {
                let mut heap = SendHeap::new(Flavour::default());
                heap.add_item(0x1000, std::sync::Arc::new(heap_data(len, seed)), false);
                let heap = HeapRef::new(std::sync::Arc::new(heap));
                send.send_heaps(&[heap], GroupMode::Serial)
                    .unwrap()
                    .wait()
                    .unwrap();
            }
        });
        for (seed, &len) in sizes.iter().enumerate() {
            let heap = stream.ring().pop_timeout(Duration::from_secs(5)).unwrap();
            assert!(heap.is_complete(), "heap {seed}");
            assert_eq!(heap.payload(), heap_data(len, seed), "heap {seed}");
        }
        sender.join().unwrap();
        assert_eq!(stream.drop_counts().total(), 0);
    }

    #[test]
    fn gro_reader_receives_heaps_exactly() {
        for packet_size in [1472, 8972] {
            heaps_arrive(true, packet_size);
            heaps_arrive(false, packet_size);
        }
    }

    #[test]
    fn oversize_segments_are_dropped_one_by_one() {
        let (stream, addr) = receiver(1000);
        let mut w = writer_to(addr, true);
        // One coalesced datagram of 1200-byte segments: five packets too large, each
        // counted; then four plain datagrams, one too large.
        let big: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 1200]).collect();
        write(&mut w, &big);
        w.disable_gso();
        let mixed = [vec![1u8; 1001], vec![2; 10], vec![3; 1000], vec![4; 999]];
        write(&mut w, &mixed);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let too_large = || stream.drop_counts().get(DropReason::TooLarge);
        while too_large() < 6 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(too_large(), 6);
        // The three others were not SPEAD packets: dropped, but not as too large.
        assert_eq!(stream.drop_counts().total(), 9);
    }

    #[test]
    fn kernel_drops_are_counted_as_socket_overflow() {
        let pool = ThreadPool::new(1, &[]).unwrap();
        let stream = Stream::new(pool, StreamConfig::default(), RingConfig::default()).unwrap();
        // A small buffer that nothing reads yet: most of the burst is dropped by the kernel.
        let socket = bind(local(), 16 << 10, None).unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        let sender = std::net::UdpSocket::bind(local()).unwrap();
        let garbage = [0u8; 1000];
        let sent = 2000;
        for _ in 0..sent {
            sender.send_to(&garbage, addr).unwrap();
        }
        let reader = UdpReader::new(stream.shared().clone(), socket, DEFAULT_MAX_SIZE).unwrap();
        stream.add_reader(Box::new(reader)).unwrap();
        // Every datagram is either read (and dropped as not SPEAD) or counted as overflow;
        // wait until they add up (a late datagram carries the final counter).
        let overflow = || stream.drop_counts().get(DropReason::SocketOverflow);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while stream.drop_counts().total() < sent + 1 && std::time::Instant::now() < deadline {
            sender.send_to(&garbage, addr).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        let counts = stream.drop_counts();
        assert!(overflow() > 0, "nothing overflowed: {counts:?}");
        assert!(overflow() < sent, "{counts:?}");
        let read = counts.total() - overflow();
        // Datagrams sent = read + dropped by the kernel (the extra probes included).
        let probes = read + overflow() - sent;
        assert!(probes >= 1, "{counts:?}");
    }
}
