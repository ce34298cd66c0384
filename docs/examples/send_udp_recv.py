"""Send heaps over UDP on loopback and receive them with a ring stream.

The receiver binds a socket to an ephemeral port first, so the example never collides with
anything else on the machine.
"""

import socket

import numpy as np

import spead2
import spead2.recv
import spead2.send

thread_pool = spead2.ThreadPool()

# Receiver: a UDP socket on 127.0.0.1, port chosen by the kernel, handed to the stream.
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 0))
port = sock.getsockname()[1]
recv_config = spead2.recv.StreamConfig(max_heaps=4)
ring_config = spead2.recv.RingStreamConfig(heaps=16)
recv_stream = spead2.recv.Stream(thread_pool, recv_config, ring_config)
recv_stream.add_udp_reader(sock)

# Sender: rate-limited to 100 MB/s, small packets so each heap spans several of them.
send_config = spead2.send.StreamConfig(rate=100e6, max_packet_size=1472)
send_stream = spead2.send.UdpStream(thread_pool, [("127.0.0.1", port)], send_config)
items = spead2.send.ItemGroup()
items.add_item(0x1000, "samples", "raw samples", (4096,), dtype=np.int16)
send_stream.send_heap(items.get_start())
for i in range(5):
    items["samples"].value = np.full(4096, i, dtype=np.int16)
    send_stream.send_heap(items.get_heap())
send_stream.send_heap(items.get_end())

recv_items = spead2.ItemGroup()
values = []
for heap in recv_stream:  # ends at the stop item sent by get_end()
    if "samples" in recv_items.update(heap):
        values.append(int(recv_items["samples"].value[0]))
recv_stream.stop()
sock.close()
print("received", values)
assert values == [0, 1, 2, 3, 4], values
