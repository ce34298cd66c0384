"""The ``spead2-gateway-client`` command: list streams, subscribe, watch stats.

``spead2-gateway-client subscribe default --stats 2`` prints each heap as it arrives and a
statistics line every 2 s; with ``--reconnect`` it survives the gateway restarting. Exit
status: 0, 1 for a gRPC error, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import numpy as np

from spead2_gateway.client import (
    DEFAULT_TARGET,
    AsyncGatewayClient,
    ReceivedHeap,
    Reconnect,
    StatsUpdate,
)
from spead2_gateway.malloc import tune_malloc

__all__ = ["format_heap", "format_reconnect", "format_stats", "main"]


_RECONNECT_HELP = "call again with backoff when the call breaks (daemon restarted, link lost)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spead2-gateway-client", description=__doc__)
    parser.add_argument("--target", default=DEFAULT_TARGET, help="gateway host:port")
    parser.add_argument("--token", help="bearer token (default: $SPEAD2_GATEWAY_TOKEN)")
    parser.add_argument("--tls", action="store_true", help="use TLS")
    parser.add_argument("--ca", type=Path, help="CA certificate(s) to trust (PEM)")
    parser.add_argument("--cert", type=Path, help="client certificate for mutual TLS (PEM)")
    parser.add_argument("--key", type=Path, help="client key for mutual TLS (PEM)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the streams")
    info = sub.add_parser("info", help="configuration, descriptors and stats of a stream")
    info.add_argument("stream")
    subscribe = sub.add_parser("subscribe", help="print heaps as they arrive")
    subscribe.add_argument("stream")
    subscribe.add_argument("--items", default="", help="comma-separated item names or ids")
    subscribe.add_argument("--every", type=int, default=1, help="every Nth heap")
    subscribe.add_argument("--incomplete", action="store_true", help="include incomplete heaps")
    subscribe.add_argument("--queue-depth", type=int, default=0)
    subscribe.add_argument("--count", type=int, default=0, help="stop after N heaps")
    subscribe.add_argument("--reconnect", action="store_true", help=_RECONNECT_HELP)
    subscribe.add_argument(
        "--stats",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="also print stream statistics every SECONDS",
    )
    stats = sub.add_parser("stats", help="print statistics periodically")
    stats.add_argument("streams", nargs="*")
    stats.add_argument("--interval", type=float, default=1.0)
    stats.add_argument("--count", type=int, default=0, help="stop after N updates")
    stats.add_argument("--reconnect", action="store_true", help=_RECONNECT_HELP)
    health = sub.add_parser("health", help="health status of the gateway or a stream")
    health.add_argument("service", nargs="?", default="", help='e.g. "receive/default"')
    return parser


def _items(text: str) -> list[str | int]:
    result: list[str | int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        result.append(int(part, 0) if part[0].isdigit() else part)
    return result


def _summary(value: np.ndarray) -> str:
    if value.ndim == 0:
        return repr(value[()].item() if value.dtype.kind != "V" else value[()])
    if value.dtype.kind == "S" and value.ndim == 1:
        return repr(value.tobytes().decode("latin-1"))
    text = f"{value.dtype}{list(value.shape)}"
    if value.dtype.kind in "biuf" and value.size:
        text += f" min {value.min()} max {value.max()}"
    return text


def format_heap(heap: ReceivedHeap) -> str:
    """One line describing a heap."""
    flags = [
        name
        for name, on in (
            ("start", heap.start_of_stream),
            ("end", heap.end_of_stream),
            ("incomplete", heap.incomplete),
        )
        if on
    ]
    head = f"{heap.stream} heap {heap.cnt} seq {heap.sequence}"
    if heap.dropped:
        head += f" (dropped so far {heap.dropped})"
    if flags:
        head += f" [{', '.join(flags)}]"
    items = "; ".join(f"{name}={_summary(item.value)}" for name, item in heap.items.items())
    return f"{head}: {items}" if items else head


def format_reconnect(report: Reconnect) -> str:
    """One line describing a reconnection."""
    restarted = ", the gateway restarted" if report.server_restarted else ""
    return (
        f"reconnected after {report.downtime:.3f} s ({report.attempts} attempt(s), was "
        f"{report.code.name}{restarted}); what was sent in between is lost"
    )


def _print_reconnect(report: Reconnect) -> None:
    print(f"spead2-gateway-client: {format_reconnect(report)}", file=sys.stderr, flush=True)


def format_stats(update: StatsUpdate) -> str:
    """One line per stream of a stats update."""
    lines = []
    stamp = time.strftime("%H:%M:%S", time.localtime(update.time))
    for name, s in update.streams.items():
        c = s.counters
        if "packets" in c:
            incomplete = c.get("incomplete_heaps_evicted", 0) + c.get("incomplete_heaps_flushed", 0)
            lines.append(
                f"{stamp} {name}: heaps={c.get('heaps', 0)} packets={c['packets']} "
                f"incomplete={incomplete} ring={s.ring_depth}/{s.ring_capacity} "
                f"subscribers={len(s.subscribers)} subscriber_drops={s.subscriber_dropped_heaps}"
            )
        else:
            lines.append(
                f"{stamp} {name}: sent heaps={c.get('heaps', 0)} bytes={c.get('bytes', 0)} "
                f"rejected={c.get('rejected_heaps', 0)} errors={c.get('errors', 0)}"
            )
    return "\n".join(lines)


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


def _client(args: argparse.Namespace) -> AsyncGatewayClient:
    token = args.token or os.environ.get("SPEAD2_GATEWAY_TOKEN") or None
    return AsyncGatewayClient(
        args.target,
        token=token,
        tls=args.tls,
        root_certificates=_read(args.ca),
        certificate_chain=_read(args.cert),
        private_key=_read(args.key),
    )


async def _subscribe(client: AsyncGatewayClient, args: argparse.Namespace) -> None:
    stats_task = None
    if args.stats > 0:
        stats_task = asyncio.ensure_future(
            _stats(client, [args.stream], args.stats, 0, args.reconnect)
        )
    try:
        seen = 0
        subscription = client.subscribe(
            args.stream,
            _items(args.items),
            args.every,
            args.incomplete,
            args.queue_depth,
            reconnect=args.reconnect,
            on_reconnect=_print_reconnect if args.reconnect else None,
        )
        async for heap in subscription:
            print(format_heap(heap), flush=True)
            seen += 1
            if args.count and seen >= args.count:
                subscription.cancel()
                break
    finally:
        if stats_task is not None:
            stats_task.cancel()
            await asyncio.gather(stats_task, return_exceptions=True)


async def _stats(
    client: AsyncGatewayClient,
    streams: list[str],
    interval: float,
    count: int,
    reconnect: bool = False,
) -> None:
    seen = 0
    updates = client.watch_stats(
        streams,
        interval,
        reconnect=reconnect,
        on_reconnect=_print_reconnect if reconnect else None,
    )
    async for update in updates:
        print(format_stats(update), flush=True)
        seen += 1
        if count and seen >= count:
            return


async def _run(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        if args.command == "list":
            for s in await client.list_streams():
                print(
                    f"{s.name:20s} {s.kind:8s} {s.endpoint:30s} {s.state}"
                    + (f" subscribers={s.subscribers}" if s.kind == "receive" else "")
                )
        elif args.command == "info":
            detail = await client.get_stream(args.stream)
            out: dict[str, Any] = {
                "info": vars(detail.info),
                "config": detail.config,
                "descriptors": [
                    {**vars(d), "dtype": None if d.dtype is None else str(d.dtype)}
                    for d in detail.descriptors
                ],
                "stats": vars(detail.stats),
            }
            print(json.dumps(out, indent=2, default=str))
        elif args.command == "subscribe":
            await _subscribe(client, args)
        elif args.command == "stats":
            await _stats(client, args.streams, args.interval, args.count, args.reconnect)
        else:
            print(await client.health(args.service))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``spead2-gateway-client``."""
    args = _parser().parse_args(argv)
    tune_malloc()
    try:
        return asyncio.run(_run(args))
    except grpc.aio.AioRpcError as exc:
        print(f"spead2-gateway-client: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
