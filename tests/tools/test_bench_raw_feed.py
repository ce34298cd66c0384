"""The gateway suite's raw input: bench/workloads/raw_feed.py and gateway_bare.py's sink.

The input bound compares what the bare server sends with what a paced raw transfer carried
into a thread of it in the same span, so the feed must keep to its schedule (never faster,
skipped slots counted), end cleanly on SIGTERM whenever it comes (that is how the runner
stops it), and the sink must stamp every block it reads. Blocks are small and no figure
here is a timing.
"""

from __future__ import annotations

import array
import itertools
import json
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

WORKLOADS = Path(__file__).resolve().parents[2] / "bench" / "workloads"
BLOCK = 4096


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; killed if the test ends without finishing them."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


class Counter:
    """A TCP listener that counts the bytes of one connection, in a thread."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(60)
        self.port = self.listener.getsockname()[1]
        self.received = 0
        self.thread = threading.Thread(target=self._count, daemon=True)
        self.thread.start()

    def _count(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            while data := conn.recv(1 << 16):
                self.received += len(data)

    def blocks(self) -> float:
        self.thread.join(60)
        self.listener.close()
        return self.received / BLOCK


def start_feed(procs: list[subprocess.Popen[str]], port: int, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, str(WORKLOADS / "raw_feed.py"), "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--heap-size", str(BLOCK), *args],
        cwd=WORKLOADS,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    procs.append(proc)
    return proc


def result(proc: subprocess.Popen[str]) -> dict:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return json.loads(out.splitlines()[-1])


def test_paced_feed_keeps_its_schedule(procs: list[subprocess.Popen[str]]) -> None:
    counter = Counter()
    fed = result(start_feed(procs, counter.port, "--rate", "100", "--seconds", "0.25"))
    # Slots at 0, 0.01, ..., 0.24 s: each sent on time or skipped, none made up later.
    assert fed["heaps"] + fed["skipped"] == 25
    assert fed["heaps"] >= 1
    assert counter.blocks() == fed["heaps"]


def test_sigterm_ends_the_feed_cleanly(procs: list[subprocess.Popen[str]]) -> None:
    counter = Counter()
    feed = start_feed(procs, counter.port, "--rate", "50", "--seconds", "600")
    assert feed.stderr is not None
    assert feed.stderr.readline() == "feeding\n"  # connected, SIGTERM blocked since start
    feed.send_signal(signal.SIGTERM)
    fed = result(feed)
    assert fed["heaps"] < 600 * 50
    assert counter.blocks() == fed["heaps"]


def test_unpaced_feed_sends_exactly_heaps_blocks(procs: list[subprocess.Popen[str]]) -> None:
    counter = Counter()
    assert result(start_feed(procs, counter.port, "--heaps", "300"))["heaps"] == 300
    assert counter.blocks() == 300


def test_feed_wants_heaps_or_a_rate(procs: list[subprocess.Popen[str]]) -> None:
    for args in ([], ["--heaps", "3", "--rate", "10", "--seconds", "1"]):
        proc = start_feed(procs, 1, *args)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2
        assert "give either --heaps or --rate and --seconds" in err


def test_bare_server_sink_stamps_every_block(
    procs: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    stamps = tmp_path / "stamps.bin"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        sink_port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, str(WORKLOADS / "gateway_bare.py"), "--heap-size", str(BLOCK)]
        + ["--heaps", "1", "--sink-port", str(sink_port), "--sink-stamps", str(stamps)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    procs.append(server)
    assert server.stdout is not None
    assert server.stdout.readline().startswith("READY ")
    fed = result(start_feed(procs, sink_port, "--heaps", "40"))
    assert fed["heaps"] == 40
    server.send_signal(signal.SIGTERM)
    _, err = server.communicate(timeout=120)
    assert server.returncode == 0, err
    arrivals = array.array("q")
    arrivals.frombytes(stamps.read_bytes())
    assert len(arrivals) == 40
    assert list(arrivals) == sorted(arrivals)


def test_bare_server_sink_options_go_together(tmp_path: Path) -> None:
    base = [sys.executable, str(WORKLOADS / "gateway_bare.py"), "--heap-size", "4096"]
    for extra in (
        ["--sink-port", "9"],
        ["--sink-port", "9", "--sink-stamps", "x", "--relay-port", "8"],
    ):
        proc = subprocess.run(
            [*base, "--heaps", "1", *extra],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2
        assert "--sink-port needs --sink-stamps and excludes --relay-port" in proc.stderr


class FakeClock:
    """Time that moves only when the feed waits or sends (each send takes ``send_time``)."""

    def __init__(self, send_time: float) -> None:
        self.now = 0.0
        self.send_time = send_time
        self.sends: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sigtimedwait(self, _signals: object, timeout: float) -> None:
        self.now += timeout

    def sendall(self, _data: bytes) -> None:
        self.sends.append(self.now)
        self.now += self.send_time


@pytest.mark.parametrize(("send_time", "sent"), [(0.001, 25), (0.035, 8)])
def test_a_late_feed_skips_slots_instead_of_catching_up(
    monkeypatch: pytest.MonkeyPatch, send_time: float, sent: int
) -> None:
    sys.path.insert(0, str(WORKLOADS))
    try:
        import raw_feed
    finally:
        sys.path.remove(str(WORKLOADS))
    clock = FakeClock(send_time)
    monkeypatch.setattr(raw_feed.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(raw_feed.signal, "sigtimedwait", clock.sigtimedwait)
    got = raw_feed._paced(clock, b"", rate=100, seconds=0.25)  # type: ignore[arg-type]
    assert got == (sent, 25 - sent)
    # Slots 0, 3, 7, 10, 14, 17, 21, 24 when each send takes 3.5 periods; never two sends
    # closer than one period.
    assert all(b - a >= 0.01 - 1e-9 for a, b in itertools.pairwise(clock.sends))
