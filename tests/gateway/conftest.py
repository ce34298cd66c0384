"""Fixtures for the gateway tests (helpers live in ``gateway_harness``)."""

from __future__ import annotations

from types import ModuleType

import pytest
from util.ours import import_ours


@pytest.fixture(scope="session")
def ours() -> ModuleType:
    """Our spead2, with ``send`` and ``recv`` imported."""
    return import_ours("send", "recv")
