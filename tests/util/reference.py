"""What the real spead2 sends and receives for each catalogue, computed once per session.

``stream_bytes`` is the exact byte stream the peer's ``BytesStream`` produces for a catalogue
(the same packets its UDP and TCP streams send), and ``received`` is what the peer's receiver
makes of it, statistics included: the reference our receiver must match.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from types import ModuleType
from typing import Any

from .peer import Peer, PeerProcess

PEER_TIMEOUT = 60.0


class PeerReference:
    """Session cache of peer-produced streams and peer receive results."""

    def __init__(self, peer: Peer, catalogue: ModuleType, workdir: Path) -> None:
        self.peer = peer
        self.catalogue = catalogue
        self.workdir = workdir
        self._bytes: dict[tuple[str, int, int], Path] = {}
        self._received: dict[tuple[str, int, int], Any] = {}

    def stream_bytes(self, name: str, bits: int, packet_size: int = 1472) -> Path:
        """A file holding every packet the peer sends for catalogue ``name``."""
        key = (name, bits, packet_size)
        if key not in self._bytes:
            path = self.workdir / f"{name}-{bits}-{packet_size}.spead"
            self.peer.run(
                "send.py",
                "--transport",
                "buffer",
                "--output",
                str(path),
                "--bits",
                str(bits),
                "--catalogue",
                name,
                "--packet-size",
                str(packet_size),
                timeout=PEER_TIMEOUT,
            )
            self._bytes[key] = path
        return self._bytes[key]

    def received(self, name: str, bits: int, packet_size: int = 1472) -> Any:
        """The peer receiver's view of :meth:`stream_bytes` (a ``catalogue.Received``)."""
        key = (name, bits, packet_size)
        if key not in self._received:
            path = self.stream_bytes(name, bits, packet_size)
            self._received[key] = self.receive_file("buffer", path)
        return self._received[key]

    def _output(self, stem: str) -> Path:
        for i in range(1_000_000):
            path = self.workdir / f"{stem}-{i}.pickle"
            if not path.exists():
                path.touch()
                return path
        raise RuntimeError("out of output names")

    def load(self, path: Path) -> Any:
        """Read a result pickled by ``tests/peer/recv.py``."""
        with path.open("rb") as f:
            plain = pickle.load(f)
        if plain.get("timed_out"):
            raise AssertionError(f"peer receiver timed out ({path})")
        return self.catalogue.Received.from_plain(plain)

    def receive_file(self, transport: str, path: Path, pcap_filter: str = "") -> Any:
        """The peer's reception of a byte-stream file (``buffer``) or a capture (``pcap``)."""
        output = self._output("recv-" + transport)
        self.peer.run(
            "recv.py",
            "--transport",
            transport,
            "--input",
            str(path),
            "--filter",
            pcap_filter,
            "--output",
            str(output),
            timeout=PEER_TIMEOUT,
        )
        return self.load(output)

    def pcap_outcome(self, path: Path, pcap_filter: str) -> tuple[str | None, Any]:
        """``(exception type name, None)`` if the peer rejects the capture or filter when the
        reader is added, else ``(None, received)``."""
        output = self._output("probe-pcap")
        self.peer.run(
            "recv.py",
            "--transport",
            "pcap",
            "--input",
            str(path),
            "--filter",
            pcap_filter,
            "--output",
            str(output),
            "--report-errors",
            timeout=PEER_TIMEOUT,
        )
        with output.open("rb") as f:
            plain = pickle.load(f)
        if "error" in plain:
            return str(plain["error"]), None
        return None, self.load(output)

    def start_receiver(self, transport: str, host: str, port: int) -> tuple[PeerProcess, Path]:
        """A peer receiver listening on ``host:port``; wait for READY before sending."""
        output = self._output(f"recv-{transport}")
        process = self.peer.start(
            "recv.py",
            "--transport",
            transport,
            "--host",
            host,
            "--port",
            str(port),
            "--output",
            str(output),
        )
        return process, output
