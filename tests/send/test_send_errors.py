"""Send API behaviour and error reporting, compared with spead2 4.5.1.

The probes of ``util.send_probes`` run in this process with our spead2 and in the peer venv with
the real wheel. Outcomes compare by exception type and errno (and the message of a
``ValueError``, which spead2 words itself); see ``util.send_compare``. Each test also states
the expected values outright, so that it fails if both implementations changed.
"""

from __future__ import annotations

import errno
from typing import Any

import pytest
from util import jobs
from util.peer import Peer
from util.send_compare import error_kind, mismatches

PROBES = (
    "stream_config_probe",
    "heap_reference_probe",
    "heap_probe",
    "argument_types_probe",
    "udp_constructor_probe",
    "tcp_constructor_probe",
    "inproc_constructor_probe",
    "socket_errors_probe",
    "sync_errors_probe",
)


def probe_job(name: str) -> jobs.Job:
    return (f"send_probes:{name}", {})


@pytest.fixture(scope="module")
def peer_probes(peer: Peer) -> dict[str, Any]:
    """Every probe's result with spead2 4.5.1 (one subprocess)."""
    results = jobs.run_peer(peer.python, [probe_job(name) for name in PROBES])
    return dict(zip(PROBES, results, strict=True))


@pytest.fixture(scope="module")
def our_probes() -> dict[str, Any]:
    """Every probe's result with our spead2."""
    return {name: jobs.run_ours(probe_job(name)) for name in PROBES}


class Both:
    """One probe's results from both implementations."""

    def __init__(self, ours: dict[str, Any], theirs: dict[str, Any]) -> None:
        for label, result in (("ours", ours), ("peer", theirs)):
            assert "errno" in result or "error" not in result, f"{label} probe crashed: {result}"
        self.ours = ours
        self.theirs = theirs

    def assert_same(self, *keys: str) -> None:
        """The listed outcomes agree (all of them if none are listed)."""
        problems = mismatches(self.ours, self.theirs, keys or sorted(self.theirs))
        assert not problems, "\n".join(problems)


@pytest.fixture
def probe(our_probes: dict[str, Any], peer_probes: dict[str, Any]) -> Any:
    """``probe(name)``: a :class:`Both` for that probe."""

    def get(name: str) -> Both:
        return Both(our_probes[name], peer_probes[name])

    return get


def ok(outcome: dict[str, Any]) -> Any:
    """The value of a successful outcome (fails the test on an error)."""
    assert "ok" in outcome, f"expected success, got {outcome}"
    return outcome["ok"]


# --------------------------------------------------------------------------- StreamConfig


def test_stream_config_matches_peer(probe: Any) -> None:
    both = probe("stream_config_probe")
    both.assert_same()
    ours = both.ours
    assert ok(ours["defaults"]) == {
        "max_packet_size": 1472,
        "rate": 0.0,
        "burst_size": 65536,
        "max_heaps": 4,
        "burst_rate_ratio": 1.05,
        "rate_method": "AUTO",
        "burst_rate": 0.0,
    }
    assert ok(ours["everything"])["burst_rate"] == 2e9  # rate * burst_rate_ratio
    assert ok(ours["set_rate_10.0"])["burst_rate"] == pytest.approx(10.5)
    for label in ("rate_negative", "rate_nan", "max_heaps_zero", "ratio_below_one", "ratio_nan"):
        assert error_kind(ours[label]) == ("ValueError", None), label
    for label in ("max_heaps_negative", "packet_size_negative", "rate_method_int", "positional"):
        assert error_kind(ours[label]) == ("TypeError", None), label
    assert error_kind(ours["set_burst_rate_5.0"]) == ("AttributeError", None)
    assert ok(ours["rate_methods"]) == {"SW": 0, "HW": 1, "AUTO": 2}
    assert ok(ours["group_modes"]) == {"ROUND_ROBIN": 0, "SERIAL": 1}


# --------------------------------------------------------------------------- HeapReference


def test_heap_reference_matches_peer(probe: Any) -> None:
    both = probe("heap_reference_probe")
    keys = ("fields", "defaults", "modify", "negative_cnt", "positional_cnt", "set_heap")
    both.assert_same(*keys, "heap_none", "heap_int")
    assert ok(both.ours["fields"]) == [5, 2, 3.5, True]
    assert ok(both.ours["defaults"]) == [-1, 0, -1.0, True]
    assert error_kind(both.ours["set_heap"]) == ("AttributeError", None)


def test_heap_reference_list_matches_peer(probe: Any) -> None:
    both = probe("heap_reference_probe")
    keys = ("len", "empty_len", "from_tuple", "slice_type", "slice_lengths", "zero_step")
    both.assert_same(*keys, "int_index", "heap_element", "int_element", "not_iterable")
    both.assert_same("send_heap_list", "send_int_mode", "send_slice")
    ours = both.ours
    assert ok(ours["slice_type"]) == "HeapReferenceList"
    assert ok(ours["slice_lengths"]) == [3, 3, 5, 0, 2]
    assert error_kind(ours["zero_step"]) == ("ValueError", None)
    assert error_kind(ours["heap_element"]) == ("TypeError", None)
    assert error_kind(ours["int_element"]) == ("TypeError", None)
    assert ok(ours["send_slice"]) > 0


def test_heap_reference_list_from_any_iterable(probe: Any) -> None:
    """spead2 builds a HeapReferenceList from any iterable of references, a generator too."""
    both = probe("heap_reference_probe")
    both.assert_same("from_generator")
    assert ok(both.ours["from_generator"]) == 5


def test_heap_matches_peer(probe: Any) -> None:
    both = probe("heap_probe")
    both.assert_same()
    assert ok(both.ours["defaults"]) == [40, False]
    assert error_kind(both.ours["noncontiguous"]) == ("ValueError", None)


def test_argument_conversion_errors_match_peer(probe: Any) -> None:
    """Integers that do not fit the C++ parameter (negative for unsigned, beyond 64 bits) are
    a TypeError in spead2, as for any argument of the wrong type."""
    both = probe("argument_types_probe")
    both.assert_same()
    assert error_kind(both.ours["set_cnt_sequence_zero_step"]) == ("ValueError", None)


# --------------------------------------------------------------------------- constructors


UDP_SAME = (
    "default_buffer_size",
    "endpoints",
    "one_endpoint",
    "hostname",
    "config",
    "buffer_size",
    "interface_address",
    "interface_keyword",
    "ttl_unicast",
    "ttl_keyword_unicast",
    "ttl_multicast",
    "ttl_interface_v4",
    "ttl_interface_unicast",
    "empty",
    "mixed_families",
    "socket",
    "socket_config",
    "socket_v6_endpoint",
)


def test_udp_constructors_match_peer(probe: Any) -> None:
    """The overloads (unicast with interface address, ttl, socket form) and their errors."""
    both = probe("udp_constructor_probe")
    both.assert_same(*UDP_SAME)
    ours = both.ours
    assert ok(ours["endpoints"]) == 2  # one substream per endpoint
    assert ok(ours["socket"]) == 2
    assert error_kind(ours["empty"]) == ("ValueError", None)
    assert error_kind(ours["mixed_families"]) == ("ValueError", None)
    assert error_kind(ours["ttl_unicast"]) == ("ValueError", None)
    assert error_kind(both.ours["bad_host"]) == error_kind(both.theirs["bad_host"])


def test_udp_socket_form_accepts_empty_endpoints(probe: Any) -> None:
    """``UdpStream(thread_pool, socket, [])`` is accepted by spead2 (a stream with no
    substreams) although the endpoint-list form rejects an empty list."""
    probe("udp_constructor_probe").assert_same("socket_empty")


def test_tcp_constructor_errors_match_peer(probe: Any) -> None:
    both = probe("tcp_constructor_probe")
    both.assert_same("default_buffer_size", "two_endpoints", "no_endpoints")
    assert ok(both.ours["default_buffer_size"]) == 212992
    assert error_kind(both.ours["two_endpoints"]) == ("ValueError", None)


def test_tcp_connect_refused(probe: Any) -> None:
    """A refused connection raises ConnectionRefusedError with errno ECONNREFUSED."""
    both = probe("tcp_constructor_probe")
    both.assert_same("refused")
    assert error_kind(both.ours["refused"]) == ("ConnectionRefusedError", errno.ECONNREFUSED)


def test_inproc_constructor_matches_peer(probe: Any) -> None:
    both = probe("inproc_constructor_probe")
    both.assert_same()
    assert ok(both.ours["same_queues"]) == [True, True]
    assert ok(both.ours["num_substreams"]) == 2


# --------------------------------------------------------------------------- send errors


def test_sync_send_errors_match_peer(probe: Any) -> None:
    """cnt out of range, bad substream and an empty group are EINVAL; a group larger than
    max_heaps is EAGAIN (BlockingIOError); none of them sends anything."""
    both = probe("sync_errors_probe")
    both.assert_same()
    ours = both.ours
    assert error_kind(ours["cnt_out_of_range"]) == ("OSError", errno.EINVAL)
    assert error_kind(ours["bad_substream"]) == ("OSError", errno.EINVAL)
    assert error_kind(ours["empty_group"]) == ("OSError", errno.EINVAL)
    assert error_kind(ours["group_bad_cnt"]) == ("OSError", errno.EINVAL)
    assert error_kind(ours["group_too_big"]) == ("BlockingIOError", errno.EAGAIN)
    assert ok(ours["bytes"]) == b""


def test_socket_error_reaches_caller(probe: Any) -> None:
    """A datagram too long for UDP fails the send with EMSGSIZE; the stream carries on (the
    failed heap had used cnt 1, so the next one is cnt 2)."""
    both = probe("socket_errors_probe")
    both.assert_same("too_long", "after", "received")
    assert error_kind(both.ours["too_long"]) == ("OSError", errno.EMSGSIZE)
    assert ok(both.ours["received"]) == [2]


def test_stopped_inproc_queue(probe: Any) -> None:
    """Sending into a stopped InprocQueue fails with ECANCELED."""
    both = probe("socket_errors_probe")
    both.assert_same("stopped_queue")
    assert error_kind(both.ours["stopped_queue"]) == ("OSError", errno.ECANCELED)
