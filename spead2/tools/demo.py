"""A first look: send synthetic spectra over UDP on loopback and receive them.

Run ``python -m spead2.tools.demo``. It uses only the public spead2 API, so the same script
runs against the original spead2 too.
"""

from __future__ import annotations

import argparse
import threading

import numpy as np

import spead2
import spead2.recv
import spead2.send

CHANNELS = 1024


def send(port: int, heaps: int, rate: float) -> None:
    """Sends `heaps` spectra (a timestamp and a float32 array each), then the end of stream."""
    thread_pool = spead2.ThreadPool()
    config = spead2.send.StreamConfig(rate=rate, max_packet_size=8972)
    stream = spead2.send.UdpStream(thread_pool, [("127.0.0.1", port)], config)
    flavour = spead2.Flavour(4, 64, 48)
    item_group = spead2.send.ItemGroup(flavour=flavour)
    timestamp = item_group.add_item(
        0x1600, "timestamp", "Sample counter of the first sample", (), format=[("u", 48)]
    )
    spectrum = item_group.add_item(
        0x1601, "spectrum", "Power per channel", (CHANNELS,), dtype=np.float32
    )
    stream.send_heap(item_group.get_start())
    channels = np.arange(CHANNELS, dtype=np.float32)
    for i in range(heaps):
        timestamp.value = i * CHANNELS
        spectrum.value = np.sin(channels / CHANNELS * np.pi * (i + 1)).astype(np.float32)
        stream.send_heap(item_group.get_heap())
    stream.send_heap(item_group.get_end())


def receive(stream: spead2.recv.Stream) -> int:
    """Prints each heap's items until the end of the stream; returns the heaps seen."""
    item_group = spead2.ItemGroup()
    seen = 0
    for heap in stream:
        if not isinstance(heap, spead2.recv.Heap):
            continue  # incomplete: only delivered with contiguous_only=False
        updated = item_group.update(heap)
        if not updated:
            continue
        seen += 1
        spectrum = updated["spectrum"].value
        print(
            f"heap {heap.cnt:3d}: timestamp={updated['timestamp'].value:8d} "
            f"spectrum[{spectrum.shape[0]}] peak channel {int(np.argmax(spectrum)):4d} "
            f"mean {float(np.mean(spectrum)):+.4f}"
        )
    return seen


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m spead2.tools.demo [--port N] [--heaps N]``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8888, help="UDP port on 127.0.0.1")
    parser.add_argument("--heaps", type=int, default=10, help="number of spectra to send")
    parser.add_argument("--rate", type=float, default=100e6, help="send rate in bytes/s")
    args = parser.parse_args(argv)

    stream = spead2.recv.Stream(spead2.ThreadPool(), spead2.recv.StreamConfig(max_heaps=4))
    stream.add_udp_reader(args.port, bind_hostname="127.0.0.1")
    sender = threading.Thread(target=send, args=(args.port, args.heaps, args.rate))
    sender.start()
    seen = receive(stream)
    sender.join()
    stats = stream.stats
    print(
        f"received {seen} spectra; stream stats: heaps={stats.heaps} packets={stats.packets} "
        f"incomplete={stats.incomplete_heaps_evicted + stats.incomplete_heaps_flushed}"
    )
    return 0 if seen == args.heaps else 1


if __name__ == "__main__":
    raise SystemExit(main())
