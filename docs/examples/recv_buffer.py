"""Encode heaps into bytes in memory, then decode them with a receive stream.

No sockets: spead2.send.BytesStream produces the SPEAD packets and
Stream.add_buffer_reader feeds them to a receiver.
"""

import numpy as np

import spead2
import spead2.recv
import spead2.send

thread_pool = spead2.ThreadPool()

# Sender side: describe two items and put three heaps (plus start/end) into a buffer.
send_stream = spead2.send.BytesStream(thread_pool)
send_items = spead2.send.ItemGroup()
send_items.add_item(0x1600, "timestamp", "sample counter", (), format=[("u", 48)])
send_items.add_item(0x1601, "spectrum", "power per channel", (8,), dtype=np.float32)
send_stream.send_heap(send_items.get_start())
for i in range(3):
    send_items["timestamp"].value = 1000 * i
    send_items["spectrum"].value = np.arange(8, dtype=np.float32) * i
    send_stream.send_heap(send_items.get_heap())
send_stream.send_heap(send_items.get_end())
packets = send_stream.getvalue()

# Receiver side: a stream that reads the buffer and stops at the end-of-stream heap.
recv_stream = spead2.recv.Stream(thread_pool)
recv_stream.add_buffer_reader(packets)
recv_items = spead2.ItemGroup()
received = 0
for heap in recv_stream:  # iteration ends when the stream stops
    updated = recv_items.update(heap)
    if "spectrum" in updated:
        received += 1
        print(recv_items["timestamp"].value, recv_items["spectrum"].value.sum())
recv_stream.stop()
assert received == 3, received
print(recv_stream.stats.heaps, "heaps,", recv_stream.stats.packets, "packets")
