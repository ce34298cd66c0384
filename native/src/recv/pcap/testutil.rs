//! Test-only builders of frames and capture files, so tests need no external tools.

use std::net::IpAddr;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// Addresses, ports and deliberate defects of a UDP datagram to build.
#[derive(Clone, Debug)]
pub struct UdpSpec {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    /// Raw IPv4 options (a multiple of 4 bytes).
    pub ipv4_options: Vec<u8>,
    /// Added to the true UDP length when writing the UDP length field.
    pub udp_len_adjust: i32,
}

impl UdpSpec {
    pub fn v4(src: [u8; 4], dst: [u8; 4], src_port: u16, dst_port: u16) -> UdpSpec {
        UdpSpec {
            src: IpAddr::from(src),
            dst: IpAddr::from(dst),
            src_port,
            dst_port,
            ipv4_options: Vec::new(),
            udp_len_adjust: 0,
        }
    }

    pub fn v6(src: &str, dst: &str, src_port: u16, dst_port: u16) -> UdpSpec {
        UdpSpec {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            ..UdpSpec::v4([0; 4], [0; 4], src_port, dst_port)
        }
    }
}

fn udp(spec: &UdpSpec, payload: &[u8]) -> Vec<u8> {
    let true_len: i32 = 8 + payload.len() as i32;
    let field: u16 = (true_len + spec.udp_len_adjust) as u16;
    let mut out: Vec<u8> = Vec::new();
    out.extend_from_slice(&spec.src_port.to_be_bytes());
    out.extend_from_slice(&spec.dst_port.to_be_bytes());
    out.extend_from_slice(&field.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
    out
}

/// An IPv4 packet carrying a UDP datagram.
pub fn ipv4_udp(spec: &UdpSpec, payload: &[u8]) -> Vec<u8> {
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (spec.src, spec.dst) else {
        panic!("IPv4 addresses required");
    };
    let datagram: Vec<u8> = udp(spec, payload);
    let header_len: usize = 20 + spec.ipv4_options.len();
    let total: u16 = (header_len + datagram.len()) as u16;
    let mut out: Vec<u8> = vec![0x40 | (header_len / 4) as u8, 0];
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&dst.octets());
    out.extend_from_slice(&spec.ipv4_options);
    out.extend_from_slice(&datagram);
    out
}

/// An IPv6 packet carrying a UDP datagram after the given extension headers, each given as
/// (its protocol number, its bytes after the next-header and length octets).
pub fn ipv6_udp(spec: &UdpSpec, payload: &[u8], extensions: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let (IpAddr::V6(src), IpAddr::V6(dst)) = (spec.src, spec.dst) else {
        panic!("IPv6 addresses required");
    };
    let mut body: Vec<u8> = Vec::new();
    for (index, (_, rest)) in extensions.iter().enumerate() {
        let next: u8 = extensions
            .get(index + 1)
            .map_or(17, |ext: &(u8, Vec<u8>)| ext.0);
        let total: usize = 2 + rest.len();
        assert_eq!(total % 8, 0, "extension headers are multiples of 8 bytes");
        body.push(next);
        body.push((total / 8 - 1) as u8);
        body.extend_from_slice(rest);
    }
    body.extend_from_slice(&udp(spec, payload));
    let first: u8 = extensions.first().map_or(17, |ext: &(u8, Vec<u8>)| ext.0);
    let mut out: Vec<u8> = vec![0x60, 0, 0, 0];
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&[first, 64]);
    out.extend_from_slice(&src.octets());
    out.extend_from_slice(&dst.octets());
    out.extend_from_slice(&body);
    out
}

/// An Ethernet II frame.
pub fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    vlan_ethernet(&[], ethertype, payload)
}

/// An Ethernet frame with the given VLAN tag protocol identifiers, outermost first.
pub fn vlan_ethernet(tags: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = vec![0x02; 6];
    out.extend_from_slice(&[0x04; 6]);
    for (index, tpid) in tags.iter().enumerate() {
        out.extend_from_slice(&tpid.to_be_bytes());
        out.extend_from_slice(&(100 + index as u16).to_be_bytes());
    }
    out.extend_from_slice(&ethertype.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Writes integers in a chosen byte order.
#[derive(Clone, Copy, Debug)]
pub struct Endian {
    pub big: bool,
}

impl Endian {
    pub fn u16(self, out: &mut Vec<u8>, value: u16) {
        let bytes: [u8; 2] = if self.big {
            value.to_be_bytes()
        } else {
            value.to_le_bytes()
        };
        out.extend_from_slice(&bytes);
    }

    pub fn u32(self, out: &mut Vec<u8>, value: u32) {
        let bytes: [u8; 4] = if self.big {
            value.to_be_bytes()
        } else {
            value.to_le_bytes()
        };
        out.extend_from_slice(&bytes);
    }
}

/// A classic pcap file header.
pub fn pcap_header(endian: Endian, nanos: bool, link: u32) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::new();
    endian.u32(&mut out, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 });
    endian.u16(&mut out, 2);
    endian.u16(&mut out, 4);
    endian.u32(&mut out, 0);
    endian.u32(&mut out, 0);
    endian.u32(&mut out, 262_144);
    endian.u32(&mut out, link);
    out
}

/// Appends a classic pcap record holding the first `caplen` bytes of `frame`.
pub fn pcap_record(out: &mut Vec<u8>, endian: Endian, frame: &[u8], caplen: usize) {
    endian.u32(out, 1_700_000_000);
    endian.u32(out, 123);
    endian.u32(out, caplen as u32);
    endian.u32(out, frame.len() as u32);
    out.extend_from_slice(&frame[..caplen]);
}

/// A whole classic pcap file of untruncated frames.
pub fn pcap_file(endian: Endian, nanos: bool, link: u32, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out: Vec<u8> = pcap_header(endian, nanos, link);
    for frame in frames {
        pcap_record(&mut out, endian, frame, frame.len());
    }
    out
}

/// Builds a pcapng file block by block.
pub struct NgWriter {
    pub endian: Endian,
    pub out: Vec<u8>,
}

impl NgWriter {
    /// Starts a file with a Section Header Block.
    pub fn new(endian: Endian) -> NgWriter {
        let mut writer: NgWriter = NgWriter {
            endian,
            out: Vec::new(),
        };
        writer.section(endian);
        writer
    }

    /// Starts a new section (possibly in another byte order) with an option.
    pub fn section(&mut self, endian: Endian) {
        self.endian = endian;
        let mut body: Vec<u8> = Vec::new();
        endian.u32(&mut body, 0x1a2b_3c4d);
        endian.u16(&mut body, 1);
        endian.u16(&mut body, 0);
        body.extend_from_slice(&[0xff; 8]); // section length unknown
        self.push_option(&mut body, 4, b"test writer"); // shb_userappl
        self.push_option(&mut body, 0, b""); // opt_endofopt
        self.block(0x0a0d_0d0a, &body);
    }

    fn push_option(&self, body: &mut Vec<u8>, code: u16, value: &[u8]) {
        self.endian.u16(body, code);
        self.endian.u16(body, value.len() as u16);
        body.extend_from_slice(value);
        body.resize(body.len().next_multiple_of(4), 0);
    }

    /// Appends a block with the given type and body (padded to 4 bytes here).
    pub fn block(&mut self, block_type: u32, body: &[u8]) {
        let padded: usize = body.len().next_multiple_of(4);
        let total: u32 = (padded + 12) as u32;
        let endian: Endian = self.endian;
        endian.u32(&mut self.out, block_type);
        endian.u32(&mut self.out, total);
        self.out.extend_from_slice(body);
        self.out.resize(self.out.len() + padded - body.len(), 0);
        endian.u32(&mut self.out, total);
    }

    /// An Interface Description Block with an if_name option.
    pub fn interface(&mut self, link: u16) {
        let mut body: Vec<u8> = Vec::new();
        self.endian.u16(&mut body, link);
        self.endian.u16(&mut body, 0);
        self.endian.u32(&mut body, 262_144);
        self.push_option(&mut body, 2, b"eth0");
        self.push_option(&mut body, 0, b"");
        self.block(1, &body);
    }

    /// An Enhanced Packet Block holding the first `caplen` bytes of `frame`, with a comment.
    pub fn enhanced(&mut self, interface: u32, frame: &[u8], caplen: usize) {
        let mut body: Vec<u8> = Vec::new();
        for value in [interface, 0x0006_0000, 0x1234_5678, caplen as u32] {
            self.endian.u32(&mut body, value);
        }
        self.endian.u32(&mut body, frame.len() as u32);
        body.extend_from_slice(&frame[..caplen]);
        body.resize(body.len().next_multiple_of(4), 0);
        self.push_option(&mut body, 1, b"a comment");
        self.push_option(&mut body, 0, b"");
        self.block(6, &body);
    }

    /// A Simple Packet Block.
    pub fn simple(&mut self, frame: &[u8]) {
        let mut body: Vec<u8> = Vec::new();
        self.endian.u32(&mut body, frame.len() as u32);
        body.extend_from_slice(frame);
        self.block(3, &body);
    }

    /// An obsolete Packet Block (type 2).
    pub fn obsolete(&mut self, interface: u16, frame: &[u8]) {
        let mut body: Vec<u8> = Vec::new();
        self.endian.u16(&mut body, interface);
        self.endian.u16(&mut body, 0);
        for value in [0, 0, frame.len() as u32, frame.len() as u32] {
            self.endian.u32(&mut body, value);
        }
        body.extend_from_slice(frame);
        self.block(2, &body);
    }
}

/// A small deterministic generator (xorshift64*) for fuzz-style tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}
