"""Receive with asyncio: spead2.recv.asyncio.Stream is an async iterator of heaps."""

import asyncio
import socket

import numpy as np

import spead2
import spead2.recv.asyncio
import spead2.send.asyncio


async def produce(port: int, thread_pool: spead2.ThreadPool) -> None:
    stream = spead2.send.asyncio.UdpStream(thread_pool, [("127.0.0.1", port)])
    items = spead2.send.ItemGroup()
    items.add_item(0x1000, "count", "a counter", (), format=[("u", 32)])
    items.add_item(0x1001, "data", "some values", (16,), dtype=np.float64)
    await stream.async_send_heap(items.get_start())
    for i in range(4):
        items["count"].value = i
        items["data"].value = np.linspace(0.0, 1.0, 16) * i
        await stream.async_send_heap(items.get_heap())
    await stream.async_send_heap(items.get_end())


async def consume(stream: spead2.recv.asyncio.Stream) -> list[int]:
    items = spead2.ItemGroup()
    counts = []
    async for heap in stream:  # ends at the stop item
        if "count" in items.update(heap):
            counts.append(int(items["count"].value))
    return counts


async def main() -> None:
    thread_pool = spead2.ThreadPool()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    stream = spead2.recv.asyncio.Stream(thread_pool)
    stream.add_udp_reader(sock)
    counts, _ = await asyncio.wait_for(
        asyncio.gather(consume(stream), produce(sock.getsockname()[1], thread_pool)), 5.0
    )
    stream.stop()
    sock.close()
    print("counts", counts)
    assert counts == [0, 1, 2, 3], counts


asyncio.run(main())
