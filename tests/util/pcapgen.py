"""Write pcap and pcapng capture files from UDP datagrams, in pure Python.

Tests record the UDP datagrams a peer sends (on plain sockets) and turn them into captures, so
that a pcap reader can be fed real traffic. Every frame carries IPv4 or IPv6 and UDP, with correct
lengths and checksums, so a strict parser (libpcap's or ours) accepts it.
Formats written:

- classic pcap, little- or big-endian, with microsecond or nanosecond timestamps;
- pcapng with a section header, one interface and enhanced packet blocks.

Frames are Ethernet II by default, or Linux "cooked" (SLL, what ``tcpdump -i any`` writes);
those are the two link types the real spead2 4.5.1 reads.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL = 113
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
IPPROTO_TCP = 6
IPPROTO_UDP = 17
DEFAULT_SNAPLEN = 262144

PCAP_MAGIC_USEC = 0xA1B2C3D4
PCAP_MAGIC_NSEC = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_IDB = 0x00000001
PCAPNG_EPB = 0x00000006
PCAPNG_BYTE_ORDER_MAGIC = 0x1A2B3C4D
PCAPNG_OPT_IF_TSRESOL = 9

SLL_OUTGOING = 4
ARPHRD_LOOPBACK = 772
SRC_MAC = bytes.fromhex("020000000001")
DST_MAC = bytes.fromhex("020000000002")


@dataclass(frozen=True)
class Datagram:
    """One UDP datagram as seen on the wire (addresses are IPv4 or IPv6 literals)."""

    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes
    timestamp: float = 0.0


@dataclass(frozen=True)
class Frame:
    """One captured link-layer frame with its capture timestamp (seconds since the epoch)."""

    data: bytes
    timestamp: float = 0.0


def _checksum(data: bytes) -> int:
    """Internet (ones' complement) checksum of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _udp_segment(pseudo_header: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    length = 8 + len(payload)
    header = struct.pack("!HHHH", sport, dport, length, 0)
    csum = _checksum(pseudo_header + header + payload)
    # A computed checksum of zero is sent as 0xFFFF (zero means "no checksum" in IPv4).
    return struct.pack("!HHHH", sport, dport, length, csum or 0xFFFF) + payload


def ipv4_packet(src: str, dst: str, protocol: int, body: bytes, *, ident: int = 0) -> bytes:
    """An IPv4 packet (20-byte header, DF set, TTL 64) carrying ``body``."""
    total = 20 + len(body)
    if total > 0xFFFF:
        raise ValueError(f"IPv4 packet too large: {total} bytes")
    src_b = ipaddress.IPv4Address(src).packed
    dst_b = ipaddress.IPv4Address(dst).packed
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, total, ident & 0xFFFF, 0x4000, 64, protocol, 0, src_b, dst_b
    )
    csum = _checksum(header)
    return header[:10] + struct.pack("!H", csum) + header[12:] + body


def ipv6_packet(src: str, dst: str, next_header: int, body: bytes) -> bytes:
    """An IPv6 packet (no extension headers, hop limit 64) carrying ``body``."""
    if len(body) > 0xFFFF:
        raise ValueError(f"IPv6 payload too large: {len(body)} bytes")
    src_b = ipaddress.IPv6Address(src).packed
    dst_b = ipaddress.IPv6Address(dst).packed
    return struct.pack("!IHBB16s16s", 6 << 28, len(body), next_header, 64, src_b, dst_b) + body


def udp_ip_packet(d: Datagram, *, ident: int = 0) -> tuple[int, bytes]:
    """The IP packet for a datagram, and the matching ethertype."""
    src_ip = ipaddress.ip_address(d.src[0])
    dst_ip = ipaddress.ip_address(d.dst[0])
    if src_ip.version != dst_ip.version:
        raise ValueError("source and destination must both be IPv4 or both IPv6")
    udp_len = 8 + len(d.payload)
    if src_ip.version == 4:
        pseudo = struct.pack("!4s4sBBH", src_ip.packed, dst_ip.packed, 0, IPPROTO_UDP, udp_len)
        segment = _udp_segment(pseudo, d.src[1], d.dst[1], d.payload)
        return ETHERTYPE_IPV4, ipv4_packet(d.src[0], d.dst[0], IPPROTO_UDP, segment, ident=ident)
    pseudo = struct.pack("!16s16sI3xB", src_ip.packed, dst_ip.packed, udp_len, IPPROTO_UDP)
    segment = _udp_segment(pseudo, d.src[1], d.dst[1], d.payload)
    return ETHERTYPE_IPV6, ipv6_packet(d.src[0], d.dst[0], IPPROTO_UDP, segment)


def ethernet_frame(ethertype: int, packet: bytes) -> bytes:
    """Wrap a network-layer packet in an Ethernet II header."""
    return DST_MAC + SRC_MAC + struct.pack("!H", ethertype) + packet


def sll_frame(ethertype: int, packet: bytes) -> bytes:
    """Wrap a network-layer packet in a Linux cooked-capture (SLL v1) header."""
    address = SRC_MAC + b"\0\0"  # 8-byte address field, 6 bytes used
    return (
        struct.pack("!HHH", SLL_OUTGOING, ARPHRD_LOOPBACK, 6)
        + address
        + struct.pack("!H", ethertype)
        + packet
    )


def link_frame(ethertype: int, packet: bytes, linktype: int) -> bytes:
    """Wrap a network-layer packet for ``linktype`` (Ethernet or Linux SLL)."""
    if linktype == LINKTYPE_ETHERNET:
        return ethernet_frame(ethertype, packet)
    if linktype == LINKTYPE_LINUX_SLL:
        return sll_frame(ethertype, packet)
    raise ValueError(f"unsupported link type {linktype}")


def udp_frame(d: Datagram, *, ident: int = 0, linktype: int = LINKTYPE_ETHERNET) -> Frame:
    """The link-layer frame carrying a UDP datagram."""
    ethertype, packet = udp_ip_packet(d, ident=ident)
    return Frame(link_frame(ethertype, packet, linktype), d.timestamp)


def tcp_frame(
    src: tuple[str, int],
    dst: tuple[str, int],
    payload: bytes,
    timestamp: float = 0.0,
    linktype: int = LINKTYPE_ETHERNET,
) -> Frame:
    """An Ethernet/IPv4 frame with a TCP segment (PSH|ACK); a decoy for ``udp`` filters."""
    header = struct.pack("!HHIIBBHHH", src[1], dst[1], 1, 1, 5 << 4, 0x18, 65535, 0, 0)
    pseudo = struct.pack(
        "!4s4sBBH",
        ipaddress.IPv4Address(src[0]).packed,
        ipaddress.IPv4Address(dst[0]).packed,
        0,
        IPPROTO_TCP,
        len(header) + len(payload),
    )
    csum = _checksum(pseudo + header + payload)
    segment = header[:16] + struct.pack("!H", csum) + header[18:] + payload
    packet = ipv4_packet(src[0], dst[0], IPPROTO_TCP, segment)
    return Frame(link_frame(ETHERTYPE_IPV4, packet, linktype), timestamp)


def frames_from_datagrams(
    datagrams: Iterable[Datagram], linktype: int = LINKTYPE_ETHERNET
) -> list[Frame]:
    """Frames for datagrams, with distinct IPv4 identification fields."""
    return [udp_frame(d, ident=i, linktype=linktype) for i, d in enumerate(datagrams)]


def _split_time(timestamp: float, units_per_second: int) -> tuple[int, int]:
    whole = int(timestamp)
    frac = round((timestamp - whole) * units_per_second)
    if frac >= units_per_second:
        whole, frac = whole + 1, frac - units_per_second
    return whole, frac


def pcap_bytes(
    frames: Sequence[Frame],
    *,
    nanosecond: bool = False,
    big_endian: bool = False,
    snaplen: int = DEFAULT_SNAPLEN,
    linktype: int = LINKTYPE_ETHERNET,
) -> bytes:
    """A classic pcap file holding ``frames`` of the given link type."""
    order = ">" if big_endian else "<"
    magic = PCAP_MAGIC_NSEC if nanosecond else PCAP_MAGIC_USEC
    units = 1_000_000_000 if nanosecond else 1_000_000
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for frame in frames:
        if len(frame.data) > snaplen:
            raise ValueError("frame longer than snaplen")
        sec, frac = _split_time(frame.timestamp, units)
        out.append(struct.pack(order + "IIII", sec, frac, len(frame.data), len(frame.data)))
        out.append(frame.data)
    return b"".join(out)


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _pcapng_block(block_type: int, body: bytes) -> bytes:
    body = _pad4(body)
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


def _pcapng_option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + _pad4(value)


def pcapng_bytes(
    frames: Sequence[Frame], *, snaplen: int = DEFAULT_SNAPLEN, linktype: int = LINKTYPE_ETHERNET
) -> bytes:
    """A little-endian pcapng file: one section, one interface (nanosecond clock)."""
    shb = _pcapng_block(PCAPNG_SHB, struct.pack("<IHHq", PCAPNG_BYTE_ORDER_MAGIC, 1, 0, -1))
    # if_tsresol = 9: timestamps count nanoseconds; options end with opt_endofopt (code 0).
    options = _pcapng_option(PCAPNG_OPT_IF_TSRESOL, bytes([9])) + struct.pack("<HH", 0, 0)
    idb = _pcapng_block(PCAPNG_IDB, struct.pack("<HHI", linktype, 0, snaplen) + options)
    blocks = [shb, idb]
    for frame in frames:
        if len(frame.data) > snaplen:
            raise ValueError("frame longer than snaplen")
        ts = round(frame.timestamp * 1_000_000_000)
        header = struct.pack(
            "<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(frame.data), len(frame.data)
        )
        blocks.append(_pcapng_block(PCAPNG_EPB, header + _pad4(frame.data)))
    return b"".join(blocks)


def write_pcap(path: Path, frames: Sequence[Frame], **kwargs: bool | int) -> Path:
    """Write a classic pcap file (see :func:`pcap_bytes` for options); returns ``path``."""
    path.write_bytes(pcap_bytes(frames, **kwargs))  # type: ignore[arg-type]
    return path


def write_pcapng(path: Path, frames: Sequence[Frame], **kwargs: int) -> Path:
    """Write a pcapng file (see :func:`pcapng_bytes` for options); returns ``path``."""
    path.write_bytes(pcapng_bytes(frames, **kwargs))
    return path
