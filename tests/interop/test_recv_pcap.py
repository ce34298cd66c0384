"""Interop: real spead2 UDP traffic, captured to pcap/pcapng files, read back by our spead2.

The peer sends the ``full`` catalogue to one recorder port and, at the same time, the ``small``
catalogue to another (a decoy flow), so the two interleave. The recorded datagrams become
IPv4/UDP frames (Ethernet, or Linux SLL as ``tcpdump -i any`` writes). The capture also holds
frames the reader must never use, even though ``udp and dst port N`` matches them or no filter
is given: the decoy flow repeated over IPv6 to the main port (the real spead2 reads IPv4 only)
and TCP segments to the main port.

Every expectation is checked against the real spead2 reading the same file
(``test_peer_*``), then against ours.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from util import pcapgen
from util.capture import UdpRecorder
from util.ours import import_ours
from util.peer import Peer
from util.receive import receive
from util.reference import PeerReference

FLAVOURS = (40, 48)
MAIN_RATE = 50e6
DECOY_RATE = 2e6
"""Bytes/s; the small decoy flow is slow so that it interleaves with the whole main flow."""
PEER_TIMEOUT = 60.0
V6_SRC = ("::1", 40000)
TCP_SRC = ("127.0.0.1", 40001)
VARIANTS = ("pcap", "pcap-nsec-be", "pcapng", "pcap-sll")
REJECTED_FILTERS = ("udp and and", "bogus", "udp port 99999999", "tcp", "not udp", "ip6 and udp")
"""The real spead2 raises RuntimeError for these when the reader is added: libpcap cannot
compile the first three, and the rest reject every packet (spead2 reads only UDP over IPv4)."""
OUTSIDE_COMMON_SUBSET = ("ether host 01:02:03:04:05:06", "len > 5")
"""Valid libpcap filters beyond ``udp``/``ip``/port/host terms."""


@pytest.fixture
def spead2() -> ModuleType:
    """Our spead2 (never the peer's), with ``recv`` imported."""
    return import_ours("recv")


@dataclass(frozen=True)
class Capture:
    """Capture files of one recording, and the ports the two flows went to."""

    bits: int
    main_port: int
    decoy_port: int
    files: dict[str, Path]
    clean: Path
    """Main flow plus IPv6 and TCP decoys only: right even with an empty filter."""


def _record(peer: Peer, bits: int) -> tuple[list[pcapgen.Datagram], int, int]:
    """Both flows sent at once by two peer processes; datagrams in arrival order."""
    with UdpRecorder(count=2) as recorder, ExitStack() as running:
        main_port, decoy_port = recorder.ports
        flows = [("full", main_port, MAIN_RATE), ("small", decoy_port, DECOY_RATE)]
        senders = []
        for name, port, rate in flows:
            args = ["--transport", "udp", "--port", str(port), "--bits", str(bits)]
            args += ["--catalogue", name, "--rate", str(rate)]
            senders.append(running.enter_context(peer.start("send.py", *args)))
        for sender in senders:
            sender.finish(timeout=PEER_TIMEOUT)
        datagrams = recorder.stop()
    return datagrams, main_port, decoy_port


def _decoys(
    datagrams: list[pcapgen.Datagram], main_port: int, linktype: int
) -> list[pcapgen.Frame]:
    """IPv6 and TCP copies of the decoy flow, addressed to the main port."""
    frames = []
    for i, d in enumerate(datagrams):
        v6 = pcapgen.Datagram(V6_SRC, ("::1", main_port), d.payload, d.timestamp)
        frames.append(pcapgen.udp_frame(v6, linktype=linktype))
        if i % 3 == 0:
            dst = ("127.0.0.1", main_port)
            frames.append(pcapgen.tcp_frame(TCP_SRC, dst, d.payload, d.timestamp, linktype))
    return frames


def _interleave(a: list[pcapgen.Frame], b: list[pcapgen.Frame]) -> list[pcapgen.Frame]:
    """Merge two frame lists, alternating while both last (keeps each list's own order)."""
    merged: list[pcapgen.Frame] = []
    for i in range(max(len(a), len(b))):
        merged.extend(x[i] for x in (a, b) if i < len(x))
    return merged


def _build_capture(peer: Peer, bits: int, directory: Path) -> Capture:
    datagrams, main_port, decoy_port = _record(peer, bits)
    main = [d for d in datagrams if d.dst[1] == main_port]
    decoy = [d for d in datagrams if d.dst[1] == decoy_port]
    assert main and decoy, "the recorder caught nothing"

    def frames(recorded: list[pcapgen.Datagram], linktype: int) -> list[pcapgen.Frame]:
        ipv4 = pcapgen.frames_from_datagrams(recorded, linktype)
        return _interleave(ipv4, _decoys(decoy, main_port, linktype))

    ether = frames(datagrams, pcapgen.LINKTYPE_ETHERNET)  # arrival order: flows interleaved
    sll = pcapgen.LINKTYPE_LINUX_SLL
    files = {
        "pcap": pcapgen.write_pcap(directory / f"{bits}.pcap", ether),
        "pcap-nsec-be": pcapgen.write_pcap(
            directory / f"{bits}-nsec-be.pcap", ether, nanosecond=True, big_endian=True
        ),
        "pcapng": pcapgen.write_pcapng(directory / f"{bits}.pcapng", ether),
        "pcap-sll": pcapgen.write_pcap(
            directory / f"{bits}-sll.pcap", frames(datagrams, sll), linktype=sll
        ),
    }
    clean_frames = frames(main, pcapgen.LINKTYPE_ETHERNET)
    clean = pcapgen.write_pcapng(directory / f"{bits}-clean.pcapng", clean_frames)
    return Capture(bits, main_port, decoy_port, files, clean)


@pytest.fixture(scope="module")
def captures(peer: Peer, tmp_path_factory: pytest.TempPathFactory) -> dict[int, Capture]:
    """One recording per flavour, written in every capture format."""
    directory = tmp_path_factory.mktemp("captures")
    return {bits: _build_capture(peer, bits, directory) for bits in FLAVOURS}


def dst_filter(port: int) -> str:
    return f"udp and dst port {port}"


def read_ours(spead2: ModuleType, catalogue: ModuleType, path: Path, pcap_filter: str) -> Any:
    """Our stream reading a capture; returns a ``catalogue.Received`` with stats."""
    stream = spead2.recv.Stream(
        spead2.ThreadPool(),
        spead2.recv.StreamConfig(max_heaps=4),
        spead2.recv.RingStreamConfig(heaps=16),
    )
    stream.add_udp_pcap_file_reader(str(path), filter=pcap_filter)
    return receive(stream, spead2.ItemGroup(), catalogue)


def assert_same_as_peer(
    catalogue: ModuleType, received: Any, peer_received: Any, name: str, bits: int
) -> None:
    problems = catalogue.check_received(catalogue.build(name, bits), received)
    assert not problems, "\n".join(problems)
    for stat in ("heaps", "packets", "incomplete_heaps_evicted", "incomplete_heaps_flushed"):
        assert received.stats[stat] == peer_received.stats[stat], (
            f"{stat}: ours {received.stats} peer {peer_received.stats}"
        )


# ---------------------------------------------------------------------------------------------
# The real spead2 reading the captures: validates pcapgen, the recorder and the expectations.


@pytest.mark.parametrize("bits", FLAVOURS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_peer_reads_capture(
    captures: dict[int, Capture],
    peer_reference: PeerReference,
    catalogue: ModuleType,
    variant: str,
    bits: int,
) -> None:
    cap = captures[bits]
    received = peer_reference.receive_file("pcap", cap.files[variant], dst_filter(cap.main_port))
    assert not catalogue.check_received(catalogue.build("full", bits), received)
    # IPv6 and TCP frames to the same port are not packets: the count equals the byte stream's
    assert received.stats["packets"] == peer_reference.received("full", bits).stats["packets"]


@pytest.mark.parametrize("bits", FLAVOURS)
def test_peer_reads_decoy_flow_and_clean_capture(
    captures: dict[int, Capture], peer_reference: PeerReference, catalogue: ModuleType, bits: int
) -> None:
    cap = captures[bits]
    decoy = peer_reference.receive_file("pcap", cap.files["pcap"], dst_filter(cap.decoy_port))
    assert not catalogue.check_received(catalogue.build("small", bits), decoy)
    clean = peer_reference.receive_file("pcap", cap.clean, "")
    assert not catalogue.check_received(catalogue.build("full", bits), clean)


@pytest.mark.parametrize("bad_filter", REJECTED_FILTERS)
def test_peer_rejects_bad_filter(
    captures: dict[int, Capture], peer_reference: PeerReference, bad_filter: str
) -> None:
    error, _ = peer_reference.pcap_outcome(captures[40].files["pcap"], bad_filter)
    assert error == "RuntimeError"


def test_peer_rejects_missing_and_garbage_files(
    peer_reference: PeerReference, tmp_path: Path
) -> None:
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"this is not a capture file" * 4)
    for path in (tmp_path / "missing.pcap", garbage):
        assert peer_reference.pcap_outcome(path, "")[0] == "RuntimeError"


# ---------------------------------------------------------------------------------------------
# Ours reading the same captures (fail until the native core is built).


@pytest.mark.parametrize("bits", FLAVOURS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_pcap(
    spead2: ModuleType,
    captures: dict[int, Capture],
    peer_reference: PeerReference,
    catalogue: ModuleType,
    variant: str,
    bits: int,
) -> None:
    cap = captures[bits]
    path, pcap_filter = cap.files[variant], dst_filter(cap.main_port)
    received = read_ours(spead2, catalogue, path, pcap_filter)
    peer_received = peer_reference.receive_file("pcap", path, pcap_filter)
    assert_same_as_peer(catalogue, received, peer_received, "full", bits)


@pytest.mark.parametrize("bits", FLAVOURS)
def test_pcap_decoy_flow(
    spead2: ModuleType,
    captures: dict[int, Capture],
    peer_reference: PeerReference,
    catalogue: ModuleType,
    bits: int,
) -> None:
    """The filter picks the other flow out of the same file just as well."""
    cap = captures[bits]
    path, pcap_filter = cap.files["pcapng"], dst_filter(cap.decoy_port)
    received = read_ours(spead2, catalogue, path, pcap_filter)
    peer_received = peer_reference.receive_file("pcap", path, pcap_filter)
    assert_same_as_peer(catalogue, received, peer_received, "small", bits)


def test_pcap_without_filter_ignores_ipv6_and_tcp(
    spead2: ModuleType,
    captures: dict[int, Capture],
    peer_reference: PeerReference,
    catalogue: ModuleType,
) -> None:
    cap = captures[48]
    received = read_ours(spead2, catalogue, cap.clean, "")
    peer_received = peer_reference.receive_file("pcap", cap.clean, "")
    assert_same_as_peer(catalogue, received, peer_received, "full", 48)


@pytest.mark.parametrize("bad_filter", REJECTED_FILTERS)
def test_pcap_bad_filter_raises(
    spead2: ModuleType, captures: dict[int, Capture], bad_filter: str
) -> None:
    stream = spead2.recv.Stream(spead2.ThreadPool(), spead2.recv.StreamConfig())
    with pytest.raises(RuntimeError):
        stream.add_udp_pcap_file_reader(str(captures[40].files["pcap"]), filter=bad_filter)
    stream.stop()


@pytest.mark.parametrize("other_filter", OUTSIDE_COMMON_SUBSET)
def test_pcap_filter_outside_subset(
    spead2: ModuleType,
    captures: dict[int, Capture],
    peer_reference: PeerReference,
    catalogue: ModuleType,
    other_filter: str,
) -> None:
    """Either refused like a bad filter (RuntimeError, when the reader is added) or honoured
    exactly as libpcap does: never silently ignored or approximated."""
    path = captures[40].clean
    stream = spead2.recv.Stream(
        spead2.ThreadPool(),
        spead2.recv.StreamConfig(max_heaps=4),
        spead2.recv.RingStreamConfig(heaps=16),
    )
    try:
        stream.add_udp_pcap_file_reader(str(path), filter=other_filter)
    except RuntimeError:
        stream.stop()
        return
    received = receive(stream, spead2.ItemGroup(), catalogue)
    error, peer_received = peer_reference.pcap_outcome(path, other_filter)
    assert error is None
    assert [h.cnt for h in received.heaps] == [h.cnt for h in peer_received.heaps]
    assert received.stats["packets"] == peer_received.stats["packets"]


def test_pcap_missing_and_garbage_files_raise(spead2: ModuleType, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"this is not a capture file" * 4)
    for path in (tmp_path / "missing.pcap", garbage):
        stream = spead2.recv.Stream(spead2.ThreadPool(), spead2.recv.StreamConfig())
        with pytest.raises(RuntimeError):
            stream.add_udp_pcap_file_reader(str(path))
        stream.stop()


# ---------------------------------------------------------------------------------------------
# pcapgen itself: the peer ignores IPv6 frames, so check those (and IPv4) independently here.


def _ones_complement_sum(data: bytes) -> int:
    total = 0
    for i in range(0, len(data) - 1, 2):
        total += (data[i] << 8) | data[i + 1]
    if len(data) % 2:
        total += data[-1] << 8
    while total > 0xFFFF:
        total = (total >> 16) + (total & 0xFFFF)
    return total


@pytest.mark.parametrize(
    ("src", "dst"),
    [(("127.0.0.1", 5000), ("127.0.0.1", 7000)), (("::1", 5000), ("::2", 7001))],
)
@pytest.mark.parametrize("payload", [b"", b"\x53\x04\x02\x06odd", bytes(range(256)) * 7])
def test_pcapgen_frames_are_well_formed(
    src: tuple[str, int], dst: tuple[str, int], payload: bytes
) -> None:
    frame = pcapgen.udp_frame(pcapgen.Datagram(src, dst, payload)).data
    ethertype = int.from_bytes(frame[12:14], "big")
    packet = frame[14:]
    if ":" in src[0]:
        assert ethertype == 0x86DD and packet[0] >> 4 == 6
        assert int.from_bytes(packet[4:6], "big") == len(packet) - 40  # payload length
        assert packet[6] == 17  # next header: UDP
        addresses, segment = packet[8:40], packet[40:]
        pseudo = addresses + (len(segment)).to_bytes(4, "big") + b"\0\0\0\x11"
    else:
        assert ethertype == 0x0800 and packet[0] == 0x45
        assert int.from_bytes(packet[2:4], "big") == len(packet)
        assert packet[9] == 17
        assert _ones_complement_sum(packet[:20]) == 0xFFFF  # header checksum verifies
        addresses, segment = packet[12:20], packet[20:]
        pseudo = addresses + b"\0\x11" + len(segment).to_bytes(2, "big")
    assert int.from_bytes(segment[0:2], "big") == src[1]
    assert int.from_bytes(segment[2:4], "big") == dst[1]
    assert int.from_bytes(segment[4:6], "big") == len(segment) == 8 + len(payload)
    assert _ones_complement_sum(pseudo + segment) == 0xFFFF  # UDP checksum verifies
    assert segment[8:] == payload


def test_pcapgen_file_layouts(tmp_path: Path) -> None:
    frames = [pcapgen.Frame(b"\xaa" * 61, 1.25), pcapgen.Frame(b"\xbb" * 64, 2.5)]
    classic = pcapgen.pcap_bytes(frames)
    assert classic[:4] == b"\xd4\xc3\xb2\xa1" and len(classic) == 24 + 2 * 16 + 61 + 64
    assert (
        classic[24:40]
        == (1).to_bytes(4, "little")
        + (250000).to_bytes(4, "little")
        + (61).to_bytes(4, "little") * 2
    )
    nsec_be = pcapgen.pcap_bytes(frames, nanosecond=True, big_endian=True)
    assert nsec_be[:4] == b"\xa1\xb2\x3c\x4d"
    assert nsec_be[24:32] == (1).to_bytes(4, "big") + (250_000_000).to_bytes(4, "big")
    ng = pcapgen.pcapng_bytes(frames)
    offset, blocks = 0, []
    while offset < len(ng):
        block_type = int.from_bytes(ng[offset : offset + 4], "little")
        length = int.from_bytes(ng[offset + 4 : offset + 8], "little")
        assert length % 4 == 0
        assert ng[offset + length - 4 : offset + length] == ng[offset + 4 : offset + 8]
        blocks.append(block_type)
        offset += length
    assert blocks == [0x0A0D0D0A, 1, 6, 6]
