"""Shared fixtures: the real spead2 4.5.1 peer (subprocesses only) and its catalogue.

``spead2`` in this process is always ours; the peer runs from ``<repo>/.venv-peer``, which the
``peer`` fixture creates on first use. If it cannot be created, tests that need it fail (they
are not skipped), because an interop suite that silently skips proves nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))  # so `import util` works under any import mode

from util.peer import Peer, PeerUnavailable, ensure_peer_python, load_catalogue  # noqa: E402
from util.ports import free_tcp_port, free_udp_port  # noqa: E402
from util.reference import PeerReference  # noqa: E402


@pytest.fixture(scope="session")
def peer() -> Peer:
    """The real spead2 4.5.1, run as subprocesses from its own venv."""
    try:
        return Peer(ensure_peer_python())
    except PeerUnavailable as exc:
        pytest.fail(f"the spead2 4.5.1 peer venv is unavailable: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def catalogue() -> ModuleType:
    """``tests/peer/catalogue.py``: the heaps both sides agree on."""
    return load_catalogue()


@pytest.fixture
def udp_port() -> int:
    """A free UDP port on 127.0.0.1."""
    return free_udp_port()


@pytest.fixture
def tcp_port() -> int:
    """A free TCP port on 127.0.0.1."""
    return free_tcp_port()


@pytest.fixture(scope="session")
def peer_reference(
    peer: Peer, catalogue: ModuleType, tmp_path_factory: pytest.TempPathFactory
) -> PeerReference:
    """Peer-produced byte streams and the peer's reception of them, cached per session."""
    return PeerReference(peer, catalogue, tmp_path_factory.mktemp("peer"))
