"""Helpers shared by the scripts that run inside the peer venv (the real spead2 4.5.1).

Importing this module checks that ``spead2`` really is the released wheel and not the package
from this repository, which would make every interop test compare our code with itself.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import spead2

EXPECTED_VERSION = "4.5.1"
REPO_ROOT = Path(__file__).resolve().parents[2]


def check_real_spead2() -> None:
    """Raise if the imported spead2 is not the 4.5.1 wheel."""
    location = Path(spead2.__file__).resolve()
    if spead2.__version__ != EXPECTED_VERSION:
        raise SystemExit(f"peer spead2 is {spead2.__version__}, expected {EXPECTED_VERSION}")
    if location.is_relative_to(REPO_ROOT / "spead2"):
        raise SystemExit(f"peer imported the repository's spead2 ({location})")


def flavour(bits: int) -> spead2.Flavour:
    """SPEAD-64-``bits`` with no bug-compatibility flags."""
    return spead2.Flavour(4, 64, bits, 0)


def dump(path: Path, payload: Any) -> None:
    """Pickle ``payload`` (plain Python and numpy objects only) to ``path``."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as f:
        pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)


check_real_spead2()
