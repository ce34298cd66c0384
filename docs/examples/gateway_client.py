"""Start a gateway, subscribe to its receive stream, and send through its send stream.

Everything is on loopback: gRPC listens on an ephemeral port announced in --ready-file, the
gateway's send stream targets a socket this script reads with spead2.
"""

import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from spead2_gateway.client import GatewayClient

import spead2
import spead2.recv
import spead2.send


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_gateway(workdir: Path, recv_port: int, send_port: int) -> tuple[subprocess.Popen, str]:
    config = workdir / "gateway.toml"
    config.write_text(
        f"""
[server]
listen = "127.0.0.1:0"

[metrics]
enabled = false

[[receive.streams]]
name = "in"
transport = "udp"
port = {recv_port}

[[send.streams]]
name = "out"
transport = "udp"
destinations = ["127.0.0.1:{send_port}"]
"""
    )
    ready = workdir / "ready.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spead2_gateway",
            "--config",
            str(config),
            "--ready-file",
            str(ready),
        ]
    )
    deadline = time.monotonic() + 10
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the gateway did not start")
        time.sleep(0.05)
    return process, json.loads(ready.read_text())["grpc"]


def main() -> None:
    thread_pool = spead2.ThreadPool()
    # Where the gateway's send stream delivers: a spead2 receiver on an ephemeral port.
    out_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out_sock.bind(("127.0.0.1", 0))
    out_stream = spead2.recv.Stream(thread_pool)
    out_stream.add_udp_reader(out_sock)
    recv_port = free_udp_port()

    with tempfile.TemporaryDirectory() as tmp:
        process, target = start_gateway(Path(tmp), recv_port, out_sock.getsockname()[1])
        try:
            with GatewayClient(target) as client:
                print([(s.name, s.endpoint) for s in client.list_streams()])

                # 1. Subscribe, then feed the receive stream with ordinary spead2 over UDP.
                with client.subscribe("in", items=["spectrum"]) as heaps:
                    _ = heaps.queue_depth  # waits until the subscription is in place
                    sender = spead2.send.UdpStream(thread_pool, [("127.0.0.1", recv_port)])
                    items = spead2.send.ItemGroup()
                    items.add_item(0x1601, "spectrum", "", (4,), dtype=np.float32)
                    for i in range(3):
                        items["spectrum"].value = np.full(4, i, dtype=np.float32)
                        sender.send_heap(items.get_heap())
                    got = []
                    for heap in heaps:
                        got.append(float(heap["spectrum"][0]))
                        if len(got) == 3:
                            break
                print("subscribed heaps", got)
                assert got == [0.0, 1.0, 2.0], got

                # 2. Send heaps through the gateway; they come out as SPEAD on out_sock.
                out = client.sender("out")
                out.add_item(0x1600, "timestamp", "", (), format=[("u", 48)])
                for t in (10, 20):
                    out["timestamp"].value = t
                    out.send_heap(out.get_heap())
                out.send_heap(out.get_end())
                print(out.close())
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)

    received = spead2.ItemGroup()
    timestamps = []
    for heap in out_stream:  # ends at the end-of-stream heap
        if "timestamp" in received.update(heap):
            timestamps.append(int(received["timestamp"].value))
    out_stream.stop()
    out_sock.close()
    print("sent through the gateway", timestamps)
    assert timestamps == [10, 20], timestamps


main()
