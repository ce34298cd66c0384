"""Import our spead2 into the pytest process, refusing any other spead2.

Calibration mode: with ``SPEAD2_INTEROP_CALIBRATE=1`` the location check is skipped, so the
suite can be run in a scratch venv where ``spead2`` is the real 4.5.1 wheel (and our package is
not importable). Every "ours" test must pass there: that proves the tests expect exactly what
the reference implementation does. Never set it when testing our implementation.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

import pytest

from .peer import REPO_ROOT

CALIBRATE_ENV = "SPEAD2_INTEROP_CALIBRATE"


def calibrating() -> bool:
    """True when the suite is being calibrated against the real spead2."""
    return os.environ.get(CALIBRATE_ENV) == "1"


def import_ours(*submodules: str) -> ModuleType:
    """``spead2`` (ours) with the given submodules imported; fails the test if unavailable."""
    try:
        spead2 = importlib.import_module("spead2")
        for name in submodules:
            importlib.import_module(f"spead2.{name}")
    except ImportError as exc:
        pytest.fail(f"our spead2 is not importable (native core not built?): {exc!r}")
    location = Path(str(spead2.__file__)).resolve()
    if not calibrating():
        assert location.is_relative_to(REPO_ROOT / "spead2"), f"spead2 imported from {location}"
    return spead2
