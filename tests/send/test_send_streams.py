"""Send streams on loopback: inproc round trips, two interleaved senders, UDP substreams.

The scenarios of ``util.send_probes`` run with our spead2 (sender and receiver both ours) and,
as a control that the scenario means what it says, with spead2 4.5.1 on both ends.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from util import jobs
from util.peer import Peer
from util.send_compare import error_kind, mismatches

EINVAL = 22
INTERLEAVE_HEAPS = 50
INTERLEAVE_PAYLOAD = 20_000
"""Each heap spans 14 packets of 1472 bytes, so concurrent senders interleave packets."""


def roundtrip_job(name: str, bits: int, packet_size: int) -> jobs.Job:
    args = {"name": name, "bits": bits, "packet_size": packet_size}
    return ("send_probes:inproc_roundtrip", args)


INTERLEAVE_JOB: jobs.Job = (
    "send_probes:interleave",
    {"heaps_per_sender": INTERLEAVE_HEAPS, "payload": INTERLEAVE_PAYLOAD},
)
ROUNDTRIPS = [("full", 40, 1472), ("full", 48, 9000), ("small", 48, 64)]


@pytest.fixture(scope="module")
def peer_results(peer: Peer) -> dict[str, Any]:
    """The same scenarios with spead2 4.5.1 sending and receiving (one subprocess)."""
    job_list = [roundtrip_job(*r) for r in ROUNDTRIPS]
    job_list += [INTERLEAVE_JOB, ("send_probes:udp_substreams_probe", {})]
    results = jobs.run_peer(peer.python, job_list)
    keys = [f"roundtrip_{n}_{b}_{s}" for n, b, s in ROUNDTRIPS] + ["interleave", "substreams"]
    return dict(zip(keys, results, strict=True))


def check_roundtrip(catalogue: ModuleType, result: dict[str, Any], name: str, bits: int) -> None:
    assert "heaps" in result, f"scenario failed: {result}"
    assert not result["timed_out"], f"no stop heap; {len(result['heaps'])} heaps arrived"
    assert result["errors"] == []
    received = catalogue.Received.from_plain(result)
    problems = catalogue.check_received(catalogue.build(name, bits), received)
    assert not problems, "\n".join(problems)
    assert received.stats["incomplete_heaps_evicted"] == 0
    assert received.stats["incomplete_heaps_flushed"] == 0


@pytest.mark.parametrize(("name", "bits", "packet_size"), ROUNDTRIPS)
def test_inproc_roundtrip(
    catalogue: ModuleType, peer_results: dict[str, Any], name: str, bits: int, packet_size: int
) -> None:
    """Our InprocStream to our inproc reader: every value exact, same packets as spead2."""
    ours = jobs.run_ours(roundtrip_job(name, bits, packet_size))
    check_roundtrip(catalogue, ours, name, bits)
    theirs = peer_results[f"roundtrip_{name}_{bits}_{packet_size}"]
    check_roundtrip(catalogue, theirs, name, bits)
    for stat in ("heaps", "packets", "single_packet_heaps"):
        assert ours["stats"][stat] == theirs["stats"][stat], stat


def check_interleave(result: dict[str, Any]) -> None:
    assert "heaps" in result, f"scenario failed: {result}"
    assert result["errors"] == []
    assert not result["timed_out"]
    n = INTERLEAVE_HEAPS
    # Sender 0 (tag 0) has cnts 1, 3, 5, ...; sender 1 (tag 1) has 2, 4, 6, ...
    expected = [[cnt, (cnt - 1) % 2, True] for cnt in range(1, 2 * n + 1)]
    assert result["heaps"] == expected
    assert result["stats"]["heaps"] == 2 * n
    assert result["stats"]["incomplete_heaps_evicted"] == 0
    assert result["stats"]["incomplete_heaps_flushed"] == 0


def test_interleaved_senders_with_substreams(peer_results: dict[str, Any]) -> None:
    """Two senders with set_cnt_sequence(1, 2) and (2, 2) share a queue; a receiver with
    substreams=2 (one heap slot each) gets every heap of both, complete and correct.

    With substreams=1 the same traffic loses heaps (the senders' packets interleave and each
    evicts the other's heap), which is what makes this a test of the cnt sequences.
    """
    check_interleave(peer_results["interleave"])
    check_interleave(jobs.run_ours(INTERLEAVE_JOB))


def test_udp_substreams_route_by_index(peer_results: dict[str, Any]) -> None:
    """Each heap goes to its substream's endpoint only, groups included."""
    ours = jobs.run_ours(("send_probes:udp_substreams_probe", {}))
    theirs = peer_results["substreams"]
    problems = mismatches(ours, theirs, ["num_substreams", "outcomes", "received"])
    assert not problems, "\n".join(problems)
    assert ours["received"] == [[1, 4, 102], [2, 5, 101], [3, 6, 100]]
    assert error_kind(ours["outcomes"][-1]) == ("OSError", EINVAL)  # substream 3 of 3
