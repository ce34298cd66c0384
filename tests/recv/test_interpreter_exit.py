"""Exiting the interpreter while a stream still holds a Python buffer must be clean.

The usual spead2 pattern, ``for heap in stream: ... break`` and then leaving the script without
``stream.stop()``, leaves a worker thread holding the caller's buffer while the interpreter
shuts down. Releasing it must neither panic nor wait for a GIL that no longer exists.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import spead2, spead2.recv, spead2.send

    thread_pool = spead2.ThreadPool(1)
    config = spead2.send.StreamConfig(max_packet_size=9000)
    sender = spead2.send.BytesStream(spead2.ThreadPool(), config)
    item_group = spead2.send.ItemGroup()
    item_group.add_item(0x1000, "x", "", (1 << 20,), dtype=np.uint8,
                        value=np.zeros(1 << 20, np.uint8))
    for _ in range(40):
        sender.send_heap(item_group.get_heap(descriptors="all", data="all"))
    stream = spead2.recv.Stream(thread_pool, spead2.recv.StreamConfig(),
                                spead2.recv.RingStreamConfig(heaps=4))
    stream.add_buffer_reader(sender.getvalue())
    for i, heap in enumerate(stream):
        if i == 10:
            break
    print("exiting")
    """
)


def test_exit_with_a_live_buffer_reader_is_clean() -> None:
    """Five runs: each exits 0 promptly, with no panic on stderr."""
    for _ in range(5):
        result = subprocess.run(
            [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "exiting"
        assert "panicked" not in result.stderr
