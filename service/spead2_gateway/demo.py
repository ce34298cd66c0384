"""Demo mode: a synthetic SPEAD sender into the first UDP receive stream, and a gRPC
subscriber in the same process that prints what comes back, so heaps are seen flowing at
once (``spead2-gateway --demo``).

The sender uses only the spead2 API (a thread with ``spead2.send.UdpStream``); the printer
uses :class:`~spead2_gateway.client.AsyncGatewayClient`, so the whole path (SPEAD over UDP,
capture, fan-out, gRPC, reassembly) is exercised.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING

import grpc
import numpy as np
import spead2
import spead2.send

from spead2_gateway.client import AsyncGatewayClient
from spead2_gateway.config import ReceiveStreamConfig
from spead2_gateway.interceptors import read_token

if TYPE_CHECKING:
    from spead2_gateway.app import Gateway

__all__ = ["Demo", "DemoSender"]

logger = logging.getLogger(__name__)

CHANNELS = 1024
HEAPS_PER_SECOND = 10.0


class DemoSender:
    """Sends spectra (a timestamp and a float32 array per heap) until stopped."""

    def __init__(
        self, config: ReceiveStreamConfig, heaps_per_second: float = HEAPS_PER_SECOND
    ) -> None:
        self.config = config
        self.interval = 1.0 / heaps_per_second
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spead2-gateway-demo", daemon=True)

    def start(self) -> None:
        """Starts the sending thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stops sending and waits for the thread."""
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        thread_pool = spead2.ThreadPool()
        stream = spead2.send.UdpStream(
            thread_pool,
            [(self.config.host, self.config.port)],
            spead2.send.StreamConfig(max_packet_size=8972, rate=50e6),
        )
        group = spead2.send.ItemGroup(flavour=spead2.Flavour(4, 64, self.config.heap_address_bits))
        timestamp = group.add_item(
            0x1600, "timestamp", "Sample counter of the first sample", (), format=[("u", 48)]
        )
        spectrum = group.add_item(
            0x1601, "spectrum", "Power per channel", (CHANNELS,), dtype=np.float32
        )
        stream.send_heap(group.get_start())
        channels = np.arange(CHANNELS, dtype=np.float32)
        while not self._stop.wait(self.interval):
            timestamp.value = self.sent * CHANNELS
            phase = (self.sent % 64) / 64.0
            spectrum.value = (np.sin(channels / CHANNELS * np.pi * (1 + 8 * phase)) ** 2).astype(
                np.float32
            )
            stream.send_heap(group.get_heap())
            self.sent += 1
        del stream
        thread_pool.stop()


class Demo:
    """The demo sender plus a printing subscriber, tied to a running gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.received = 0
        self.sender: DemoSender | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: AsyncGatewayClient | None = None

    def _target(self) -> ReceiveStreamConfig | None:
        for stream in self.gateway.config.receive:
            if stream.transport == "udp" and stream.group is None:
                return stream
        return None

    def start(self) -> None:
        """Starts sending and printing (logs why not if no stream suits)."""
        target = self._target()
        if target is None:
            logger.warning("demo: no unicast UDP receive stream to send to")
            return
        self.sender = DemoSender(target)
        self.sender.start()
        logger.info("demo: sending %g heaps/s to %s", HEAPS_PER_SECOND, target.endpoint)
        if self.gateway.config.server.tls is not None:
            logger.info("demo: TLS is on, so the printing subscriber is not started")
            return
        token = read_token(self.gateway.config.server)
        self._client = AsyncGatewayClient(self.gateway.grpc_address, token=token)
        self._task = asyncio.ensure_future(self._print(target.name))

    async def _print(self, stream: str) -> None:
        assert self._client is not None
        subscription = self._client.subscribe(stream)
        try:
            async for heap in subscription:
                if "spectrum" not in heap:
                    print(
                        f"[{stream}] heap {heap.cnt} (seq {heap.sequence}): no spectrum", flush=True
                    )
                    continue
                self.received += 1
                spectrum = heap["spectrum"]
                print(
                    f"[{stream}] heap {heap.cnt:5d} seq {heap.sequence:5d} "
                    f"timestamp={int(heap['timestamp']):9d} "
                    f"spectrum[{spectrum.size}] peak channel {int(np.argmax(spectrum)):4d} "
                    f"mean {float(np.mean(spectrum)):.4f}",
                    flush=True,
                )
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                logger.warning("demo subscriber: %s", exc.details())

    async def stop(self) -> None:
        """Stops the sender; the subscriber ends when the gateway shuts the stream down."""
        if self.sender is not None:
            await asyncio.to_thread(self.sender.stop)
            print(
                f"demo: sent {self.sender.sent} heaps, {self.received} came back over gRPC",
                flush=True,
            )

    async def close(self) -> None:
        """Ends the subscriber and its channel (after the gateway has shut down)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._client is not None:
            await self._client.close()

    def ok(self) -> bool:
        """Whether heaps made the whole round trip."""
        return self.received > 0
