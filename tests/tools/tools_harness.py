"""Run the command-line tools (ours and the real spead2 4.5.1 ones) as subprocesses.

Readiness is taken from the kernel rather than from timing: a receiver is ready once its port
shows up in /proc/net (UDP bound, or TCP listening), because from then on datagrams and
connections queue in the socket even before the tool reads them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from util.peer import ensure_peer_python, peer_env

REPO_ROOT = Path(__file__).resolve().parents[2]
OUR_MODULES = {
    "send": "spead2.tools.send_asyncio",
    "recv": "spead2.tools.recv_asyncio",
    "bench": "spead2.tools.bench_asyncio",
}
PEER_SCRIPTS = {"send": "spead2_send.py", "recv": "spead2_recv.py", "bench": "spead2_bench.py"}
RUN_TIMEOUT = 30.0
READY_TIMEOUT = 15.0
TCP_LISTEN = "0A"


def our_argv(tool: str, *args: str) -> list[str]:
    """Command line for one of our tools."""
    return [sys.executable, "-m", OUR_MODULES[tool], *args]


def peer_argv(tool: str, *args: str) -> list[str]:
    """Command line for the real spead2 4.5.1 tool of the same name."""
    python = ensure_peer_python()
    return [str(python), str(python.parent / PEER_SCRIPTS[tool]), *args]


def _env(argv: list[str]) -> dict[str, str]:
    if argv[0] == sys.executable:
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        return env
    return peer_env()


def _cwd(argv: list[str]) -> str:
    # The peer must not see our source tree on its path.
    return str(REPO_ROOT) if argv[0] == sys.executable else "/tmp"


@dataclass
class Result:
    """A finished tool run."""

    returncode: int
    stdout: str
    stderr: str


def run(argv: list[str], timeout: float = RUN_TIMEOUT) -> Result:
    """Runs a tool to completion."""
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=_env(argv), cwd=_cwd(argv)
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


class Tool:
    """A tool running in the background (a context manager that kills it on exit)."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(argv),
            cwd=_cwd(argv),
        )

    def __enter__(self) -> Tool:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()

    def wait_bound(self, port: int, kind: str) -> None:
        """Waits until the tool has bound UDP ``port`` or listens on TCP ``port``."""
        deadline = time.monotonic() + READY_TIMEOUT
        while not port_in_use(port, kind):
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise AssertionError(f"{self.argv} exited early:\n{out}\n{err}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.argv} did not bind {kind} port {port}")
            time.sleep(0.02)

    def finish(self, timeout: float = RUN_TIMEOUT) -> Result:
        """Waits for the tool to exit on its own."""
        out, err = self.proc.communicate(timeout=timeout)
        return Result(self.proc.returncode, out, err)


def port_in_use(port: int, kind: str) -> bool:
    """True if a UDP socket is bound to ``port`` (kind "udp") or a TCP socket listens on it."""
    for table in (f"/proc/net/{kind}", f"/proc/net/{kind}6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and (kind == "udp" or fields[3] == TCP_LISTEN):
                return True
    return False


def stream_heaps(stdout: str) -> dict[str, int]:
    """``{stream name: heaps}`` from the "Shutting down stream X after N heaps" lines."""
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^Shutting down stream (\S+) after (\d+) heaps$", stdout, re.M)
    }


def stat_values(stdout: str, name: str) -> list[int]:
    """Every value printed for statistic ``name`` (one per stream)."""
    return [int(v) for v in re.findall(rf"^{name}: (\d+)$", stdout, re.M)]


def sent_bytes(stdout: str) -> int:
    """The byte count of a send tool's "Sent N bytes in ..." line."""
    match = re.search(r"^Sent (\d+) bytes in ", stdout, re.M)
    assert match, stdout
    return int(match.group(1))


def heap_lines(stdout: str) -> list[str]:
    """The per-heap part of a receive tool's output (everything before the statistics)."""
    keep = []
    for line in stdout.splitlines():
        if line.startswith("Shutting down stream"):
            break
        keep.append(line)
    return keep
