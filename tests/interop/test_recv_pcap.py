"""Interop: real spead2 UDP traffic, captured to pcap/pcapng files, read back by our spead2.

The peer sends the ``full`` catalogue to one recorder port and, at the same time, the ``small``
catalogue to another (a decoy flow), so the two interleave. The recorded datagrams become
IPv4/UDP frames (Ethernet, or Linux SLL as ``tcpdump -i any`` writes). The capture also holds
frames that ``udp and dst port <main>`` must not select: the decoy flow repeated over IPv6 to a
third port, and TCP segments to the main port.

Our reader deliberately reads IPv6 as well as IPv4 (a documented superset: the real spead2
4.5.1 reads IPv4 only and rejects ``ip6`` filters), so no expectation here relies on IPv6 frames
being ignored. Where the peer can read a capture, ours must produce exactly what the peer does
(``test_peer_*`` validate those expectations against the real spead2 first). IPv6 reception is
checked against the same catalogue and against the peer's reading of the same payloads over IPv4.
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
V6_DST = "::1"
TCP_SRC = ("127.0.0.1", 40001)
VARIANTS = ("pcap", "pcap-nsec-be", "pcapng", "pcap-sll")
V6_VARIANTS = ("pcap", "pcapng", "pcap-sll")
IP6_FILTER = "ip6 and udp"
REJECTED_FILTERS = ("udp and and", "bogus", "udp port 99999999", "tcp", "not udp", IP6_FILTER)
"""The real spead2 raises RuntimeError for these when the reader is added: libpcap cannot
compile the first three, and the rest reject every packet (spead2 reads only UDP over IPv4)."""
OURS_REJECTED_FILTERS = tuple(f for f in REJECTED_FILTERS if f != IP6_FILTER)
"""Ours rejects the same, except ``ip6`` filters: it reads UDP over IPv6 too."""
OUTSIDE_COMMON_SUBSET = ("ether host 01:02:03:04:05:06", "len > 5")
"""Valid libpcap filters beyond ``udp``/``ip``/port/host terms."""


@pytest.fixture
def spead2() -> ModuleType:
    """Our spead2 (never the peer's), with ``recv`` imported."""
    return import_ours("recv")


@dataclass(frozen=True)
class Capture:
    """Capture files of one recording, and the ports the flows went to."""

    bits: int
    main_port: int
    decoy_port: int
    v6_port: int
    """Where the IPv6 copy of the decoy flow goes (no IPv4 frame uses this port)."""
    files: dict[str, Path]
    """Per variant: IPv4 main and decoy flows, IPv6 decoys to ``v6_port``, TCP decoys."""
    clean: Path
    """Main flow (IPv4) plus TCP decoys only: right for both readers even without a filter."""
    v6_main: dict[str, Path]
    """Per variant: as ``files``, but the main flow travels over IPv6 (same payloads, order)."""
    v6_clean: Path
    """Main flow over IPv6 plus TCP decoys only."""
    same_port: Path
    """IPv4 main flow, and the decoy flow over IPv6 to the *main* port: only ``ip``/``ip6``
    qualifiers tell them apart."""


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


def _to_ipv6(d: pcapgen.Datagram, port: int | None = None) -> pcapgen.Datagram:
    """The same payload over IPv6 loopback (to ``port`` if given)."""
    return pcapgen.Datagram(
        V6_SRC, (V6_DST, d.dst[1] if port is None else port), d.payload, d.timestamp
    )


def _decoys(
    datagrams: list[pcapgen.Datagram], v6_port: int, tcp_port: int, linktype: int
) -> list[pcapgen.Frame]:
    """An IPv6 copy of the decoy flow to ``v6_port``, and TCP copies of some of it to
    ``tcp_port``."""
    frames = []
    for i, d in enumerate(datagrams):
        frames.append(pcapgen.udp_frame(_to_ipv6(d, v6_port), linktype=linktype))
        if i % 3 == 0:
            dst = ("127.0.0.1", tcp_port)
            frames.append(pcapgen.tcp_frame(TCP_SRC, dst, d.payload, d.timestamp, linktype))
    return frames


def _tcp_decoys(
    datagrams: list[pcapgen.Datagram], tcp_port: int, linktype: int
) -> list[pcapgen.Frame]:
    dst = ("127.0.0.1", tcp_port)
    return [
        pcapgen.tcp_frame(TCP_SRC, dst, d.payload, d.timestamp, linktype)
        for i, d in enumerate(datagrams)
        if i % 3 == 0
    ]


def _interleave(a: list[pcapgen.Frame], b: list[pcapgen.Frame]) -> list[pcapgen.Frame]:
    """Merge two frame lists, alternating while both last (keeps each list's own order)."""
    merged: list[pcapgen.Frame] = []
    for i in range(max(len(a), len(b))):
        merged.extend(x[i] for x in (a, b) if i < len(x))
    return merged


def _frames(datagrams: list[pcapgen.Datagram], linktype: int) -> list[pcapgen.Frame]:
    """Frames for datagrams of either IP version, in order."""
    return [pcapgen.udp_frame(d, ident=i, linktype=linktype) for i, d in enumerate(datagrams)]


def _write(directory: Path, stem: str, variant: str, frames: list[pcapgen.Frame]) -> Path:
    if variant == "pcap":
        return pcapgen.write_pcap(directory / f"{stem}.pcap", frames)
    if variant == "pcap-nsec-be":
        return pcapgen.write_pcap(
            directory / f"{stem}-nsec-be.pcap", frames, nanosecond=True, big_endian=True
        )
    if variant == "pcapng":
        return pcapgen.write_pcapng(directory / f"{stem}.pcapng", frames)
    sll = pcapgen.LINKTYPE_LINUX_SLL
    return pcapgen.write_pcap(directory / f"{stem}-sll.pcap", frames, linktype=sll)


def _linktype(variant: str) -> int:
    return pcapgen.LINKTYPE_LINUX_SLL if variant == "pcap-sll" else pcapgen.LINKTYPE_ETHERNET


def _build_capture(peer: Peer, bits: int, directory: Path) -> Capture:
    datagrams, main_port, decoy_port = _record(peer, bits)
    v6_port = max(main_port, decoy_port) + 1
    main = [d for d in datagrams if d.dst[1] == main_port]
    decoy = [d for d in datagrams if d.dst[1] == decoy_port]
    assert main and decoy, "the recorder caught nothing"
    # Arrival order (flows interleaved); in the v6 variant the main flow's datagrams are IPv6.
    v6_mixed = [_to_ipv6(d) if d.dst[1] == main_port else d for d in datagrams]

    def frames(recorded: list[pcapgen.Datagram], variant: str) -> list[pcapgen.Frame]:
        linktype = _linktype(variant)
        decoys = _decoys(decoy, v6_port, main_port, linktype)
        return _interleave(_frames(recorded, linktype), decoys)

    ether = pcapgen.LINKTYPE_ETHERNET
    files = {v: _write(directory, f"{bits}", v, frames(datagrams, v)) for v in VARIANTS}
    v6_main = {v: _write(directory, f"{bits}-v6", v, frames(v6_mixed, v)) for v in V6_VARIANTS}
    clean = _interleave(_frames(main, ether), _tcp_decoys(decoy, main_port, ether))
    v6_clean = _interleave(
        _frames([_to_ipv6(d) for d in main], ether), _tcp_decoys(decoy, main_port, ether)
    )
    same_port = _interleave(
        _frames(main, ether), _frames([_to_ipv6(d, main_port) for d in decoy], ether)
    )
    return Capture(
        bits,
        main_port,
        decoy_port,
        v6_port,
        files,
        pcapgen.write_pcapng(directory / f"{bits}-clean.pcapng", clean),
        v6_main,
        pcapgen.write_pcapng(directory / f"{bits}-v6-clean.pcapng", v6_clean),
        pcapgen.write_pcapng(directory / f"{bits}-same-port.pcapng", same_port),
    )


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
    """Values equal the catalogue; stats equal the peer's reading of the same payloads."""
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
    # TCP frames to the same port are not packets: the count equals the byte stream's
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


def test_peer_ignores_ipv6_frames(
    captures: dict[int, Capture], peer_reference: PeerReference, catalogue: ModuleType
) -> None:
    """The real spead2 skips IPv6 frames: in the same-port capture it sees only the IPv4 flow,
    and in a capture whose main flow is IPv6 it finds nothing for the main port."""
    cap = captures[48]
    port_filter = dst_filter(cap.main_port)
    same_port = peer_reference.receive_file("pcap", cap.same_port, port_filter)
    assert not catalogue.check_received(catalogue.build("full", 48), same_port)
    error, v6 = peer_reference.pcap_outcome(cap.v6_main["pcap"], port_filter)
    assert error is None
    assert v6.heaps == [] and v6.stats["packets"] == 0


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
# Ours reading the same captures: IPv4 results equal the peer's.


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


def test_pcap_without_filter_ignores_tcp(
    spead2: ModuleType,
    captures: dict[int, Capture],
    peer_reference: PeerReference,
    catalogue: ModuleType,
) -> None:
    cap = captures[48]
    received = read_ours(spead2, catalogue, cap.clean, "")
    peer_received = peer_reference.receive_file("pcap", cap.clean, "")
    assert_same_as_peer(catalogue, received, peer_received, "full", 48)


@pytest.mark.parametrize("bits", FLAVOURS)
def test_pcap_ip_filter_skips_ipv6_on_same_port(
    spead2: ModuleType,
    captures: dict[int, Capture],
    peer_reference: PeerReference,
    catalogue: ModuleType,
    bits: int,
) -> None:
    """``ip and ...`` selects the IPv4 flow only, exactly as the peer reads it."""
    cap = captures[bits]
    pcap_filter = f"ip and {dst_filter(cap.main_port)}"
    received = read_ours(spead2, catalogue, cap.same_port, pcap_filter)
    peer_received = peer_reference.receive_file("pcap", cap.same_port, pcap_filter)
    assert_same_as_peer(catalogue, received, peer_received, "full", bits)


# ---------------------------------------------------------------------------------------------
# Ours reading IPv6 (beyond spead2): compared with the catalogue, and with the peer's reading
# of the identical payloads over IPv4.


@pytest.mark.parametrize("bits", FLAVOURS)
@pytest.mark.parametrize("variant", V6_VARIANTS)
@pytest.mark.parametrize("qualifier", ["", "ip6 and "])
def test_pcap_ipv6_main_flow(
    spead2: ModuleType,
    captures: dict[int, Capture],
    peer_reference: PeerReference,
    catalogue: ModuleType,
    variant: str,
    bits: int,
    qualifier: str,
) -> None:
    cap = captures[bits]
    pcap_filter = qualifier + dst_filter(cap.main_port)
    received = read_ours(spead2, catalogue, cap.v6_main[variant], pcap_filter)
    # the same payloads in the same order, over IPv4 (the peer reads those)
    ipv4 = peer_reference.receive_file("pcap", cap.files[variant], dst_filter(cap.main_port))
    assert_same_as_peer(catalogue, received, ipv4, "full", bits)


@pytest.mark.parametrize("bits", FLAVOURS)
def test_pcap_ipv6_decoy_flow(
    spead2: ModuleType,
    captures: dict[int, Capture],
    peer_reference: PeerReference,
    catalogue: ModuleType,
    bits: int,
) -> None:
    """The IPv6 copy of the decoy flow, picked out by ``ip6`` and its own port."""
    cap = captures[bits]
    received = read_ours(
        spead2, catalogue, cap.files["pcapng"], f"{IP6_FILTER} and dst port {cap.v6_port}"
    )
    ipv4 = peer_reference.receive_file("pcap", cap.files["pcapng"], dst_filter(cap.decoy_port))
    assert_same_as_peer(catalogue, received, ipv4, "small", bits)


def test_pcap_ip6_filter_on_same_port(
    spead2: ModuleType,
    captures: dict[int, Capture],
    peer_reference: PeerReference,
    catalogue: ModuleType,
) -> None:
    """Where both flows share a port, ``ip6`` selects the IPv6 one only."""
    cap = captures[48]
    pcap_filter = f"ip6 and {dst_filter(cap.main_port)}"
    received = read_ours(spead2, catalogue, cap.same_port, pcap_filter)
    ipv4 = peer_reference.receive_file("pcap", cap.files["pcap"], dst_filter(cap.decoy_port))
    assert_same_as_peer(catalogue, received, ipv4, "small", 48)


def test_pcap_without_filter_reads_ipv6(
    spead2: ModuleType,
    captures: dict[int, Capture],
    peer_reference: PeerReference,
    catalogue: ModuleType,
) -> None:
    cap = captures[48]
    received = read_ours(spead2, catalogue, cap.v6_clean, "")
    ipv4 = peer_reference.receive_file("pcap", cap.clean, "")
    assert_same_as_peer(catalogue, received, ipv4, "full", 48)


def test_pcap_ip6_filter_accepted(spead2: ModuleType, captures: dict[int, Capture]) -> None:
    """``ip6 and udp`` (refused by spead2, which has no IPv6) is a valid filter for ours."""
    stream = spead2.recv.Stream(spead2.ThreadPool(), spead2.recv.StreamConfig())
    stream.add_udp_pcap_file_reader(str(captures[40].files["pcap"]), filter=IP6_FILTER)
    stream.stop()


@pytest.mark.parametrize("bad_filter", OURS_REJECTED_FILTERS)
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
