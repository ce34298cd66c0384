"""Multicast reception: the real spead2 sends to a group, our stream joins it and receives.

Multicast needs a route, which must not be added to the host: each test runs its receiving
code in a thread moved into a private network namespace (``tests/util/netns.py``), where it
sets the route up, joins the group and starts the peer sender (child processes inherit the
thread's namespace). The namespace vanishes with its last socket. Tests skip, with the reason,
where namespaces are unavailable (not root, no ``ip``, or a kernel or container that refuses).

IPv4 uses the loopback interface. Linux loopback does not deliver IPv6 multicast, so IPv6 uses
one end of a veth pair made inside the namespace (multicast loopback delivers the sender's own
packets locally, as on any real interface).
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import pytest
from util import jobs
from util.netns import NetnsUnavailable, run_in_netns
from util.peer import Peer
from util.receive import stop_after

import spead2
import spead2.recv

S = "recv_scenarios:"
PORT = 7148
V4_GROUP = "239.255.42.7"
V6_GROUP = "ff14::5:7"
V4_SETUP = [["link", "set", "lo", "up"], ["route", "add", "239.0.0.0/8", "dev", "lo"]]
V6_SETUP = [
    ["link", "set", "lo", "up"],
    ["link", "add", "veth0", "type", "veth", "peer", "name", "veth1"],
    ["link", "set", "veth1", "up"],
    ["link", "set", "veth0", "up"],
    ["-6", "addr", "add", "fd00::1/64", "dev", "veth0", "nodad"],
]
STOP_AFTER = 20.0
"""Seconds after which a receiver that never sees the stop heap is stopped (a failure)."""


def receive_from_peer(
    peer: Peer,
    catalogue: ModuleType,
    group: str,
    interface: str | int,
    reader_args: tuple[Any, ...] = (),
    reader_kwargs: dict[str, Any] | None = None,
) -> Any:
    """Inside the namespace: join ``group`` with our stream, let the peer send the small
    catalogue through ``interface``, and receive it (a ``catalogue.Received``)."""
    stream = spead2.recv.Stream(
        jobs.thread_pool(spead2),
        spead2.recv.StreamConfig(),
        spead2.recv.RingStreamConfig(heaps=16),
    )
    stream.add_udp_reader(group, PORT, *reader_args, **(reader_kwargs or {}))
    sender: jobs.Job = (
        S + "send_multicast",
        {"group": group, "port": PORT, "interface": interface},
    )
    (sent,) = jobs.run_peer(peer.python, [sender])
    assert isinstance(sent, int), f"the peer could not send: {sent}"
    with stop_after(stream, STOP_AFTER):
        received = catalogue.collect(stream, spead2.ItemGroup())
    stream.stop()
    return received


def in_netns(setup: Sequence[Sequence[str]], fn: Any) -> Any:
    try:
        return run_in_netns(fn, setup)
    except NetnsUnavailable as exc:
        pytest.skip(f"no private network namespace for the multicast test: {exc}")


def check(catalogue: ModuleType, received: Any) -> None:
    problems = catalogue.check_received(catalogue.build("small", 48), received)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("reader_args", "reader_kwargs"),
    [
        ((), {"interface_address": "127.0.0.1"}),
        ((9200, 1 << 20, "127.0.0.1"), {}),
        ((), {"max_size": 9200, "buffer_size": 1 << 20, "interface_address": "127.0.0.1"}),
        ((), {}),
    ],
    ids=["interface_address", "positional", "keywords", "default_interface"],
)
def test_ipv4_multicast(
    peer: Peer,
    catalogue: ModuleType,
    reader_args: tuple[Any, ...],
    reader_kwargs: dict[str, Any],
) -> None:
    """Every form of the IPv4 multicast overload; without an interface the group is joined
    on the one the route names (lo)."""

    def body() -> Any:
        return receive_from_peer(peer, catalogue, V4_GROUP, "127.0.0.1", reader_args, reader_kwargs)

    check(catalogue, in_netns(V4_SETUP, body))


def test_ipv6_multicast(peer: Peer, catalogue: ModuleType) -> None:
    def body() -> Any:
        index = socket.if_nametoindex("veth0")  # resolved inside the namespace
        kwargs = {"interface_index": index}
        return receive_from_peer(peer, catalogue, V6_GROUP, index, (), kwargs)

    check(catalogue, in_netns(V6_SETUP, body))


def test_netns_leaves_host_untouched() -> None:
    """The route added in the namespace is not on the host afterwards."""

    def routes() -> str:
        proc = subprocess.run(["ip", "route"], capture_output=True, text=True, check=False)
        return proc.stdout

    before = routes()
    inside = in_netns(V4_SETUP, routes)
    assert "239.0.0.0/8" in inside
    assert routes() == before
    assert "239.0.0.0/8" not in before
