"""The descriptor/item test vectors (``tests/peer/descriptor_vectors.py``), loaded once.

The same file runs in the peer venv as a script and here as a module (it needs only numpy).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

VECTORS_PATH = Path(__file__).resolve().parents[1] / "peer" / "descriptor_vectors.py"


def load_vectors() -> ModuleType:
    """``tests/peer/descriptor_vectors.py`` as a module of this process."""
    name = "spead2_descriptor_vectors"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, VECTORS_PATH)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
