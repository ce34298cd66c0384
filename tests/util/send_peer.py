"""The real spead2 4.5.1 as the receiver of our sender (``tests/peer/recv.py`` and
``tests/peer/recv_ports.py``), with a readiness handshake and a pickled result."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from .peer import Peer
from .reference import PeerReference

PEER_TIMEOUT = 60.0
"""Seconds the peer receiver may take to finish after we stop sending (only when broken)."""


@contextmanager
def peer_receiving(
    peer_reference: PeerReference, transport: str, host: str, port: int
) -> Iterator[Callable[[], Any]]:
    """A peer ``recv.py`` listening on ``host:port`` and ready; the block sends the catalogue,
    then calls the yielded function, which waits for the peer and returns its ``Received``."""
    process, output = peer_reference.start_receiver(transport, host, port)
    with process:
        process.wait_ready()

        def result() -> Any:
            process.finish(timeout=PEER_TIMEOUT)
            return peer_reference.load(output)

        yield result


@contextmanager
def peer_receiving_ports(
    peer: Peer,
    workdir: Path,
    host: str,
    ports: Sequence[int],
    expect: int,
    max_heaps: int = 4,
) -> Iterator[Callable[[ModuleType], tuple[Any, dict[str, Any]]]]:
    """A peer ``recv_ports.py`` with a UDP reader on each port; the yielded function (given
    the catalogue module) waits for it and returns ``(Received, raw result)``."""
    output = workdir / f"recv-ports-{'-'.join(map(str, ports))}.pickle"
    args = ["--host", host, "--ports", ",".join(map(str, ports)), "--expect", str(expect)]
    args += ["--max-heaps", str(max_heaps), "--output", str(output)]
    with peer.start("recv_ports.py", *args) as process:
        process.wait_ready()

        def result(catalogue: ModuleType) -> tuple[Any, dict[str, Any]]:
            process.finish(timeout=PEER_TIMEOUT)
            with output.open("rb") as f:
                plain = pickle.load(f)
            return catalogue.Received.from_plain(plain), plain

        yield result
