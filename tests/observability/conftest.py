"""Makes ``gateway_harness`` (tests/gateway) importable for the observability tests."""

from __future__ import annotations

import sys
from pathlib import Path

GATEWAY_TESTS = Path(__file__).resolve().parents[1] / "gateway"
if str(GATEWAY_TESTS) not in sys.path:
    sys.path.insert(0, str(GATEWAY_TESTS))
