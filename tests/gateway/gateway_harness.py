"""Run the real gateway daemon as a subprocess for tests.

The daemon is started with ``python -m spead2_gateway --config ... --ready-file ...`` on
loopback: gRPC and metrics on port 0 (the ready file says which ports were bound), UDP/TCP
receive ports chosen free by the caller. Every wait is bounded in time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import grpc
import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICE_DIR = REPO_ROOT / "service"

try:
    import spead2_gateway  # noqa: F401
except ImportError:  # not installed: use the source tree (its dependencies must be installed)
    sys.path.insert(0, str(SERVICE_DIR))

from spead2_gateway.client import (  # noqa: E402
    AsyncGatewayClient,
    GatewayClient,
    ReceivedHeap,
    StreamDetail,
    Subscription,
)

START_TIMEOUT = 30.0


def daemon_env() -> dict[str, str]:
    """Environment of the daemon: our spead2 and the gateway importable, unbuffered output."""
    env = dict(os.environ)
    paths = [str(SERVICE_DIR), str(REPO_ROOT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.02
) -> None:
    """Polls ``predicate`` until true; fails with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


class Daemon:
    """A ``spead2-gateway`` process with a given configuration."""

    def __init__(
        self,
        workdir: Path,
        config: str,
        *args: str,
        name: str = "gateway",
        env: dict[str, str] | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / f"{name}.toml"
        self.config_path.write_text(config, encoding="utf-8")
        self.ready_path = workdir / f"{name}.ready.json"
        self.log_path = workdir / f"{name}.log"
        self.ready_path.unlink(missing_ok=True)
        self._log = self.log_path.open("wb")
        self.argv = [
            sys.executable,
            "-m",
            "spead2_gateway",
            "--config",
            str(self.config_path),
            "--ready-file",
            str(self.ready_path),
            *args,
        ]
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env={**daemon_env(), **(env or {})},
        )
        self.info: dict[str, Any] = {}

    @property
    def target(self) -> str:
        """The gRPC ``host:port``."""
        return str(self.info["grpc"])

    @property
    def metrics_url(self) -> str:
        """The Prometheus endpoint."""
        return f"http://{self.info['metrics']}/metrics"

    def log(self) -> str:
        """Everything the daemon wrote so far."""
        self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = START_TIMEOUT) -> Daemon:
        """Waits for the ready file and for health SERVING."""
        deadline = time.monotonic() + timeout
        while not self.ready_path.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"daemon not ready after {timeout} s:\n{self.log()}")
            time.sleep(0.02)
        self.info = json.loads(self.ready_path.read_text(encoding="utf-8"))
        # A private subchannel: one shared with a channel to a previous daemon on the same
        # address may still be waiting out its reconnection backoff.
        with self.client(options=[("grpc.use_local_subchannel_pool", 1)]) as client:
            wait_until(lambda: client.health() == "SERVING", timeout, "health SERVING")
        return self

    def client(self, **kwargs: Any) -> GatewayClient:
        """A synchronous client of this daemon."""
        return GatewayClient(self.target, **kwargs)

    def scrape(self) -> str:
        """The metrics text."""
        with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
            return str(response.read().decode())

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit status (kills and fails after ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"daemon still running {timeout} s after SIGTERM:\n{self.log()}"
            ) from None

    def wait_exit(self, timeout: float) -> int:
        """The exit status of a daemon expected to stop by itself."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"daemon did not exit within {timeout} s:\n{self.log()}") from None

    def close(self) -> None:
        """Kills the process if it is still running."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()

    def __enter__(self) -> Daemon:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format, or None if absent."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, label_text = series.partition("{")
        if metric != name:
            continue
        found = dict(
            part.split("=", 1) for part in label_text.rstrip("}").split(",") if "=" in part
        )
        found = {k: v.strip('"') for k, v in found.items()}
        if all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return None


# ------------------------------------------------------------------------------------------
# Senders, subscribers and threads

UDP_RATE = 50e6
"""Bytes per second for UDP senders: far below what loopback carries, so nothing is lost."""


def udp_sender(spead2: ModuleType, port: int, rate: float = UDP_RATE, packet: int = 1472) -> Any:
    """Our spead2 UDP send stream to 127.0.0.1:``port``."""
    config = spead2.send.StreamConfig(rate=rate, max_packet_size=packet, max_heaps=8)
    return spead2.send.UdpStream(spead2.ThreadPool(), [("127.0.0.1", port)], config)


def collect(
    sub: Subscription, ends: int, timeout: float, count: int | None = None
) -> list[ReceivedHeap]:
    """Heaps from a sync subscription until ``ends`` end-of-stream heaps or ``count`` heaps
    (bounded in time)."""
    heaps: list[ReceivedHeap] = []
    timer = threading.Timer(timeout, sub.cancel)
    timer.start()
    try:
        for heap in sub:
            heaps.append(heap)
            if sum(h.end_of_stream for h in heaps) >= ends or len(heaps) == count:
                break
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.CANCELLED:  # type: ignore[attr-defined]
            raise AssertionError(f"timed out after {timeout} s with {len(heaps)} heaps") from None
        raise
    finally:
        timer.cancel()
        sub.cancel()
    return heaps


class AsyncCollector:
    """An asyncio subscriber in its own thread and event loop, collecting heaps."""

    def __init__(self, target: str, stream: str, ends: int, timeout: float, **kwargs: Any) -> None:
        self.heaps: list[ReceivedHeap] = []
        self.error: BaseException | None = None
        self._args = (target, stream, ends, timeout, kwargs)
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported by result()
            self.error = exc

    async def _run(self) -> None:
        target, stream, ends, timeout, kwargs = self._args
        async with AsyncGatewayClient(target) as client:

            async def read() -> None:
                async for heap in client.subscribe(stream, **kwargs):
                    self.heaps.append(heap)
                    if sum(h.end_of_stream for h in self.heaps) >= ends:
                        return

            await asyncio.wait_for(read(), timeout)

    def result(self, timeout: float) -> list[ReceivedHeap]:
        """The heaps, once the collector has finished."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "async collector did not finish"
        if self.error is not None:
            raise AssertionError(f"async collector failed: {self.error!r}") from self.error
        return self.heaps


def as_catalogue_received(
    catalogue: ModuleType, heaps: list[ReceivedHeap], detail: StreamDetail
) -> Any:
    """Our heaps as the catalogue's ``Received`` record (spead2 presentation of values)."""
    received = catalogue.Received()
    for heap in heaps:
        values = {name: item.spead2_value() for name, item in heap.items.items()}
        received.heaps.append(
            catalogue.ReceivedHeap(heap.cnt, heap.start_of_stream, heap.end_of_stream, values)
        )
    received.descriptors = {
        d.name: {
            "id": d.id,
            "description": d.description,
            "shape": d.shape,
            "order": d.order,
            "format": d.format,
            "dtype": d.dtype,
        }
        for d in detail.descriptors
    }
    return received


def wait_subscribers(client: GatewayClient, stream: str, count: int) -> None:
    """Until the gateway reports ``count`` subscribers on ``stream``."""
    wait_until(
        lambda: client.get_stream(stream).info.subscribers == count,
        10.0,
        f"{count} subscribers on {stream}",
    )


def payload(index: int, size: int) -> np.ndarray:
    """Deterministic bytes for heap ``index``."""
    return ((np.arange(size, dtype=np.uint64) * (index + 7) + index) % 251).astype(np.uint8)


def run_threads(*targets: Callable[[], Any], timeout: float = 90.0) -> list[Any]:
    """Runs callables in threads; returns their results (re-raising the first failure)."""
    results: list[Any] = [None] * len(targets)
    errors: list[BaseException] = []

    def wrap(i: int, fn: Callable[[], Any]) -> None:
        try:
            results[i] = fn()
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=wrap, args=(i, t), daemon=True) for i, t in enumerate(targets)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(deadline - time.monotonic(), 0))
    assert not any(t.is_alive() for t in threads), "threads still running"
    if errors:
        raise errors[0]
    return results
