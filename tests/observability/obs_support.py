"""Shared helpers for the observability tests: a daemon that exports every metric family,
a real Prometheus server scraping it, and metric-name extraction from PromQL.

Import paths: ``tests/`` (for ``util``) and ``tests/gateway`` (for ``gateway_harness``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

TESTS_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = TESTS_DIR.parent
for extra in (TESTS_DIR, TESTS_DIR / "gateway"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from gateway_harness import wait_until  # noqa: E402
from util.ports import free_tcp_port  # noqa: E402

PROMETHEUS = shutil.which("prometheus")
PROMETHEUS_MISSING = (
    "the prometheus binary is not on PATH (Debian: apt-get install prometheus); "
    "it is needed to scrape the daemon with a real Prometheus server"
)
RING_HEAPS = 32


def gateway_config(udp_port: int, send_port: int) -> str:
    """A receive stream ``beam`` (with a memory pool) and a send stream ``tx``."""
    return f"""
[server]
listen = "127.0.0.1:0"
grace_period = 3.0

[metrics]
listen = "127.0.0.1:0"

[[receive.streams]]
name = "beam"
transport = "udp"
host = "127.0.0.1"
port = {udp_port}
max_heaps = 2
ring_heaps = {RING_HEAPS}
contiguous_only = false

[receive.streams.memory_pool]
lower = 0
upper = 65536
max_free = 8
initial = 4

[[send.streams]]
name = "tx"
transport = "udp"
destinations = ["127.0.0.1:{send_port}"]
rate = 50e6
"""


class PrometheusServer:
    """A real Prometheus scraping ``target`` every 0.2 s, on a free loopback port."""

    def __init__(self, workdir: Path, target: str) -> None:
        assert PROMETHEUS is not None, PROMETHEUS_MISSING
        self.port = free_tcp_port()
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n"
            "  scrape_interval: 200ms\n"
            "  scrape_timeout: 150ms\n"
            "scrape_configs:\n"
            "  - job_name: spead2-gateway\n"
            f"    static_configs: [{{targets: ['{target}']}}]\n",
            encoding="utf-8",
        )
        self._log = (workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.log_path = workdir / "prometheus.log"
        wait_until(self._ready, 60.0, "Prometheus to become ready", step=0.2)

    def _ready(self) -> bool:
        assert self.proc.poll() is None, self.log_path.read_text(errors="replace")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result vector of an instant query."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": promql}
        )
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def value(self, promql: str) -> float | None:
        """The single value of an instant query, or None if the result is empty."""
        result = self.query(promql)
        if not result:
            return None
        assert len(result) == 1, result
        return float(result[0]["value"][1])

    def wait_value(self, promql: str, expected: float, timeout: float = 30.0) -> None:
        """Waits until the query returns ``expected``; fails with the last value seen."""
        deadline = time.monotonic() + timeout
        last: float | None = None
        while time.monotonic() < deadline:
            last = self.value(promql)
            if last == expected:
                return
            time.sleep(0.2)
        raise AssertionError(f"{promql}: expected {expected}, last value {last}")

    def close(self) -> None:
        """Stops Prometheus."""
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def exported_names(text: str) -> set[str]:
    """Metric family names in Prometheus text format, with the sample suffixes of
    histograms (``_bucket``, ``_sum``, ``_count``) and counters (``_total``)."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_BLOCK = re.compile(r"\{[^}]*\}")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_RANGE = re.compile(r"\[[^\]]*\]")


def promql_metric_names(expr: str, prefixes: tuple[str, ...]) -> set[str]:
    """Identifiers in a PromQL expression that start with one of ``prefixes`` (label
    matchers, strings and range selectors removed first, so label names do not count)."""
    stripped = _STRING.sub(" ", expr)
    stripped = _LABEL_BLOCK.sub(" ", stripped)
    stripped = _RANGE.sub(" ", stripped)
    return {m for m in _IDENT.findall(stripped) if m.startswith(prefixes)}
