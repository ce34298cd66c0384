"""The command-line tools: spead2_send.py, spead2_recv.py and spead2_bench.py.

Every run is a subprocess on loopback with a bounded number of heaps. Interop runs pair our
tools with the real spead2 4.5.1 ones from the peer venv, in both directions.
"""

from __future__ import annotations

import argparse
import re
import signal
import socket
from pathlib import Path

import pytest
from tools_harness import (
    Tool,
    heap_lines,
    our_argv,
    peer_argv,
    run,
    sent_bytes,
    stat_values,
    stream_heaps,
)
from util.pcapgen import Datagram, frames_from_datagrams, write_pcap
from util.ports import free_tcp_port, free_udp_port

from spead2.tools import cmdline

LOOPBACK = "127.0.0.1"


def _ep(port: int) -> str:
    return f"{LOOPBACK}:{port}"


# ------------------------------------------------------------------------------------- cmdline


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8888", ("127.0.0.1", 8888)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:7148", ("::1", 7148)),
        ("239.1.2.3:65535", ("239.1.2.3", 65535)),
    ],
)
def test_parse_endpoint_accepts(text: str, expected: tuple[str, int]) -> None:
    assert cmdline.parse_endpoint(text) == expected


@pytest.mark.parametrize(
    "text", ["bogus", "8888", ":8888", "host:", "host:http", "host:65536", "::1:80", "[::1]80"]
)
def test_parse_endpoint_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        cmdline.parse_endpoint(text)


def test_parse_source_kinds() -> None:
    assert cmdline.parse_source("7148") == cmdline.Source("7148", port=7148)
    multicast = cmdline.parse_source("239.1.2.3:7148")
    assert (multicast.host, multicast.port, multicast.is_multicast) == ("239.1.2.3", 7148, True)
    unicast = cmdline.parse_source("127.0.0.1:7148")
    assert not unicast.is_multicast and not unicast.is_file
    capture = cmdline.parse_source("capture.pcap")
    assert capture.is_file and capture.filename == "capture.pcap"
    with pytest.raises(ValueError):
        cmdline.parse_source("99999")


def test_receiver_options_round_trip_and_configs() -> None:
    parser = argparse.ArgumentParser()
    cmdline.ProtocolOptions().add_arguments(parser)
    cmdline.ReceiverOptions().add_arguments(parser)
    args = parser.parse_args(
        [
            "--pyspead",
            "--concurrent-heaps",
            "7",
            "--substreams",
            "3",
            "--ring-heaps",
            "5",
            "--mem-pool",
            "--mem-max-free",
            "4",
            "--mem-initial",
            "2",
            "--packet",
            "1500",
            "--memcpy-nt",
        ]
    )
    protocol = cmdline.ProtocolOptions()
    protocol.notify(parser, args)
    receiver = cmdline.ReceiverOptions()
    receiver.notify(parser, args)
    config = receiver.make_stream_config(protocol)
    assert (config.max_heaps, config.substreams) == (7, 3)
    assert config.bug_compat == 7  # BUG_COMPAT_PYSPEAD_0_5_2
    assert config.memcpy == 1  # MEMCPY_NONTEMPORAL
    assert receiver.make_ring_stream_config().heaps == 5
    assert receiver.max_size(protocol) == 1500
    assert receiver.buffer_size(protocol) == 8388608
    again = cmdline.ReceiverOptions.from_dict(receiver.to_dict())
    assert again == receiver
    assert cmdline.ProtocolOptions.from_dict(protocol.to_dict()) == protocol


def test_sender_options_with_prefix() -> None:
    parser = argparse.ArgumentParser()
    cmdline.SenderOptions(prefix="send-").add_arguments(parser, packet=False, rate=False)
    args = parser.parse_args(
        [
            "--send-buffer",
            "65536",
            "--send-threads",
            "2",
            "--send-affinity",
            "0-1",
            "--addr-bits",
            "48",
            "--burst",
            "9000",
            "--max-heaps",
            "6",
            "--rate-method",
            "sw",
        ]
    )
    sender = cmdline.SenderOptions(prefix="send-")
    sender.notify(parser, args)
    assert (sender.buffer, sender.threads, sender.affinity) == (65536, 2, [0, 1])
    config = sender.make_stream_config(rate_gbps=8.0)
    assert config.rate == pytest.approx(1e9)
    assert (config.burst_size, config.max_heaps, config.max_packet_size) == (9000, 6, 1472)
    assert sender.make_flavour(cmdline.ProtocolOptions()).heap_address_bits == 48
    with pytest.raises(SystemExit):
        parser.parse_args(["--buffer", "1"])  # only the prefixed spelling exists


# ---------------------------------------------------------------------------- help and errors


@pytest.mark.parametrize(
    ("argv", "options"),
    [
        (
            our_argv("send", "--help"),
            [
                "--heap-size",
                "--items",
                "--dtype",
                "--heaps",
                "--tcp",
                "--pyspead",
                "--addr-bits",
                "--packet",
                "--rate",
                "--burst",
                "--burst-rate-ratio",
                "--max-heaps",
                "--ttl",
                "--buffer",
                "--bind",
                "--ibv",
                "--affinity",
                "--threads",
                "--descriptors",
                "--progress",
                "HOST:PORT",
            ],
        ),
        (
            our_argv("recv", "--help"),
            [
                "--values",
                "--descriptors",
                "--max-heaps",
                "--joint",
                "--tcp",
                "--pyspead",
                "--memcpy-nt",
                "--concurrent-heaps",
                "--substreams",
                "--ring-heaps",
                "--mem-pool",
                "--mem-lower",
                "--mem-upper",
                "--mem-max-free",
                "--mem-initial",
                "--packet",
                "--buffer",
                "--bind",
                "--ibv",
                "--affinity",
                "--threads",
                "--progress",
                "source",
            ],
        ),
        (our_argv("bench", "--help"), ["master", "agent", "--log"]),
        (
            our_argv("bench", "master", "--help"),
            [
                "--quiet",
                "--heap-size",
                "--multicast",
                "--send-buffer",
                "--send-threads",
                "--recv-buffer",
                "--recv-threads",
                "--ring-heaps",
                "--packet",
                "HOST:PORT",
            ],
        ),
        (our_argv("bench", "agent", "--help"), ["port"]),
    ],
    ids=["send", "recv", "bench", "bench-master", "bench-agent"],
)
def test_help_lists_options(argv: list[str], options: list[str]) -> None:
    result = run(argv)
    assert result.returncode == 0, result.stderr
    for option in options:
        assert option in result.stdout, option


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (our_argv("send", "bogus"), "invalid parse_endpoint value: 'bogus'"),
        (our_argv("send", "--heaps", "x", "127.0.0.1:1"), "argument --heaps: invalid int value"),
        (
            our_argv("send", "--tcp", "127.0.0.1:1", "127.0.0.1:2"),
            "only one destination is supported with TCP",
        ),
        (our_argv("send", "--ibv", "127.0.0.1:1"), "--ibv is not supported by this build"),
        (our_argv("send", "--addr-bits", "41", "127.0.0.1:1"), "--addr-bits must be a multiple"),
        (our_argv("send", "--dtype", "nonsense", "127.0.0.1:1"), "argument --dtype"),
        (our_argv("recv", "--ibv", "7148"), "--ibv is not supported by this build"),
        (our_argv("recv", "--tcp", "capture.pcap"), "cannot be used with --tcp"),
        (our_argv("recv", "--max-heaps", "0", "7148"), "--max-heaps must be positive"),
        (our_argv("recv", "--log", "LOUD", "7148"), "unknown log level"),
        (our_argv("recv"), "the following arguments are required: source"),
        (our_argv("bench", "master", "--send-ibv", "127.0.0.1:1"), "--send-ibv is not supported"),
        (our_argv("bench", "agent", "70000"), "argument port"),
        (our_argv("bench"), "required"),
    ],
)
def test_bad_options_are_usage_errors(argv: list[str], message: str) -> None:
    result = run(argv)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_refused_tcp_connection_is_a_clean_error() -> None:
    port = free_tcp_port()
    result = run(our_argv("send", "--tcp", "--heaps", "1", _ep(port)))
    assert result.returncode == 1
    assert f"spead2_send.py: error: cannot send to {_ep(port)}" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_pcap_file_is_a_clean_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pcap"
    result = run(our_argv("recv", str(missing)))
    assert result.returncode == 1
    assert f"cannot receive from {missing}" in result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------------- ours <-> ours


def _send_recv(recv_args: list[str], send_args: list[str], port: int, kind: str) -> tuple[str, str]:
    """Starts our receiver, runs our sender, returns (receiver stdout, sender stdout)."""
    with Tool(our_argv("recv", *recv_args)) as receiver:
        receiver.wait_bound(port, kind)
        sent = run(our_argv("send", *send_args))
        assert sent.returncode == 0, sent.stderr
        received = receiver.finish()
    assert received.returncode == 0, received.stderr
    return received.stdout, sent.stdout


@pytest.mark.parametrize("kind", ["udp", "tcp"])
def test_send_to_recv_exact_counts(kind: str) -> None:
    port = free_udp_port() if kind == "udp" else free_tcp_port()
    tcp = ["--tcp"] if kind == "tcp" else []
    recv_out, send_out = _send_recv(
        [*tcp, "--mem-pool", _ep(port)],
        [*tcp, "--heaps", "9", "--heap-size", "20000", "--items", "2", "--dtype", "<u4", _ep(port)],
        port,
        kind,
    )
    assert stream_heaps(recv_out) == {_ep(port): 9}
    assert stat_values(recv_out, "heaps") == [9]
    assert stat_values(recv_out, "incomplete_heaps_evicted") == [0]
    assert "Received 9 heaps (0 incomplete), 180000 bytes in" in recv_out
    assert "Sent 9 heaps," in send_out
    assert recv_out.count("Received heap ") == 9
    # Two items per heap, named by the descriptors of the first heap.
    assert recv_out.count("Test item 1\n") == 9


def test_substreams_round_robin_with_descriptors_per_destination() -> None:
    ports = [free_udp_port(), free_udp_port()]
    with Tool(our_argv("recv", "--descriptors", *map(str, ports))) as receiver:
        for port in ports:
            receiver.wait_bound(port, "udp")
        sent = run(our_argv("send", "--heaps", "5", "--heap-size", "64", *map(_ep, ports)))
        assert sent.returncode == 0, sent.stderr
        received = receiver.finish()
    assert received.returncode == 0, received.stderr
    assert stream_heaps(received.stdout) == {str(ports[0]): 3, str(ports[1]): 2}
    # Each destination gets its own descriptors (at its first heap) and its own end heap.
    assert received.stdout.count("Descriptor for Test item 0 (0x1000)") == 2
    cnts = re.findall(r"^Received heap (\d+) on stream (\d+)$", received.stdout, re.M)
    assert sorted((int(c), int(p)) for c, p in cnts) == [
        (1, ports[0]),
        (2, ports[1]),
        (3, ports[0]),
        (4, ports[1]),
        (5, ports[0]),
    ]
    assert "Received 5 heaps (0 incomplete)" in received.stdout


def test_max_heaps_stops_early() -> None:
    port = free_udp_port()
    recv_out, _ = _send_recv(
        ["--max-heaps", "3", "--quiet", str(port)],
        ["--heaps", "6", "--heap-size", "1000", _ep(port)],
        port,
        "udp",
    )
    assert stream_heaps(recv_out) == {str(port): 3}
    assert "Received heap" not in recv_out  # --quiet
    assert "Received 3 heaps (0 incomplete), 3000 bytes in" in recv_out


def test_joint_stream_counts_all_sources() -> None:
    ports = [free_udp_port(), free_udp_port()]
    with Tool(our_argv("recv", "--joint", "-q", *map(str, ports))) as receiver:
        for port in ports:
            receiver.wait_bound(port, "udp")
        # Both destinations feed one stream, which ends at the first end heap it reads: that
        # one follows at least the data heaps sent to the same port (1, 3 and 5).
        sent = run(our_argv("send", "--heaps", "6", "--heap-size", "256", *map(_ep, ports)))
        assert sent.returncode == 0, sent.stderr
        received = receiver.finish()
    assert received.returncode == 0, received.stderr
    heaps = stream_heaps(received.stdout)
    assert list(heaps) == [str(ports[0])]
    assert stat_values(received.stdout, "heaps") == list(heaps.values())
    assert 3 <= heaps[str(ports[0])] <= 6


def test_progress_reports_and_sigint_summary() -> None:
    port = free_udp_port()
    argv = our_argv("recv", "-q", "--progress", "--interval", "0.05", str(port))
    with Tool(argv) as receiver:
        receiver.wait_bound(port, "udp")
        # 40 heaps of 10 kB at 0.008 Gb/s (1 MB/s) take at least 0.3 s: several intervals.
        # They go to another port, so the receiver sees nothing until it is interrupted.
        sent = run(
            our_argv(
                "send",
                "--progress",
                "--interval",
                "0.05",
                "--heaps",
                "40",
                "--heap-size",
                "10000",
                "--rate",
                "0.008",
                "--max-heaps",
                "1",
                _ep(free_udp_port()),
            )
        )
        assert sent.returncode == 0, sent.stderr
        assert re.search(r"^sent: \d+ heaps, [\d.]+ heaps/s, [\d.]+ Gb/s$", sent.stderr, re.M)
        receiver.proc.send_signal(signal.SIGINT)
        received = receiver.finish()
    assert received.returncode == 0, received.stderr
    assert re.search(
        r"^received: 0 heaps, 0\.0 heaps/s, 0\.000 Gb/s, 0 incomplete$", received.stderr, re.M
    )
    assert stream_heaps(received.stdout) == {str(port): 0}
    assert "Received 0 heaps (0 incomplete)" in received.stdout


def test_recv_progress_counts_heaps() -> None:
    port = free_udp_port()
    argv = our_argv("recv", "-q", "--progress", "--interval", "0.05", str(port))
    with Tool(argv) as receiver:
        receiver.wait_bound(port, "udp")
        sent = run(
            our_argv(
                "send",
                "--heaps",
                "40",
                "--heap-size",
                "10000",
                "--rate",
                "0.008",
                "--max-heaps",
                "1",
                _ep(port),
            )
        )
        assert sent.returncode == 0, sent.stderr
        received = receiver.finish()
    assert received.returncode == 0, received.stderr
    totals = [
        int(n)
        for n in re.findall(
            r"^received: (\d+) heaps, [\d.]+ heaps/s, [\d.]+ Gb/s, "
            r"0 incomplete$",
            received.stderr,
            re.M,
        )
    ]
    assert totals, received.stderr
    assert totals == sorted(totals) and totals[-1] <= 40
    assert stream_heaps(received.stdout) == {str(port): 40}


# ------------------------------------------------------------------ interop with spead2 4.5.1


SEND_SHAPE = [
    "--heaps",
    "7",
    "--heap-size",
    "4096",
    "--items",
    "3",
    "--dtype",
    "<i2",
    "--descriptors",
    "3",
]


@pytest.mark.parametrize("kind", ["udp", "tcp"])
@pytest.mark.parametrize("sender", ["ours", "real"])
def test_interop_with_real_tools(kind: str, sender: str) -> None:
    """Our spead2_send.py to the real spead2_recv.py, and the real sender to ours."""
    port = free_udp_port() if kind == "udp" else free_tcp_port()
    tcp = ["--tcp"] if kind == "tcp" else []
    send_argv, recv_argv = (our_argv, peer_argv) if sender == "ours" else (peer_argv, our_argv)
    with Tool(recv_argv("recv", *tcp, "--descriptors", _ep(port))) as receiver:
        receiver.wait_bound(port, kind)
        sent = run(send_argv("send", *tcp, *SEND_SHAPE, _ep(port)))
        assert sent.returncode == 0, sent.stderr
        received = receiver.finish()
    assert received.returncode == 0, received.stderr
    assert stream_heaps(received.stdout) == {_ep(port): 7}
    assert stat_values(received.stdout, "heaps") == [7]
    # Descriptors at heaps 1, 4 and 7 (every third heap), three items each.
    assert received.stdout.count("Descriptor for Test item") == 9
    if sender == "ours":
        assert received.stdout.count("Test item 2\n") == 7
    else:
        # 4096 bytes do not split into 3 items of <i2: each heap carries 3 x 682 x 2 bytes.
        assert "Received 7 heaps (0 incomplete), 28644 bytes in" in received.stdout


def test_same_heaps_and_output_as_real_tools() -> None:
    """Our sender puts exactly as many bytes on the wire as the real one for the same options,
    and our receiver prints the same per-heap lines as the real one for the same input."""
    shape = [
        "--heaps",
        "4",
        "--heap-size",
        "48",
        "--items",
        "2",
        "--dtype",
        ">u2",
        "--descriptors",
        "2",
        "--addr-bits",
        "48",
    ]
    outputs = []
    sizes = []
    for make_recv, make_send in [(our_argv, peer_argv), (peer_argv, our_argv)]:
        port = free_udp_port()
        with Tool(make_recv("recv", "--values", "--descriptors", str(port))) as receiver:
            receiver.wait_bound(port, "udp")
            sent = run(make_send("send", *shape, _ep(port)))
            assert sent.returncode == 0, sent.stderr
            received = receiver.finish()
        assert received.returncode == 0, received.stderr
        sizes.append(sent_bytes(sent.stdout))
        outputs.append([line.replace(str(port), "PORT") for line in heap_lines(received.stdout)])
    assert sizes[0] == sizes[1]
    assert outputs[0] == outputs[1]
    assert outputs[0][0] == "Received heap 1 on stream PORT"
    assert "Test item 1 = [0 0 0 0 0 0 0 0 0 0 0 0]" in outputs[0]


def test_pcap_file_same_counts_as_real_recv(tmp_path: Path) -> None:
    """Datagrams from our sender, captured into a pcap file, read by both receivers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind((LOOPBACK, 0))
        sink.settimeout(10)
        port = sink.getsockname()[1]
        sent = run(our_argv("send", "--heaps", "5", "--heap-size", "3000", _ep(port)))
        assert sent.returncode == 0, sent.stderr
        datagrams = []
        total = 0
        while total < sent_bytes(sent.stdout):
            payload, src = sink.recvfrom(65536)
            total += len(payload)
            datagrams.append(Datagram(src, (LOOPBACK, port), payload))
    capture = write_pcap(tmp_path / "heaps.pcap", frames_from_datagrams(datagrams))
    for make in (our_argv, peer_argv):
        result = run(make("recv", str(capture)))
        assert result.returncode == 0, result.stderr
        assert stream_heaps(result.stdout) == {str(capture): 5}
        assert stat_values(result.stdout, "packets") == [len(datagrams)]


# ----------------------------------------------------------------------------------- bench


def test_bench_master_and_agent_search() -> None:
    port = free_tcp_port()
    with Tool(our_argv("bench", "agent", str(port))) as agent:
        agent.wait_bound(port, "tcp")
        result = run(
            our_argv(
                "bench",
                "master",
                "--heap-size",
                "16384",
                "--time",
                "0.05",
                "--steps",
                "3",
                "--recv-buffer",
                "1048576",
                _ep(port),
            ),
            timeout=60,
        )
        assert agent.proc.poll() is None  # the agent keeps serving after the master leaves
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"Send rate: [\d.]+ Gbps", lines[0])
    verdicts = [
        re.fullmatch(r"Rate: ([\d.]+) Gbps \([\d.]+ actual\): (GOOD|BAD)", line)
        for line in lines[1:-1]
    ]
    assert len(verdicts) == 3 and all(verdicts)
    assert re.fullmatch(r"Sustainable rate: [\d.]+ Gbps", lines[-1])
    # Binary search: each rate is the midpoint between the best GOOD and the lowest BAD so far.
    limit = float(lines[0].split()[2])
    low, high = 0.0, limit
    for match in verdicts:
        assert match is not None
        rate = float(match.group(1))
        assert rate == pytest.approx((low + high) / 2, abs=2e-3)
        low, high = (rate, high) if match.group(2) == "GOOD" else (low, rate)


def test_bench_quiet_and_unreachable_agent() -> None:
    port = free_tcp_port()
    result = run(our_argv("bench", "master", "--quiet", _ep(port)))
    assert result.returncode == 1
    assert f"cannot connect to agent at {_ep(port)}" in result.stderr
    with Tool(our_argv("bench", "agent", str(port))) as agent:
        agent.wait_bound(port, "tcp")
        result = run(
            our_argv(
                "bench",
                "master",
                "--quiet",
                "--heap-size",
                "8192",
                "--time",
                "0.05",
                "--steps",
                "1",
                _ep(port),
            )
        )
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"Sustainable rate: [\d.]+ Gbps\n", result.stdout)
