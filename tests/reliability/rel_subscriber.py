"""A gateway subscriber for the reliability tests, run as a subprocess (our venv).

It exists so that a test can (a) talk gRPC to a daemon inside a private network namespace
(a subprocess started from the namespace thread lives there; grpc's own threads in the pytest
process would not) and (b) kill a subscriber abruptly (SIGKILL, SIGSTOP).

Each heap is checked here against ``rel_payload``: a complete heap must carry ``index`` and
exactly ``payload(index)``. Output, one JSON object per line on stdout:
``{"event": "subscribed", "id": N}`` once the call is up, ``{"event": "heap", ...}`` per heap
with ``--progress``, and ``{"event": "done", "heaps": [...], "error": ...}`` at the end (after
``--ends`` end-of-stream heaps, ``--count`` heaps, or ``--timeout`` seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

import grpc
from rel_payload import payload
from spead2_gateway.client import GatewayClient, ReceivedHeap


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True)
    parser.add_argument("--stream", required=True)
    parser.add_argument("--size", type=int, required=True, help="payload bytes per heap")
    parser.add_argument("--include-incomplete", action="store_true")
    parser.add_argument("--queue-depth", type=int, default=0)
    parser.add_argument("--ends", type=int, default=1, help="end-of-stream heaps to wait for")
    parser.add_argument("--count", type=int, default=0, help="stop after this many heaps")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--progress", action="store_true")
    return parser.parse_args(argv)


def _emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def describe(heap: ReceivedHeap, size: int) -> dict[str, Any]:
    """What the test needs to know about a heap; ``exact`` checks a complete heap's values."""
    out: dict[str, Any] = {
        "cnt": heap.cnt,
        "sequence": heap.sequence,
        "dropped": heap.dropped,
        "incomplete": heap.incomplete,
        "end": heap.end_of_stream,
        "index": int(heap["index"]) if "index" in heap else None,
    }
    if not heap.incomplete and not heap.end_of_stream:
        data = heap["payload"] if "payload" in heap else None
        out["exact"] = (
            out["index"] is not None
            and data is not None
            and data.tobytes() == payload(out["index"], size).tobytes()
        )
    return out


def main(argv: list[str]) -> int:
    args = _parse_args(argv)
    heaps: list[dict[str, Any]] = []
    error = None
    with GatewayClient(args.target) as client:
        deadline = time.monotonic() + args.timeout
        while client.health() != "SERVING":
            if time.monotonic() > deadline:
                raise SystemExit("the gateway never became SERVING")
            time.sleep(0.05)
        sub = client.subscribe(
            args.stream, include_incomplete=args.include_incomplete, queue_depth=args.queue_depth
        )
        _emit("subscribed", id=sub.subscriber_id, queue_depth=sub.queue_depth)
        timer = threading.Timer(max(deadline - time.monotonic(), 0.0), sub.cancel)
        timer.start()
        ends = 0
        try:
            for heap in sub:
                record = describe(heap, args.size)
                heaps.append(record)
                if args.progress:
                    _emit("heap", **record)
                ends += heap.end_of_stream
                if ends >= args.ends or len(heaps) == args.count:
                    break
        except grpc.RpcError as exc:
            error = f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
        finally:
            timer.cancel()
            sub.cancel()
    _emit("done", heaps=heaps, error=error)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
