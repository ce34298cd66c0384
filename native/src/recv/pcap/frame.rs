//! Decoding captured frames down to a UDP datagram: link layer, IPv4/IPv6, UDP.
//!
//! Everything here is a pure function of the captured bytes. Frames that are not UDP over IP
//! are [`Decoded::NotUdp`] (skipped silently); frames that claim to be UDP but cannot be
//! delivered intact (truncated by the snap length, inconsistent lengths, IP fragments of a UDP
//! datagram) are [`Decoded::Invalid`] with a reason worth logging.
//!
//! Fragmentation policy: reassembly is not attempted. A non-first IPv4 fragment carries no UDP
//! header and is not recognisable as UDP, so it is `NotUdp`. A first IPv4 fragment, and any
//! IPv6 packet with a Fragment header (other than an atomic fragment, which is a whole
//! datagram), is `Invalid`: its datagram is incomplete.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

/// A link-layer header type, as numbered by the tcpdump.org LINKTYPE_ registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkType(pub u16);

impl LinkType {
    /// BSD loopback: a 4-byte address family in the writer's byte order.
    pub const NULL: LinkType = LinkType(0);
    pub const ETHERNET: LinkType = LinkType(1);
    /// Raw IP; the version nibble says whether it is IPv4 or IPv6.
    pub const RAW: LinkType = LinkType(101);
    /// Linux "cooked" capture, version 1.
    pub const LINUX_SLL: LinkType = LinkType(113);
    pub const IPV4: LinkType = LinkType(228);
    pub const IPV6: LinkType = LinkType(229);
    /// Linux "cooked" capture, version 2.
    pub const LINUX_SLL2: LinkType = LinkType(276);

    /// Whether [`decode`] understands this link type.
    pub fn is_supported(self) -> bool {
        matches!(
            self,
            LinkType::NULL
                | LinkType::ETHERNET
                | LinkType::RAW
                | LinkType::LINUX_SLL
                | LinkType::IPV4
                | LinkType::IPV6
                | LinkType::LINUX_SLL2
        )
    }
}

/// The parts of a UDP datagram that filters look at, and where its payload lies in the frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpDatagram {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    /// Byte range of the UDP payload within the frame passed to [`decode`]. A range rather
    /// than a slice so that callers can hold on to it while reusing the frame buffer's owner.
    pub payload: Range<usize>,
}

/// The outcome of decoding one captured frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    Udp(UdpDatagram),
    /// Not UDP over IPv4/IPv6 (or a link type we do not decode): nothing to deliver.
    NotUdp,
    /// UDP (or possibly UDP) that cannot be delivered intact; the reason is for logging.
    Invalid(&'static str),
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// 802.1Q, 802.1ad and the pre-standard QinQ tag: each is followed by a 2-byte TCI and the
/// next EtherType.
const ETHERTYPE_VLAN_TAGS: [u16; 3] = [0x8100, 0x88a8, 0x9100];
/// More stacked tags than this is not a real frame; bounding it keeps decoding O(1).
const MAX_VLAN_TAGS: usize = 4;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_DSTOPTS: u8 = 60;

const UDP_HEADER_LEN: usize = 8;

/// Decodes a captured frame of the given link type.
pub fn decode(link: LinkType, frame: &[u8]) -> Decoded {
    match link {
        LinkType::ETHERNET => decode_ethernet(frame),
        LinkType::RAW => decode_raw_ip(frame, 0),
        LinkType::IPV4 => decode_ipv4(frame, 0),
        LinkType::IPV6 => decode_ipv6(frame, 0),
        LinkType::LINUX_SLL => decode_by_ethertype(frame, be16(frame, 14), 16),
        LinkType::LINUX_SLL2 => decode_by_ethertype(frame, be16(frame, 0), 20),
        LinkType::NULL => decode_bsd_loopback(frame),
        _ => Decoded::NotUdp,
    }
}

/// Reads a big-endian u16 at `at`, or `None` if the frame is too short.
fn be16(frame: &[u8], at: usize) -> Option<u16> {
    let bytes: &[u8] = frame.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

fn decode_ethernet(frame: &[u8]) -> Decoded {
    // Destination and source MAC addresses precede the first EtherType.
    let mut offset: usize = 12;
    for _ in 0..=MAX_VLAN_TAGS {
        let Some(ethertype) = be16(frame, offset) else {
            return Decoded::NotUdp;
        };
        if !ETHERTYPE_VLAN_TAGS.contains(&ethertype) {
            return decode_by_ethertype(frame, Some(ethertype), offset + 2);
        }
        offset += 4;
    }
    Decoded::NotUdp
}

fn decode_by_ethertype(frame: &[u8], ethertype: Option<u16>, offset: usize) -> Decoded {
    match ethertype {
        Some(ETHERTYPE_IPV4) => decode_ipv4(frame, offset),
        Some(ETHERTYPE_IPV6) => decode_ipv6(frame, offset),
        _ => Decoded::NotUdp,
    }
}

fn decode_raw_ip(frame: &[u8], offset: usize) -> Decoded {
    match frame.get(offset).map(|byte: &u8| byte >> 4) {
        Some(4) => decode_ipv4(frame, offset),
        Some(6) => decode_ipv6(frame, offset),
        _ => Decoded::NotUdp,
    }
}

/// The family is in the capturing host's byte order, which is usually but not always the
/// file's, so both orders are tried: valid families are small numbers.
fn decode_bsd_loopback(frame: &[u8]) -> Decoded {
    let Some(bytes) = frame.get(0..4) else {
        return Decoded::NotUdp;
    };
    let bytes: [u8; 4] = [bytes[0], bytes[1], bytes[2], bytes[3]];
    let little: u32 = u32::from_le_bytes(bytes);
    let family: u32 = if little < 256 {
        little
    } else {
        u32::from_be_bytes(bytes)
    };
    match family {
        2 => decode_ipv4(frame, 4),
        // AF_INET6 differs between BSDs, macOS and Linux.
        10 | 24 | 28 | 30 => decode_ipv6(frame, 4),
        _ => Decoded::NotUdp,
    }
}

fn decode_ipv4(frame: &[u8], offset: usize) -> Decoded {
    let Some(header) = frame.get(offset..offset + 20) else {
        return Decoded::NotUdp;
    };
    if header[0] >> 4 != 4 || header[9] != IPPROTO_UDP {
        return Decoded::NotUdp;
    }
    let flags_fragment: u16 = u16::from_be_bytes([header[6], header[7]]);
    let more_fragments: bool = flags_fragment & 0x2000 != 0;
    let fragment_offset: u16 = flags_fragment & 0x1fff;
    if fragment_offset != 0 {
        // The UDP header is in the first fragment only; this one is just data.
        return Decoded::NotUdp;
    }
    if more_fragments {
        return Decoded::Invalid("fragmented IPv4 UDP datagram (reassembly is not supported)");
    }
    let header_len: usize = usize::from(header[0] & 0x0f) * 4;
    let total_len: usize = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if header_len < 20 || total_len < header_len {
        return Decoded::Invalid("IPv4 header length fields are inconsistent");
    }
    let available: usize = frame.len() - offset;
    if total_len > available {
        return Decoded::Invalid("packet was truncated (IPv4 total length exceeds captured data)");
    }
    let src: Ipv4Addr = Ipv4Addr::new(header[12], header[13], header[14], header[15]);
    let dst: Ipv4Addr = Ipv4Addr::new(header[16], header[17], header[18], header[19]);
    // Bytes past the total length are link-layer padding or trailers, not part of the packet.
    let packet: Range<usize> = offset + header_len..offset + total_len;
    decode_udp(frame, packet, IpAddr::V4(src), IpAddr::V4(dst))
}

fn decode_ipv6(frame: &[u8], offset: usize) -> Decoded {
    let Some(header) = frame.get(offset..offset + 40) else {
        return Decoded::NotUdp;
    };
    if header[0] >> 4 != 6 {
        return Decoded::NotUdp;
    }
    let payload_len: usize = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let src: Ipv6Addr = ipv6_addr(&header[8..24]);
    let dst: Ipv6Addr = ipv6_addr(&header[24..40]);
    let start: usize = offset + 40;
    // A zero payload length means a jumbogram (RFC 2675), whose length is in a hop-by-hop
    // option; walk the headers anyway to tell whether it would have been UDP.
    let end: usize = if payload_len == 0 {
        frame.len()
    } else {
        start + payload_len
    };
    let udp_start: usize = match skip_ipv6_extensions(frame, header[6], start, end) {
        Ok(Some(udp_start)) => udp_start,
        Ok(None) => return Decoded::NotUdp,
        Err(reason) => return Decoded::Invalid(reason),
    };
    if payload_len == 0 {
        return Decoded::Invalid("IPv6 jumbograms are not supported");
    }
    if end > frame.len() {
        return Decoded::Invalid(
            "packet was truncated (IPv6 payload length exceeds captured data)",
        );
    }
    decode_udp(frame, udp_start..end, IpAddr::V6(src), IpAddr::V6(dst))
}

fn ipv6_addr(bytes: &[u8]) -> Ipv6Addr {
    let mut octets: [u8; 16] = [0; 16];
    octets.copy_from_slice(bytes);
    Ipv6Addr::from(octets)
}

/// Walks the IPv6 extension header chain starting at `offset`. Returns where the UDP header
/// starts, `None` if the packet is not UDP, or a reason the packet cannot be delivered.
fn skip_ipv6_extensions(
    frame: &[u8],
    first_next_header: u8,
    mut offset: usize,
    end: usize,
) -> Result<Option<usize>, &'static str> {
    let mut next_header: u8 = first_next_header;
    // Each header is at least 8 bytes long and lies within the captured frame, so the loop
    // ends; no extra iteration bound is needed.
    loop {
        let header_len: usize = match next_header {
            IPPROTO_UDP => return Ok(Some(offset)),
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => match frame.get(offset + 1) {
                Some(len) => (usize::from(*len) + 1) * 8,
                None => return Err("packet was truncated (in an IPv6 extension header)"),
            },
            IPPROTO_AH => match frame.get(offset + 1) {
                Some(len) => (usize::from(*len) + 2) * 4,
                None => return Err("packet was truncated (in an IPv6 extension header)"),
            },
            IPPROTO_FRAGMENT => {
                check_atomic_fragment(frame, offset)?;
                8
            }
            _ => return Ok(None),
        };
        let Some(&following) = frame.get(offset) else {
            return Err("packet was truncated (in an IPv6 extension header)");
        };
        if offset + header_len > end.min(frame.len()) {
            return Err("IPv6 extension header extends beyond the packet");
        }
        next_header = following;
        offset += header_len;
    }
}

/// A Fragment header with offset 0 and no more fragments wraps a whole datagram (RFC 6946);
/// any other means the datagram is split, which is not reassembled.
fn check_atomic_fragment(frame: &[u8], offset: usize) -> Result<(), &'static str> {
    match be16(frame, offset + 2) {
        Some(0) => Ok(()),
        Some(_) => Err("fragmented IPv6 datagram (reassembly is not supported)"),
        None => Err("packet was truncated (in an IPv6 fragment header)"),
    }
}

/// Decodes the UDP header at the start of `packet`, whose end is the IP-level end of packet.
fn decode_udp(frame: &[u8], packet: Range<usize>, src: IpAddr, dst: IpAddr) -> Decoded {
    let Some(header) = frame.get(packet.start..packet.start + UDP_HEADER_LEN) else {
        return Decoded::Invalid("packet was truncated (in the UDP header)");
    };
    if packet.end < packet.start + UDP_HEADER_LEN {
        return Decoded::Invalid("IP packet too short for a UDP header");
    }
    let udp_len: usize = usize::from(u16::from_be_bytes([header[4], header[5]]));
    if udp_len < UDP_HEADER_LEN || packet.start + udp_len > packet.end {
        return Decoded::Invalid("UDP length header is invalid");
    }
    Decoded::Udp(UdpDatagram {
        src,
        dst,
        src_port: u16::from_be_bytes([header[0], header[1]]),
        dst_port: u16::from_be_bytes([header[2], header[3]]),
        payload: packet.start + UDP_HEADER_LEN..packet.start + udp_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recv::pcap::testutil::{
        ethernet, ipv4_udp, ipv6_udp, vlan_ethernet, UdpSpec, ETHERTYPE_IPV4 as ET4,
        ETHERTYPE_IPV6 as ET6,
    };

    fn payload_of(link: LinkType, frame: &[u8]) -> Vec<u8> {
        match decode(link, frame) {
            Decoded::Udp(datagram) => frame[datagram.payload].to_vec(),
            other => panic!("expected UDP, got {other:?}"),
        }
    }

    #[test]
    fn ethernet_ipv4_udp_fields() {
        let spec: UdpSpec = UdpSpec::v4([10, 0, 0, 1], [10, 0, 0, 2], 1234, 7148);
        let frame: Vec<u8> = ethernet(ET4, &ipv4_udp(&spec, b"hello"));
        let Decoded::Udp(datagram) = decode(LinkType::ETHERNET, &frame) else {
            panic!("not UDP");
        };
        assert_eq!(datagram.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(datagram.dst, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!((datagram.src_port, datagram.dst_port), (1234, 7148));
        assert_eq!(&frame[datagram.payload], b"hello");
    }

    #[test]
    fn ethernet_ipv6_udp_fields() {
        let spec: UdpSpec = UdpSpec::v6("fe80::1", "ff02::2", 5, 6);
        let frame: Vec<u8> = ethernet(ET6, &ipv6_udp(&spec, b"v6 payload", &[]));
        let Decoded::Udp(datagram) = decode(LinkType::ETHERNET, &frame) else {
            panic!("not UDP");
        };
        assert_eq!(datagram.src, "fe80::1".parse::<IpAddr>().unwrap());
        assert_eq!(datagram.dst, "ff02::2".parse::<IpAddr>().unwrap());
        assert_eq!((datagram.src_port, datagram.dst_port), (5, 6));
        assert_eq!(&frame[datagram.payload], b"v6 payload");
    }

    #[test]
    fn vlan_tags_are_skipped() {
        let spec: UdpSpec = UdpSpec::v4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2);
        let ip: Vec<u8> = ipv4_udp(&spec, b"tagged");
        let single: Vec<u8> = vlan_ethernet(&[0x8100], ET4, &ip);
        let double: Vec<u8> = vlan_ethernet(&[0x88a8, 0x8100], ET4, &ip);
        assert_eq!(payload_of(LinkType::ETHERNET, &single), b"tagged");
        assert_eq!(payload_of(LinkType::ETHERNET, &double), b"tagged");
        let too_many: Vec<u8> = vlan_ethernet(&[0x8100; MAX_VLAN_TAGS + 1], ET4, &ip);
        assert_eq!(decode(LinkType::ETHERNET, &too_many), Decoded::NotUdp);
    }

    #[test]
    fn raw_ip_link_types() {
        let v4: Vec<u8> = ipv4_udp(&UdpSpec::v4([1, 1, 1, 1], [2, 2, 2, 2], 1, 2), b"four");
        let v6: Vec<u8> = ipv6_udp(&UdpSpec::v6("::1", "::2", 1, 2), b"six", &[]);
        assert_eq!(payload_of(LinkType::RAW, &v4), b"four");
        assert_eq!(payload_of(LinkType::RAW, &v6), b"six");
        assert_eq!(payload_of(LinkType::IPV4, &v4), b"four");
        assert_eq!(payload_of(LinkType::IPV6, &v6), b"six");
        assert_eq!(decode(LinkType::IPV4, &v6), Decoded::NotUdp);
        assert_eq!(decode(LinkType::IPV6, &v4), Decoded::NotUdp);
    }

    #[test]
    fn linux_cooked_and_loopback() {
        let v4: Vec<u8> = ipv4_udp(&UdpSpec::v4([1, 1, 1, 1], [2, 2, 2, 2], 1, 2), b"sll");
        let mut sll: Vec<u8> = vec![0, 0, 0, 1, 0, 6, 2, 2, 2, 2, 2, 2, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&v4);
        assert_eq!(payload_of(LinkType::LINUX_SLL, &sll), b"sll");
        let mut sll2: Vec<u8> = vec![0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6];
        sll2.extend_from_slice(&[2; 8]);
        sll2.extend_from_slice(&v4);
        assert_eq!(payload_of(LinkType::LINUX_SLL2, &sll2), b"sll");
        for family in [[2, 0, 0, 0], [0, 0, 0, 2]] {
            let mut null: Vec<u8> = family.to_vec();
            null.extend_from_slice(&v4);
            assert_eq!(payload_of(LinkType::NULL, &null), b"sll");
        }
    }

    #[test]
    fn ipv4_options_and_padding() {
        let spec: UdpSpec = UdpSpec {
            ipv4_options: vec![1, 1, 1, 0, 1, 1, 1, 0],
            ..UdpSpec::v4([1, 1, 1, 1], [2, 2, 2, 2], 1, 2)
        };
        let mut frame: Vec<u8> = ethernet(ET4, &ipv4_udp(&spec, b"opts"));
        // Ethernet minimum-size padding and an FCS must not end up in the payload.
        frame.extend_from_slice(&[0xee; 20]);
        assert_eq!(payload_of(LinkType::ETHERNET, &frame), b"opts");
    }

    #[test]
    fn udp_length_bounds_payload() {
        let spec: UdpSpec = UdpSpec {
            udp_len_adjust: -2,
            ..UdpSpec::v4([1, 1, 1, 1], [2, 2, 2, 2], 1, 2)
        };
        let frame: Vec<u8> = ipv4_udp(&spec, b"abcdef");
        assert_eq!(payload_of(LinkType::RAW, &frame), b"abcd");
    }

    #[test]
    fn inconsistent_lengths_are_invalid() {
        let longer: UdpSpec = UdpSpec {
            udp_len_adjust: 1,
            ..UdpSpec::v4([1, 1, 1, 1], [2, 2, 2, 2], 1, 2)
        };
        assert!(matches!(
            decode(LinkType::RAW, &ipv4_udp(&longer, b"abc")),
            Decoded::Invalid(_)
        ));
        let short: UdpSpec = UdpSpec {
            udp_len_adjust: -12,
            ..UdpSpec::v4([1, 1, 1, 1], [2, 2, 2, 2], 1, 2)
        };
        assert!(matches!(
            decode(LinkType::RAW, &ipv4_udp(&short, b"abcdef")),
            Decoded::Invalid(_)
        ));
    }

    #[test]
    fn truncated_capture_is_invalid_at_every_length() {
        let v4: Vec<u8> = ethernet(
            ET4,
            &ipv4_udp(&UdpSpec::v4([1, 1, 1, 1], [2, 2, 2, 2], 1, 2), b"xyz"),
        );
        let v6: Vec<u8> = ethernet(
            ET6,
            &ipv6_udp(&UdpSpec::v6("::1", "::2", 1, 2), b"xyz", &[]),
        );
        for frame in [v4, v6] {
            for len in 0..frame.len() {
                let result: Decoded = decode(LinkType::ETHERNET, &frame[..len]);
                assert!(!matches!(result, Decoded::Udp(_)), "len {len}: {result:?}");
            }
            assert!(matches!(
                decode(LinkType::ETHERNET, &frame),
                Decoded::Udp(_)
            ));
        }
    }

    #[test]
    fn ipv4_fragments() {
        let spec: UdpSpec = UdpSpec::v4([1, 1, 1, 1], [2, 2, 2, 2], 1, 2);
        let mut first: Vec<u8> = ipv4_udp(&spec, b"data");
        first[6] = 0x20; // More Fragments, offset 0
        assert!(matches!(decode(LinkType::RAW, &first), Decoded::Invalid(_)));
        let mut later: Vec<u8> = ipv4_udp(&spec, b"data");
        later[7] = 0x10; // offset 16 * 8 bytes, last fragment
        assert_eq!(decode(LinkType::RAW, &later), Decoded::NotUdp);
        let mut dont_fragment: Vec<u8> = ipv4_udp(&spec, b"data");
        dont_fragment[6] = 0x40;
        assert_eq!(payload_of(LinkType::RAW, &dont_fragment), b"data");
    }

    #[test]
    fn ipv6_extension_headers() {
        let spec: UdpSpec = UdpSpec::v6("::1", "::2", 1, 2);
        // Hop-by-hop (8 bytes), routing (16 bytes), destination options (8 bytes).
        let chain: Vec<(u8, Vec<u8>)> = vec![
            (IPPROTO_HOPOPTS, vec![0; 6]),
            (IPPROTO_ROUTING, vec![0; 14]),
            (IPPROTO_DSTOPTS, vec![0; 6]),
        ];
        let frame: Vec<u8> = ipv6_udp(&spec, b"ext", &chain);
        assert_eq!(payload_of(LinkType::IPV6, &frame), b"ext");
        let atomic: Vec<(u8, Vec<u8>)> = vec![(IPPROTO_FRAGMENT, vec![0; 6])];
        assert_eq!(
            payload_of(LinkType::IPV6, &ipv6_udp(&spec, b"a", &atomic)),
            b"a"
        );
        let fragment: Vec<(u8, Vec<u8>)> = vec![(IPPROTO_FRAGMENT, vec![0, 1, 0, 0, 0, 7])];
        assert!(matches!(
            decode(LinkType::IPV6, &ipv6_udp(&spec, b"a", &fragment)),
            Decoded::Invalid(_)
        ));
    }

    #[test]
    fn non_udp_is_skipped() {
        let spec: UdpSpec = UdpSpec::v4([1, 1, 1, 1], [2, 2, 2, 2], 1, 2);
        let mut tcp: Vec<u8> = ipv4_udp(&spec, b"data");
        tcp[9] = 6;
        assert_eq!(decode(LinkType::RAW, &tcp), Decoded::NotUdp);
        let arp: Vec<u8> = ethernet(0x0806, &[0; 28]);
        assert_eq!(decode(LinkType::ETHERNET, &arp), Decoded::NotUdp);
        let v6_tcp: Vec<(u8, Vec<u8>)> = vec![(IPPROTO_HOPOPTS, vec![0; 6])];
        let mut frame: Vec<u8> = ipv6_udp(&UdpSpec::v6("::1", "::2", 1, 2), b"x", &v6_tcp);
        frame[40] = 6; // the hop-by-hop header now says TCP follows
        assert_eq!(decode(LinkType::IPV6, &frame), Decoded::NotUdp);
        assert_eq!(decode(LinkType(147), &frame), Decoded::NotUdp);
    }
}
