"""bench/workloads/raw_feed.py and raw_sink.py: the gateway suite's input floor and bound.

The input bound divides what the bare server delivers by what this pair carried, so the
counts on both ends must agree, the paced feed must send exactly its schedule, and SIGTERM
(how the runner ends it) must still produce its figures. Blocks are small: no timing here.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

WORKLOADS = Path(__file__).resolve().parents[2] / "bench" / "workloads"
BLOCK = 4096


def start_sink() -> tuple[subprocess.Popen[str], int]:
    sink = subprocess.Popen(
        [sys.executable, str(WORKLOADS / "raw_sink.py"), "--heap-size", str(BLOCK)],
        cwd=WORKLOADS,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sink.stdout is not None
    ready = sink.stdout.readline().split()
    assert ready[0] == "READY"
    return sink, int(ready[1])


def feed(port: int, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, str(WORKLOADS / "raw_feed.py"), "--port", str(port)]
    return subprocess.Popen(
        [*cmd, "--heap-size", str(BLOCK), *args],
        cwd=WORKLOADS,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def result(proc: subprocess.Popen[str]) -> dict:
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    return json.loads(out.splitlines()[-1])


def test_paced_feed_sends_its_schedule_and_the_sink_counts_every_block() -> None:
    sink, port = start_sink()
    fed = result(feed(port, "--rate", "100", "--seconds", "0.25"))
    sunk = result(sink)
    assert fed["heaps"] == 25  # due at 0, 0.01, ..., 0.24 s
    assert sunk["heaps"] == 25
    assert 0 < fed["heaps_per_s"] <= 100 * 1.05


def test_sigterm_ends_the_feed_with_its_figures() -> None:
    sink, port = start_sink()
    proc = feed(port, "--rate", "50", "--seconds", "600")
    time.sleep(1.0)  # started, and sent a few blocks
    proc.send_signal(signal.SIGTERM)
    fed = result(proc)
    sunk = result(sink)
    assert 1 <= fed["heaps"] < 600 * 50
    assert sunk["heaps"] == fed["heaps"]


def test_unpaced_feed_sends_exactly_heaps_blocks() -> None:
    sink, port = start_sink()
    fed = result(feed(port, "--heaps", "300"))
    assert fed["heaps"] == 300
    assert result(sink)["heaps"] == 300


def test_feed_wants_heaps_or_a_rate() -> None:
    for args in ([], ["--heaps", "3", "--rate", "10", "--seconds", "1"]):
        proc = feed(1, *args)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 2
        assert "give either --heaps or --rate and --seconds" in err
