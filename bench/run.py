#!/usr/bin/env python3
"""Side-by-side benchmarks: our spead2 against the reference spead2 4.5.1.

Every workload in bench/workloads/ is a plain spead2-API script. This runner executes each one
as a subprocess with both interpreters, alternating (ours, peer, ours, peer, ...) for --rounds
rounds, and prints the medians and the median of the per-round ratios ours/peer. It prints
figures only: nothing here asserts on timing.

    python bench/run.py [all|recv|send|udp|rate|memory ...] [--ours PY] [--peer PY] [--rounds N]

The ``gateway`` suite (not part of ``all``) is different: it measures the gRPC gateway daemon
against a bare grpcio server, both with our interpreter (which needs ``spead2_gateway`` too):

    python bench/run.py gateway --ours PY [--rounds N] [--gateway-clients py,go]

Only the standard library is needed to run this file; the workloads need numpy and spead2.
"""

from __future__ import annotations

import argparse
import array
import bisect
import json
import math
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
WORKLOADS = BENCH_DIR / "workloads"
SUITES = ("recv", "send", "udp", "rate", "memory")
EXTRA_SUITES = ("gateway",)  # run only when named
MiB = 1 << 20
KiB = 1 << 10

Result = dict[str, Any]


class WorkloadError(RuntimeError):
    pass


# ---------------------------------------------------------------------------------------------
# Running workloads


@dataclass
class Env:
    ours: str
    peer: str
    workdir: Path
    rounds: int
    verbose: bool
    raw: list[dict[str, Any]] = field(default_factory=list)

    def python(self, lib: str) -> str:
        return self.ours if lib == "ours" else self.peer


def clean_environ() -> dict[str, str]:
    """No PYTHONPATH: a stray path could import the source tree instead of the installed build.

    OpenBLAS (loaded with numpy by both libraries) keeps spinning helper threads that steal a
    core on a small machine; one thread is enough, since no workload does linear algebra.
    """
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # keep bench/workloads free of __pycache__
    return env


def load_average() -> str:
    try:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average unknown"


def parse_result(stdout: str, what: str) -> Result:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise WorkloadError(f"{what}: no JSON result on stdout")
    return json.loads(lines[-1])


def run_workload(
    env: Env, python: str, script: str, args: list[str], timeout: float = 120
) -> Result:
    cmd = [python, str(WORKLOADS / script), *args]
    if env.verbose:
        print("   $", " ".join(cmd), file=sys.stderr)
    try:
        proc = subprocess.run(
            cmd,
            cwd=env.workdir,
            env=clean_environ(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise WorkloadError(f"{script} timed out after {timeout} s") from exc
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        raise WorkloadError(f"{script} exited with {proc.returncode}:\n{tail}")
    return parse_result(proc.stdout, script)


def start_listener(env: Env, python: str, script: str, args: list[str]) -> tuple:
    """Start a receiver workload and wait for its ``READY <port>`` line."""
    proc = spawn(env, [python, str(WORKLOADS / script), *args])
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("READY "):
        proc.kill()
        _, err = proc.communicate()
        raise WorkloadError(f"{script} did not become ready:\n{err[-2000:]}")
    return proc, int(line.split()[1])


def finish_listener(proc: subprocess.Popen, script: str, timeout: float = 60) -> Result:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.communicate()
        raise WorkloadError(f"{script} did not finish") from exc
    if proc.returncode != 0:
        raise WorkloadError(f"{script} exited with {proc.returncode}:\n{err[-2000:]}")
    return parse_result(out, script)


# ---------------------------------------------------------------------------------------------
# Statistics and printing


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def fmt(value: float, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if unit == "%":
        return f"{value * 100:+.2f}%"
    if unit == "frac":
        return f"{value * 100:.1f}%"
    if unit == "MiB":
        return f"{value / MiB:.1f} MiB"
    if abs(value) >= 1000:
        return f"{value:,.0f} {unit}".strip()
    return f"{value:.3g} {unit}".strip()


@dataclass
class Metric:
    key: str  # key in the per-round dict built by the case
    label: str
    unit: str
    ratio: bool = True  # whether ours/peer is a meaningful figure


def print_header(title: str, ours: str = "ours", peer: str = "peer") -> None:
    print(f"\n== {title}  [{load_average()}]")
    print(
        f"   {'case':<44} {'metric':<16} {ours + ' (median)':>16} {peer + ' (median)':>16} "
        f"{ours + '/' + peer:>10}  {'ratio range':>13}"
    )


def report(
    name: str, metrics: list[Metric], rounds: list[tuple[Result | None, Result | None]]
) -> None:
    for metric in metrics:
        pairs = [
            (o.get(metric.key) if o else None, p.get(metric.key) if p else None) for o, p in rounds
        ]
        o = [a for a, _ in pairs if a is not None]
        p = [b for _, b in pairs if b is not None]
        ratios = [a / b for a, b in pairs if a is not None and b] if metric.ratio else []
        ratio = f"{median(ratios):.2f}" if ratios else "-"
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else ""
        print(
            f"   {name:<44} {metric.label:<16} {fmt(median(o), metric.unit):>16} "
            f"{fmt(median(p), metric.unit):>16} {ratio:>10}  {spread:>13}",
            flush=True,
        )
        name = ""


def compare(
    env: Env,
    suite: str,
    name: str,
    metrics: list[Metric],
    run_one: Callable[[str], Result],
    rounds: int | None = None,
) -> list[tuple[Result | None, Result | None]]:
    """Alternate ours/peer for the given rounds, print one block of rows, return the rounds."""
    results: list[tuple[Result | None, Result | None]] = []
    for _ in range(rounds or env.rounds):
        pair: list[Result | None] = []
        for lib in ("ours", "peer"):
            try:
                pair.append(run_one(lib))
            except WorkloadError as exc:
                print(f"   {name}: {lib} failed: {exc}", flush=True)
                pair.append(None)
        results.append((pair[0], pair[1]))
    env.raw.append({"suite": suite, "case": name, "rounds": results})
    report(name, metrics, results)
    return results


# ---------------------------------------------------------------------------------------------
# Suites

# (label, heap size, packet size, heaps in the generated buffer)
RECV_SHAPES = [
    ("1 MiB heaps, 9000 B packets", MiB, 9000, 256),
    ("4 KiB heaps, 1472 B packets", 4 * KiB, 1472, 32768),
]
THROUGHPUT = [Metric("gbps", "payload Gb/s", "Gb/s"), Metric("heaps_per_s", "heaps/s", "/s")]


def run_simple(env: Env, script: str, args: list[str], lib: str) -> Result:
    return run_workload(env, env.python(lib), script, args)


def generated_stream(env: Env, heap_size: int, packet_size: int, heaps: int) -> Path:
    """Generate the input bytes once per run, with the reference library."""
    path = env.workdir / f"stream-{heap_size}-{packet_size}-{heaps}.bin"
    if not path.exists():
        run_workload(
            env,
            env.peer,
            "gen_stream.py",
            [
                "--heap-size",
                str(heap_size),
                "--packet-size",
                str(packet_size),
                "--heaps",
                str(heaps),
                "--descriptors",
                "--out",
                str(path),
            ],
        )
    return path


def suite_recv(env: Env) -> None:
    print_header("recv: Stream.add_buffer_reader of pre-generated bytes (same bytes for both)")
    for mode, note in (("raw", "get heaps only"), ("items", "+ ItemGroup.update")):
        for label, heap_size, packet_size, heaps in RECV_SHAPES:
            path = generated_stream(env, heap_size, packet_size, heaps)
            args = [
                "--file",
                str(path),
                "--heap-size",
                str(heap_size),
                "--mode",
                mode,
                "--min-time",
                "0.4",
            ]
            measured = compare(
                env,
                "recv",
                f"{label}, {note}",
                THROUGHPUT,
                partial(run_simple, env, "recv_buffer.py", args),
            )
            if mode == "raw" and heap_size == MiB:
                memcpy_reference(env, path, heap_size, measured)
                compare(
                    env,
                    "recv",
                    f"{label}, no memory pool",
                    THROUGHPUT,
                    partial(run_simple, env, "recv_buffer.py", [*args, "--no-pool"]),
                )


def memcpy_reference(
    env: Env, path: Path, heap_size: int, measured: list[tuple[Result | None, Result | None]]
) -> None:
    """libc memcpy of the 1 MiB row's payload runs and nothing else, and each library's rate
    in `measured` (that row's rounds) as a share of it (a receiver that only calls memcpy
    cannot pass 100%)."""
    args = ["--file", str(path), "--heap-size", str(heap_size), "--min-time", "0.4"]
    results: list[Result | None] = []
    for _ in range(env.rounds):
        try:
            results.append(run_simple(env, "memcpy_reference.py", args, "peer"))
        except WorkloadError as exc:
            print(f"   memcpy reference failed: {exc}", flush=True)
    reference = median([r["gbps"] for r in results if r])
    ours, peer = (median([r["gbps"] for r in pair if r]) for pair in zip(*measured, strict=True))
    env.raw.append({"suite": "recv", "case": "memcpy reference, 1 MiB", "rounds": results})
    report_single("  libc memcpy of the payloads only", THROUGHPUT[:1], results)
    print(
        f"   {'':<44} ours {ours / reference:.0%} of it, peer {peer / reference:.0%}",
        flush=True,
    )


def suite_send(env: Env) -> None:
    print_header("send: packetise into a BytesStream")
    for mode, note in (("heap", "send_heap loop"), ("heaps", "send_heaps x16")):
        for label, heap_size, packet_size, _ in RECV_SHAPES:
            heaps = 64 if heap_size >= MiB else 4096
            args = [
                "--heap-size",
                str(heap_size),
                "--packet-size",
                str(packet_size),
                "--heaps",
                str(heaps),
                "--mode",
                mode,
                "--min-time",
                "0.4",
            ]
            compare(
                env,
                "send",
                f"{label}, {note}",
                THROUGHPUT,
                partial(run_simple, env, "send_bytes.py", args),
            )


def udp_pair(env: Env, recv_lib: str, send_lib: str, heap_size: int, packet_size: int) -> Result:
    proc, port = start_listener(
        env, env.python(recv_lib), "udp_recv.py", ["--heap-size", str(heap_size), "--timeout", "10"]
    )
    try:
        sent = run_workload(
            env,
            env.python(send_lib),
            "udp_send.py",
            [
                "--port",
                str(port),
                "--heap-size",
                str(heap_size),
                "--packet-size",
                str(packet_size),
                "--duration",
                "1.0",
            ],
            timeout=30,
        )
    except WorkloadError:
        proc.kill()
        proc.communicate()
        raise
    got = finish_listener(proc, "udp_recv.py")
    return {
        "recv_gbps": got["gbps"],
        "send_gbps": sent["gbps"],
        "complete": got["heaps_complete"] / sent["heaps_sent"],
        "sent": sent["heaps_sent"],
        "receiver": got,
    }


def udp_same(env: Env, heap_size: int, packet_size: int, lib: str) -> Result:
    return udp_pair(env, lib, lib, heap_size, packet_size)


def udp_same_load(env: Env, heap_size: int, packet_size: int, lib: str) -> Result:
    """lib receives from the peer's sender: both receivers face the same offered load."""
    return udp_pair(env, lib, "peer", heap_size, packet_size)


def udp_cross(env: Env, heap_size: int, packet_size: int, lib: str) -> Result:
    """lib sends, the other library receives."""
    other = "peer" if lib == "ours" else "ours"
    return udp_pair(env, other, lib, heap_size, packet_size)


UDP_METRICS = [
    Metric("recv_gbps", "recv Gb/s", "Gb/s"),
    Metric("complete", "heaps complete", "frac"),
    Metric("send_gbps", "send Gb/s", "Gb/s"),
]


def suite_udp(env: Env, cross: bool) -> None:
    print_header("udp: loopback, two processes, unlimited rate (ours->ours vs peer->peer)")
    for label, heap_size, packet_size, _ in RECV_SHAPES:
        compare(env, "udp", label, UDP_METRICS, partial(udp_same, env, heap_size, packet_size))
    # Unlimited rate means each sender sets the load, and ours sends over twice as fast, so
    # the rows above do not compare receivers; these do (peer->ours vs peer->peer).
    print_header("udp receivers at the same offered load: the peer's sender into each")
    for label, heap_size, packet_size, _ in RECV_SHAPES:
        compare(
            env,
            "udp-same-load",
            label,
            UDP_METRICS,
            partial(udp_same_load, env, heap_size, packet_size),
        )
    if not cross:
        return
    print_header("udp cross: 'ours' column = ours->peer (we send), 'peer' = peer->ours (we recv)")
    for label, heap_size, packet_size, _ in RECV_SHAPES:
        compare(
            env,
            "udp-cross",
            label,
            UDP_METRICS,
            partial(udp_cross, env, heap_size, packet_size),
            rounds=max(1, env.rounds // 2),
        )


def rate_run(env: Env, gbps: float, packet_size: int, lib: str) -> Result:
    """Send 1 MiB heaps at gbps (0 = unlimited) to a library-neutral socket sink.

    A rate-limited run queues all its heaps in one send_heaps call, so the queue never runs
    dry and the limiter is measured in steady state (both libraries forgive idle time).
    """
    heap_size = MiB
    if gbps:
        heaps = max(16, math.ceil(gbps * 1e9 / 8 * 0.5 / heap_size))  # ~0.5 s of data
        amount = ["--heaps", str(heaps), "--batch", str(heaps)]
    else:
        amount = ["--duration", "0.5", "--batch", "16"]
    proc, port = start_listener(env, sys.executable, "sock_recv.py", ["--idle", "0.5"])
    try:
        sent = run_workload(
            env,
            env.python(lib),
            "udp_send.py",
            [
                "--port",
                str(port),
                "--heap-size",
                str(heap_size),
                "--packet-size",
                str(packet_size),
                "--rate-gbps",
                str(gbps),
                *amount,
                "--no-end",
            ],
            timeout=60,
        )
    except WorkloadError:
        proc.kill()
        proc.communicate()
        raise
    got = finish_listener(proc, "sock_recv.py")
    configured = gbps * 1e9 / 8
    expected_bytes = sent["heaps_sent"] * sent["wire_bytes_per_heap"]
    return {
        "send_gbps": sent["wire_bytes_per_s"] * 8 / 1e9,
        "recv_gbps": got["bytes_per_s"] * 8 / 1e9,
        "send_err": sent["wire_bytes_per_s"] / configured - 1 if gbps else None,
        "recv_err": got["bytes_per_s"] / configured - 1 if gbps else None,
        "loss": 1 - got["bytes"] / expected_bytes,
        "sender": sent,
        "receiver": got,
    }


RATE_METRICS = [
    Metric("send_gbps", "Gb/s @ sender", "Gb/s"),
    Metric("recv_gbps", "Gb/s @ socket", "Gb/s"),
    Metric("send_err", "error @ sender", "%", ratio=False),
    Metric("recv_err", "error @ socket", "%", ratio=False),
    Metric("loss", "bytes lost", "frac", ratio=False),
]


def suite_rate(env: Env) -> None:
    print_header(
        "rate: UDP send rate accuracy, 1 MiB heaps; Gb/s of SPEAD bytes (headers + "
        "payload) vs configured Gb/s*1e9/8; 'unlimited' shows the ceiling"
    )
    for gbps in (1.0, 5.0, 0.0):
        for packet_size in (1472, 8972):
            label = f"{gbps:g} Gb/s" if gbps else "unlimited"
            metrics = RATE_METRICS if gbps else RATE_METRICS[:2] + RATE_METRICS[4:]
            compare(
                env,
                "rate",
                f"{label}, {packet_size} B packets",
                metrics,
                partial(rate_run, env, gbps, packet_size),
            )


# (max_free, initial, ring heaps)
MEMORY_CONFIGS = [(16, 16, 16), (4, 4, 32)]


def memory_run(env: Env, path: Path, max_free: int, initial: int, ring: int, lib: str) -> Result:
    got = run_workload(
        env,
        env.python(lib),
        "memory.py",
        [
            "--file",
            str(path),
            "--heap-size",
            str(MiB),
            "--lower",
            str(MiB),
            "--upper",
            str(MiB),
            "--max-free",
            str(max_free),
            "--initial",
            str(initial),
            "--ring-heaps",
            str(ring),
        ],
    )
    bound = got["pool_bytes"] + got["ring_bytes"]
    return {
        "peak": got["peak_minus_baseline_bytes"],
        "bound": bound,
        "of_bound": got["peak_minus_baseline_bytes"] / bound,
        "raw": got,
    }


MEMORY_METRICS = [
    Metric("peak", "peak RSS added", "MiB"),
    Metric("bound", "pool+ring", "MiB", ratio=False),
    Metric("of_bound", "peak/(pool+ring)", "frac", ratio=False),
]


def suite_memory(env: Env) -> None:
    print_header("memory: peak RSS of a pool-backed ring stream, 256 x 1 MiB heaps from memory")
    path = generated_stream(env, MiB, 9000, 256)
    for max_free, initial, ring in MEMORY_CONFIGS:
        name = f"pool(1M,1M,{max_free},{initial}) ring {ring}"
        compare(
            env,
            "memory",
            name,
            MEMORY_METRICS,
            partial(memory_run, env, path, max_free, initial, ring),
            rounds=max(1, min(env.rounds, 3)),
        )


# ---------------------------------------------------------------------------------------------
# Gateway: the gRPC daemon against a bare grpcio server (run with our interpreter only)

GATEWAY_STREAM = "bench"
GATEWAY_WARMUP = 50  # heaps each subscriber leaves out of its figures
# The daemon's configuration: one receive stream on loopback, everything else default unless
# the runner's options say otherwise. No memory pool (the default): with one, the daemon copies
# each heap out of the pool buffer before queueing it (see Envelope in hub.py).
GATEWAY_TOML = """\
log_level = "warning"

[server]
listen = "127.0.0.1:0"

[metrics]
enabled = false
{subscribe}
[[receive.streams]]
name = "{stream}"
transport = "{transport}"
host = "127.0.0.1"
port = {port}
max_size = {max_size}
buffer_size = {buffer_size}
max_heaps = 4
ring_heaps = 16
{pool}"""
GATEWAY_POOL = """
[receive.streams.memory_pool]
lower = 16384
upper = {upper}
max_free = 32
initial = 16
"""
# Packet size of the sender (and max_size of the receive stream) per transport.
GATEWAY_PACKET = {"udp": (8972, 9200), "tcp": (65536, 65536)}


@dataclass
class GatewayOptions:
    clients: tuple[str, ...]  # "py" and/or "go"
    heaps: int  # data heaps per throughput run
    window: int  # heaps in flight in the closed-loop sender
    latency_rate: float  # heaps/s of the open-loop latency run
    latency_heaps: int
    transport: str = "tcp"  # of the throughput runs (latency runs use UDP)
    fragment_bytes: int = 0  # 0: the daemon's default
    memory_pool: bool = False
    go_binary: Path | None = None


def free_port(transport: str) -> int:
    kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spawn(env: Env, cmd: list[str]) -> subprocess.Popen:
    """Starts cmd in the work directory with the clean environment, its output piped."""
    if env.verbose:
        print("   $", " ".join(cmd), "&", file=sys.stderr)
    return subprocess.Popen(
        cmd,
        cwd=env.workdir,
        env=clean_environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def subscriber_cmd(
    env: Env, opts: GatewayOptions, client: str, target: str, sub_id: int, feedback: int
) -> list[str]:
    args = ["--target", target, "--id", str(sub_id), "--feedback", str(feedback)]
    args += ["--warmup", str(GATEWAY_WARMUP)]
    if client == "go":  # Go's flag package takes --name as well as -name
        assert opts.go_binary is not None
        return [str(opts.go_binary), *args]
    return [env.ours, str(WORKLOADS / "gateway_sub.py"), *args]


def start_daemon(
    env: Env, opts: GatewayOptions, heap_size: int, transport: str
) -> tuple[subprocess.Popen, str, int]:
    """The gateway with one receive stream; returns (process, gRPC target, UDP/TCP port)."""
    port = free_port(transport)
    config = env.workdir / "gateway.toml"
    subscribe = f"\n[subscribe]\nfragment_bytes = {opts.fragment_bytes}\n"
    config.write_text(
        GATEWAY_TOML.format(
            stream=GATEWAY_STREAM,
            subscribe=subscribe if opts.fragment_bytes else "",
            transport=transport,
            port=port,
            max_size=GATEWAY_PACKET[transport][1],
            buffer_size=8 * MiB if transport == "udp" else 4 * MiB,
            pool=GATEWAY_POOL.format(upper=2 * heap_size) if opts.memory_pool else "",
        )
    )
    ready = env.workdir / "gateway.ready"
    ready.unlink(missing_ok=True)
    cmd = [env.ours, "-m", "spead2_gateway", "--config", str(config), "--ready-file", str(ready)]
    if env.verbose:
        print("   $", " ".join(cmd), "&", file=sys.stderr)
    with open(env.workdir / "gateway.log", "a") as log:
        proc = subprocess.Popen(
            cmd, cwd=env.workdir, env=clean_environ(), stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 30
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            kill_all([proc])
            tail = (env.workdir / "gateway.log").read_text()[-2000:]
            raise WorkloadError(f"the gateway did not start:\n{tail}")
        time.sleep(0.05)
    return proc, json.loads(ready.read_text())["grpc"], port


def stop_daemon(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def collect_subscribers(procs: list[subprocess.Popen], timeout: float) -> list[Result]:
    return [finish_listener(proc, "subscriber", timeout) for proc in procs]


def combine(subs: list[Result], sent: int, server_cpu: float) -> Result:
    """Aggregate figures of one run's subscribers (they ran at the same time)."""
    span = (max(s["last_ns"] for s in subs) - min(s["first_ns"] for s in subs)) / 1e9
    delivered = sum(s["received_total"] for s in subs)
    return {
        "gbps": sum(s["payload_bytes"] for s in subs) * 8 / span / 1e9 if span > 0 else None,
        "slowest_gbps": min((s["gbps"] or 0.0) for s in subs),
        "lost": sum(sent - s["received_total"] for s in subs),
        "cpu_ms": server_cpu * 1000 / delivered if delivered else None,
        "client_cpu_ms": median([s["cpu_ms_per_heap"] for s in subs if s["cpu_ms_per_heap"]]),
        "messages_per_heap": subs[0]["messages_per_heap"],
        "subscribers": subs,
    }


def capture_loss(stats: Result) -> int:
    """Heaps the daemon lost before its hub, by its own counters (incomplete, dropped, bad)."""
    counters = stats["counters"]
    return (
        counters.get("incomplete_heaps_evicted", 0)
        + counters.get("incomplete_heaps_flushed", 0)
        + counters.get("decode_errors", 0)
        + sum(stats["drops"].values())
    )


def gateway_run(
    env: Env,
    opts: GatewayOptions,
    heap_size: int,
    subscribers: int,
    client: str,
    sender_args: list[str],
    heaps: int,
    transport: str,
) -> Result:
    """One run through the daemon: sender -> UDP/TCP -> gateway -> gRPC -> subscribers."""
    daemon, target, port = start_daemon(env, opts, heap_size, transport)
    procs: list[subprocess.Popen] = []
    try:
        sender, feedback = start_listener(
            env,
            env.ours,
            "gateway_send.py",
            [
                "--port",
                str(port),
                "--heap-size",
                str(heap_size),
                "--heaps",
                str(heaps),
                "--subscribers",
                str(subscribers),
                "--transport",
                transport,
                "--packet-size",
                str(GATEWAY_PACKET[transport][0]),
                *sender_args,
            ],
        )
        procs.append(sender)
        cpu_before = cpu_seconds(daemon.pid)
        procs += [
            spawn(env, subscriber_cmd(env, opts, client, target, i, feedback))
            for i in range(subscribers)
        ]
        sent = finish_listener(sender, "gateway_send.py", timeout=300)
        subs = collect_subscribers(procs[1:], timeout=60)
        daemon_cpu = cpu_seconds(daemon.pid) - cpu_before
        stats = run_workload(env, env.ours, "gateway_stats.py", ["--target", target])
    finally:
        kill_all(procs)
        stop_daemon(daemon)
    result = combine(subs, sent["heaps_sent"], daemon_cpu)
    result["capture_loss"] = capture_loss(stats)
    result["queue_drops"] = stats["subscriber_dropped_heaps"]
    result["sender_cpu_ms"] = sent["cpu_ms_per_heap"]
    result["stats"] = stats
    result["sender"] = sent
    return result


def bare_run(
    env: Env,
    opts: GatewayOptions,
    heap_size: int,
    subscribers: int,
    client: str,
    relay: bool = False,
    beside_rate: float = 0.0,
) -> Result:
    """The ceiling: a bare grpcio server streaming pre-built messages to the same clients.

    With ``relay``, the input floor instead: the same server relaying each payload from a raw
    TCP feed (``raw_feed.py``), for one subscriber. With ``beside_rate``, the ceiling for the
    input bound: the same server while a raw TCP transfer of that many heaps/s runs into a
    thread of it that discards it (``--sink-port``); ``fed_gbps`` is what the transfer
    carried while the subscribers were being measured, from the thread's arrival stamps.
    """
    feed_port = free_port("tcp") if relay or beside_rate else 0
    stamps = env.workdir / "sink-stamps.bin"
    args = ["--heap-size", str(heap_size), "--heaps", str(opts.heaps)]
    args += ["--subscribers", str(subscribers), "--relay-port", str(feed_port if relay else 0)]
    if beside_rate:
        stamps.unlink(missing_ok=True)  # never a previous run's
        args += ["--sink-port", str(feed_port), "--sink-stamps", str(stamps)]
    if opts.fragment_bytes:
        args += ["--fragment-bytes", str(opts.fragment_bytes)]
    server, port = start_listener(env, env.ours, "gateway_bare.py", args)
    procs = [server]
    try:
        cpu_before = cpu_seconds(server.pid)
        feed = None
        if feed_port:
            feed_args = ["--port", str(feed_port), "--heap-size", str(heap_size)]
            if relay:
                feed_args += ["--heaps", str(opts.heaps)]
            else:  # outlasts the run
                feed_args += ["--rate", f"{beside_rate:.1f}"]
                feed_args += ["--seconds", str(30 + 4 * opts.heaps / beside_rate)]
            feed = spawn(env, [env.ours, str(WORKLOADS / "raw_feed.py"), *feed_args])
            procs.append(feed)
        subs = [
            spawn(env, subscriber_cmd(env, opts, client, f"127.0.0.1:{port}", i, 0))
            for i in range(subscribers)
        ]
        procs += subs
        results = collect_subscribers(subs, timeout=120)
        server_cpu = cpu_seconds(server.pid) - cpu_before
        stop_listener(server)
        if feed is not None and beside_rate:
            feed.send_signal(signal.SIGTERM)
        fed = finish_listener(feed, "raw_feed.py") if feed else None
    finally:
        stop_listener(server)
        kill_all(procs)
    result = combine(results, opts.heaps, server_cpu)
    if fed is not None:
        result["sender_cpu_ms"] = fed["cpu_ms_per_heap"]
    if beside_rate:
        result["fed_gbps"] = carried_gbps(stamps, results, heap_size)
    return result


def stop_listener(server: subprocess.Popen) -> None:
    """SIGTERM, then up to 10 s for it to finish."""
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def carried_gbps(stamps: Path, subs: list[Result], heap_size: int) -> float:
    """Payload Gb/s of the blocks stamped in the subscribers' measured span."""
    if not stamps.exists():
        raise WorkloadError("gateway_bare.py wrote no sink stamps")
    arrivals = array.array("q")
    arrivals.frombytes(stamps.read_bytes())
    first = min(s["first_ns"] for s in subs)
    last = max(s["last_ns"] for s in subs)
    blocks = bisect.bisect_right(arrivals, last) - bisect.bisect_left(arrivals, first)
    return blocks * heap_size * 8 / (last - first) if last > first else math.nan


def gateway_throughput(
    env: Env, opts: GatewayOptions, heap_size: int, subscribers: int, client: str, lib: str
) -> Result:
    """'ours' = through the gateway (closed loop), 'peer' = the bare grpcio ceiling."""
    if lib == "peer":
        return bare_run(env, opts, heap_size, subscribers, client)
    window = ["--window", str(opts.window)]
    return gateway_run(
        env, opts, heap_size, subscribers, client, window, opts.heaps, opts.transport
    )


def floor_throughput(
    env: Env, opts: GatewayOptions, heap_size: int, client: str, lib: str
) -> Result:
    """'ours' = the input floor (raw TCP relayed by the bare server), 'peer' = the ceiling."""
    return bare_run(env, opts, heap_size, 1, client, relay=lib == "ours")


# Fractions of the ceiling at which the input bound paces its raw transfer.
BOUND_FRACTIONS = (0.70, 0.75, 0.80)


def input_bound(env: Env, opts: GatewayOptions, heap_size: int, client: str) -> None:
    """Per round: the ceiling alone, then beside a raw transfer paced at each of
    BOUND_FRACTIONS of that rate. A gateway whose input cost no more than that transfer, and
    its sending no more than the bare server, would deliver at most the lesser of what the
    transfer carried and what the server sent beside it: ``bound``, as a share of the
    ceiling alone."""
    rows: dict[float, list[Result]] = {f: [] for f in BOUND_FRACTIONS}
    alone: list[float] = []
    for _ in range(env.rounds):
        try:
            ceiling = bare_run(env, opts, heap_size, 1, client)["gbps"]
            for fraction in BOUND_FRACTIONS:
                rate = fraction * ceiling * 1e9 / 8 / heap_size
                got = bare_run(env, opts, heap_size, 1, client, beside_rate=rate)
                got["fed_share"] = got["fed_gbps"] / ceiling
                got["out_share"] = got["gbps"] / ceiling
                got["bound"] = min(got["fed_share"], got["out_share"])
                rows[fraction].append(got)
            alone.append(ceiling)
        except WorkloadError as exc:
            print(f"   input bound, {client} client: failed: {exc}", flush=True)
    env.raw.append({"suite": "gateway-bound", "case": client, "alone": alone, "rows": rows})
    print(f"   {client} client: ceiling alone {fmt(median(alone), 'Gb/s')}", flush=True)
    for fraction, results in rows.items():
        report_single(f"transfer paced at {fraction:.2f} of it", GATEWAY_BOUND, list(results))
    best = max(median([r["bound"] for r in results]) for results in rows.values())
    print(f"   {client} client: input bound (best median of lesser / alone) {best:.3g}")


def gateway_latency(
    env: Env, opts: GatewayOptions, heap_size: int, subscribers: int, client: str
) -> Result:
    """Open loop at a moderate rate over UDP (the capture path): delays, and whether anything
    was lost anywhere."""
    got = gateway_run(
        env,
        opts,
        heap_size,
        subscribers,
        client,
        ["--heap-rate", str(opts.latency_rate)],
        opts.latency_heaps,
        "udp",
    )
    subs = got["subscribers"]

    def worst(key: str, q: str) -> float:
        return max(s[key][q] for s in subs)

    got.update(
        {
            "sender_p50": median([s["delay_from_sender_ms"]["p50"] for s in subs]),
            "sender_p99": worst("delay_from_sender_ms", "p99"),
            "gateway_p50": median([s["delay_from_gateway_ms"]["p50"] for s in subs]),
            "gateway_p99": worst("delay_from_gateway_ms", "p99"),
            "offered_gbps": opts.latency_rate * heap_size * 8 / 1e9,
        }
    )
    return got


def report_single(name: str, metrics: list[Metric], results: list[Result | None]) -> None:
    """Median and min-max of each figure over the rounds (no second column)."""
    for metric in metrics:
        values = [r[metric.key] for r in results if r and r.get(metric.key) is not None]
        spread = (
            f"{fmt(min(values), metric.unit)} - {fmt(max(values), metric.unit)}" if values else ""
        )
        print(
            f"   {name:<44} {metric.label:<22} {fmt(median(values), metric.unit):>12}  "
            f"range {spread}",
            flush=True,
        )
        name = ""


GATEWAY_THROUGHPUT = [
    Metric("gbps", "payload Gb/s", "Gb/s"),
    Metric("slowest_gbps", "slowest sub Gb/s", "Gb/s"),
    Metric("cpu_ms", "server CPU ms/heap", "ms"),
    Metric("client_cpu_ms", "client CPU ms/heap", "ms"),
    Metric("sender_cpu_ms", "sender CPU ms/heap", "ms", ratio=False),
    Metric("lost", "heaps lost", "", ratio=False),
]
GATEWAY_BOUND = [
    Metric("fed_gbps", "transfer Gb/s", "Gb/s"),
    Metric("gbps", "ceiling beside it Gb/s", "Gb/s"),
    Metric("fed_share", "transfer / alone", ""),
    Metric("out_share", "beside it / alone", ""),
    Metric("bound", "lesser / alone", ""),
    Metric("cpu_ms", "server CPU ms/heap", "ms"),
    Metric("sender_cpu_ms", "transfer send CPU ms/heap", "ms"),
]
GATEWAY_LATENCY = [
    Metric("sender_p50", "send->client p50", "ms"),
    Metric("sender_p99", "send->client p99", "ms"),
    Metric("gateway_p50", "gateway->client p50", "ms"),
    Metric("gateway_p99", "gateway->client p99", "ms"),
    Metric("lost", "heaps not received", ""),
    Metric("capture_loss", "capture loss (daemon)", ""),
    Metric("queue_drops", "subscriber queue drops", ""),
]


def build_go_subscriber(env: Env) -> Path | None:
    """Builds bench/workloads/gateway_go into the work directory; None if Go is missing."""
    binary = env.workdir / "gatewaysub"
    try:
        proc = subprocess.run(
            ["go", "build", "-o", str(binary), "."],
            cwd=WORKLOADS / "gateway_go",
            capture_output=True,
            text=True,
            timeout=600,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"   go subscriber: cannot build ({exc}); skipping the Go client", flush=True)
        return None
    if proc.returncode != 0:
        print(f"   go subscriber: build failed; skipping the Go client:\n{proc.stderr}")
        return None
    return binary


def check_gateway_installed(env: Env) -> None:
    probe = "import spead2_gateway, grpc; print(spead2_gateway.__file__, grpc.__version__)"
    proc = subprocess.run(
        [env.ours, "-c", probe],
        cwd=env.workdir,
        env=clean_environ(),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.exit(
            f"gateway: {env.ours} cannot import spead2_gateway (pip install -e service):\n"
            f"{proc.stderr}"
        )
    where, version = proc.stdout.split()
    print(f"      spead2_gateway from {os.path.dirname(where)}, grpcio {version}")


def suite_gateway(env: Env, opts: GatewayOptions) -> None:
    heap_size = MiB
    clients = list(opts.clients)
    if "go" in clients:
        opts.go_binary = build_go_subscriber(env)
        if opts.go_binary is None:
            clients.remove("go")
    fragments = f"fragment_bytes {opts.fragment_bytes}" if opts.fragment_bytes else "default"
    fragments += ", memory pool" if opts.memory_pool else ""
    print_header(
        f"gateway: 1 MiB heaps from a {opts.transport.upper()} sender (closed loop, "
        f"{opts.window} heaps in flight) to N subscribers, vs a bare grpcio server streaming "
        f"pre-built messages of the same size ({fragments}) to the same client",
        ours="gateway",
        peer="bare",
    )
    for client in clients:
        for subscribers in (1, 4):
            compare(
                env,
                "gateway",
                f"{client} client, {subscribers} subscriber{'s' if subscribers > 1 else ''}",
                GATEWAY_THROUGHPUT,
                partial(gateway_throughput, env, opts, heap_size, subscribers, client),
            )
    print_header(
        "gateway input floor: the bare server relaying each 1 MiB payload as raw bytes from a "
        "TCP socket (raw_feed.py, sendall), vs the same server's pre-built messages; one "
        "subscriber: what a gateway that did nothing but read its input would reach",
        ours="relay",
        peer="bare",
    )
    for client in clients:
        compare(
            env,
            "gateway-floor",
            f"{client} client, 1 subscriber",
            GATEWAY_THROUGHPUT,
            partial(floor_throughput, env, opts, heap_size, client),
        )
    print(
        "\n== gateway input bound: the bare server (one subscriber) while a raw loopback TCP "
        "transfer of 1 MiB blocks (raw_feed.py --rate, one sendall per block) runs into a thread "
        "of it that discards it (one MSG_WAITALL read per block), paced at a fraction of the "
        "bare rate measured alone in the same round. A gateway has at least to take in its input "
        "and send as the bare server does, so it could deliver at most the lesser of the two "
        f"rates while they share the machine  [{load_average()}]"
    )
    for client in clients:
        input_bound(env, opts, heap_size, client)
    if opts.latency_rate <= 0:
        return
    gbps = opts.latency_rate * heap_size * 8 / 1e9
    print(
        f"\n== gateway latency: UDP sender, open loop, {opts.latency_rate:g} heaps/s of 1 MiB "
        f"({gbps:.2f} Gb/s per subscriber), {opts.latency_heaps} heaps; medians over rounds "
        f"of each run's p50 (median over subscribers) and p99 (worst subscriber)  "
        f"[{load_average()}]"
    )
    for client in clients:
        for subscribers in (1, 4):
            results: list[Result | None] = []
            for _ in range(env.rounds):
                try:
                    results.append(gateway_latency(env, opts, heap_size, subscribers, client))
                except WorkloadError as exc:
                    print(f"   latency {client} x{subscribers}: failed: {exc}", flush=True)
                    results.append(None)
            name = f"{client} client, {subscribers} subscriber{'s' if subscribers > 1 else ''}"
            env.raw.append({"suite": "gateway-latency", "case": name, "rounds": results})
            report_single(name, GATEWAY_LATENCY, results)


# ---------------------------------------------------------------------------------------------
# Main


def describe(env: Env, libs: tuple[str, ...] = ("ours", "peer")) -> None:
    git = subprocess.run(
        ["git", "-C", str(REPO), "log", "-1", "--format=%h %cd", "--date=short"],
        capture_output=True,
        text=True,
    )
    if git.returncode == 0:
        print(f"repo HEAD: {git.stdout.strip()} (the build under test may differ)")
    probe = "import spead2, os; print(spead2.__version__, os.path.dirname(spead2.__file__))"
    for lib in libs:
        python = env.python(lib)
        proc = subprocess.run(
            [python, "-c", probe],
            cwd=env.workdir,
            env=clean_environ(),
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            sys.exit(f"{lib}: {python} cannot import spead2:\n{proc.stderr}")
        version, where = proc.stdout.split(maxsplit=1)
        where = where.strip()
        print(f"{lib}: {python}\n      spead2 {version} from {where}")
        if Path(where).resolve() == (REPO / "spead2").resolve():
            print(
                "      WARNING: this is the source tree (an editable/develop install); make "
                "sure it was built with --release",
                file=sys.stderr,
            )


def default_python(var: str, venv: str) -> str:
    return os.environ.get(var) or str(REPO / venv / "bin" / "python")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "suites", nargs="*", default=["all"], choices=("all", *SUITES, *EXTRA_SUITES)
    )
    parser.add_argument(
        "--ours",
        default=default_python("SPEAD2_BENCH_OURS", ".venv"),
        help="interpreter with our spead2 (env SPEAD2_BENCH_OURS; default .venv/bin/python)",
    )
    parser.add_argument(
        "--peer",
        default=default_python("SPEAD2_BENCH_PEER", ".venv-peer"),
        help="interpreter with spead2 4.5.1 (env SPEAD2_BENCH_PEER; default .venv-peer/bin/python)",
    )
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per case")
    parser.add_argument(
        "--no-cross", action="store_true", help="udp: skip the mixed ours->peer / peer->ours runs"
    )
    parser.add_argument(
        "--gateway-clients",
        default="py,go",
        help="gateway: subscriber kinds, comma-separated: py (spead2_gateway.client), go",
    )
    parser.add_argument(
        "--gateway-heaps", type=int, default=1000, help="gateway: heaps per throughput run"
    )
    parser.add_argument(
        "--gateway-window", type=int, default=32, help="gateway: heaps in flight (closed loop)"
    )
    parser.add_argument(
        "--gateway-latency-rate",
        type=float,
        default=100.0,
        help="gateway: heaps/s of the open-loop latency run (0: skip it)",
    )
    parser.add_argument(
        "--gateway-transport",
        choices=("udp", "tcp"),
        default="tcp",
        help="gateway: how the sender feeds the daemon in the throughput runs (latency: UDP)",
    )
    parser.add_argument(
        "--gateway-fragment-bytes",
        type=int,
        default=0,
        help="gateway: [subscribe] fragment_bytes of the daemon and the bare server (0: default)",
    )
    parser.add_argument(
        "--gateway-memory-pool",
        action="store_true",
        help="gateway: give the receive stream a memory pool (heaps are then copied out of it)",
    )
    parser.add_argument("--json", help="also write every raw result to this file")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each command")
    args = parser.parse_args()
    suites = SUITES if "all" in args.suites else tuple(s for s in SUITES if s in args.suites)
    suites += tuple(s for s in EXTRA_SUITES if s in args.suites)

    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="spead2-bench-") as tmp:
        env = Env(
            ours=args.ours,
            peer=args.peer,
            workdir=Path(tmp),
            rounds=args.rounds,
            verbose=args.verbose,
        )
        print(
            f"spead2 side-by-side benchmarks, {time.strftime('%Y-%m-%d %H:%M')}, "
            f"{os.cpu_count()} CPUs, {args.rounds} rounds (ours, peer alternating), "
            f"{load_average()}"
        )
        describe(env, ("ours",) if suites == ("gateway",) else ("ours", "peer"))
        if "gateway" in suites:
            check_gateway_installed(env)
        gateway_options = GatewayOptions(
            clients=tuple(c for c in args.gateway_clients.split(",") if c),
            heaps=args.gateway_heaps,
            window=args.gateway_window,
            latency_rate=args.gateway_latency_rate,
            latency_heaps=max(100, int(args.gateway_latency_rate * 3)),
            transport=args.gateway_transport,
            fragment_bytes=args.gateway_fragment_bytes,
            memory_pool=args.gateway_memory_pool,
        )
        runners: dict[str, Callable[[], None]] = {
            "recv": lambda: suite_recv(env),
            "send": lambda: suite_send(env),
            "udp": lambda: suite_udp(env, cross=not args.no_cross),
            "rate": lambda: suite_rate(env),
            "memory": lambda: suite_memory(env),
            "gateway": lambda: suite_gateway(env, gateway_options),
        }
        for suite in suites:
            runners[suite]()
        if args.json:
            with open(args.json, "w") as f:
                json.dump(env.raw, f, indent=1)
    print(f"\ntotal {time.monotonic() - start:.0f} s, {load_average()}")


if __name__ == "__main__":
    main()
