"""Fixtures of the reliability tests (helpers live in ``rel_support``)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

GATEWAY_TESTS = Path(__file__).resolve().parents[1] / "gateway"
if str(GATEWAY_TESTS) not in sys.path:
    sys.path.insert(0, str(GATEWAY_TESTS))  # gateway_harness

from util.ours import import_ours  # noqa: E402


@pytest.fixture(scope="session")
def ours() -> ModuleType:
    """Our spead2, with ``send`` and ``recv`` imported."""
    return import_ours("send", "recv")
