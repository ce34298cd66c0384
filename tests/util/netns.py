"""Run code in a private network namespace, without touching the host's network.

:func:`run_in_netns` starts a thread, moves only that thread into a new network namespace
(``unshare(CLONE_NEWNET)``: namespaces belong to threads on Linux), runs ``ip`` commands to set
it up and then the given function there. Sockets created by that thread, and processes it
starts, live in the namespace; everything else in the process keeps the host's network. The
namespace disappears when its last socket and process are gone, so nothing persists.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
IP = shutil.which("ip") or "/usr/sbin/ip"


class NetnsUnavailable(RuntimeError):
    """This host cannot give a thread its own network namespace (the reason says why)."""


def _unshare_net() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise NetnsUnavailable(f"unshare(CLONE_NEWNET) failed: {os.strerror(errno)}")


def _run_ip(args: Sequence[str]) -> None:
    proc = subprocess.run([IP, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise NetnsUnavailable(f"'ip {' '.join(args)}' failed: {proc.stderr.strip()}")


def run_in_netns(fn: Callable[[], T], setup: Sequence[Sequence[str]] = ()) -> T:
    """``fn()`` in a fresh network namespace after ``ip <args>`` for each of ``setup``.

    Raises :class:`NetnsUnavailable` if the namespace or its setup cannot be made; any other
    exception from ``fn`` is re-raised here.
    """
    if not os.path.exists(IP):
        raise NetnsUnavailable("the 'ip' command (iproute2) is not installed")
    outcome: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            _unshare_net()
            for args in setup:
                _run_ip(args)
            outcome.append(fn())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=body, name="netns")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]
