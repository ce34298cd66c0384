"""Record the UDP datagrams a peer sends, so they can be written into capture files.

:class:`UdpRecorder` binds plain sockets on loopback and drains them on a background thread
while the peer sends (so a socket buffer never overflows), keeping arrival order across all of
its sockets. Loopback delivery happens inside the sender's ``sendto`` call, so once the sending
process has exited every datagram is already queued: :meth:`UdpRecorder.stop` drains what is
left and needs no sleep.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from types import TracebackType

from .pcapgen import Datagram
from .ports import LOOPBACK_V4

RECV_BUFFER_SIZE = 8 << 20
MAX_DATAGRAM = 65536


class UdpRecorder:
    """UDP sockets on loopback whose received datagrams are recorded in arrival order."""

    def __init__(self, count: int = 1, host: str = LOOPBACK_V4) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sockets: list[socket.socket] = []
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER_SIZE)
            sock.bind((host, 0))
            sock.setblocking(False)
            self.sockets.append(sock)
        self.datagrams: list[Datagram] = []
        self._selector = selectors.DefaultSelector()
        for sock in self.sockets:
            self._selector.register(sock, selectors.EVENT_READ)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def ports(self) -> list[int]:
        """The bound port of each socket."""
        return [int(sock.getsockname()[1]) for sock in self.sockets]

    def _drain(self, sock: socket.socket) -> None:
        local = sock.getsockname()[:2]
        while True:
            try:
                payload, peer = sock.recvfrom(MAX_DATAGRAM)
            except BlockingIOError:
                return
            self.datagrams.append(
                Datagram((peer[0], peer[1]), (local[0], local[1]), payload, time.time())
            )

    def _run(self) -> None:
        while not self._stopping.is_set():
            for key, _ in self._selector.select(timeout=0.05):
                self._drain(key.fileobj)  # type: ignore[arg-type]

    def stop(self) -> list[Datagram]:
        """Stop recording, collect anything still queued, close the sockets."""
        if self._thread.is_alive():
            self._stopping.set()
            self._thread.join()
            for sock in self.sockets:
                self._drain(sock)
            self._selector.close()
            for sock in self.sockets:
                sock.close()
        return self.datagrams

    def __enter__(self) -> UdpRecorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
