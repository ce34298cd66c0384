"""Run scripts under the real spead2 4.5.1 (the "peer"), always as subprocesses.

The peer lives in its own venv (``<repo>/.venv-peer``) and is never imported into the pytest
process, where ``spead2`` is ours. This module creates that venv on first use (under a file lock,
so parallel test runs do not race), runs the scripts in ``tests/peer`` with a timeout, and loads
``tests/peer/catalogue.py`` (numpy only) into the pytest process.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType

REPO_ROOT = Path(__file__).resolve().parents[2]
PEER_SCRIPTS = REPO_ROOT / "tests" / "peer"
PEER_VENV = REPO_ROOT / ".venv-peer"
PEER_SPEAD2_VERSION = "4.5.1"
PEER_REQUIREMENTS = (f"spead2=={PEER_SPEAD2_VERSION}", "numpy")
INSTALL_TIMEOUT = 900.0
CATALOGUE_MODULE = "spead2_interop_catalogue"


class PeerUnavailable(RuntimeError):
    """The peer venv does not exist and could not be created."""


class PeerError(RuntimeError):
    """A peer script failed, timed out, or exited before it was ready."""


@dataclass(frozen=True)
class PeerResult:
    """Output of a finished peer script."""

    stdout: str
    stderr: str


def peer_env() -> dict[str, str]:
    """Environment for peer processes: nothing that could put our ``spead2`` on sys.path."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")
    }
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _peer_version(python: Path) -> str | None:
    """The spead2 version importable by ``python``, or None."""
    if not python.exists():
        return None
    try:
        proc = subprocess.run(
            [str(python), "-c", "import numpy, spead2; print(spead2.__version__)"],
            capture_output=True,
            text=True,
            timeout=60,
            env=peer_env(),
            cwd=PEER_SCRIPTS,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _run_install_step(cmd: list[str]) -> None:
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, env=peer_env()
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PeerUnavailable(f"{' '.join(cmd)} failed: {exc}") from exc
    if proc.returncode != 0:
        raise PeerUnavailable(
            f"{' '.join(cmd)} exited with {proc.returncode}:\n"
            f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
        )


def _create_venv(venv: Path) -> None:
    base_python = getattr(sys, "_base_executable", None) or sys.executable
    python = venv / "bin" / "python"
    if not python.exists():
        _run_install_step([base_python, "-m", "venv", str(venv)])
    _run_install_step(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", *PEER_REQUIREMENTS]
    )


def _lock_path(venv: Path) -> Path:
    digest = hashlib.sha256(str(venv.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"spead2-peer-venv-{digest}.lock"


def ensure_peer_python(venv: Path = PEER_VENV) -> Path:
    """The peer interpreter, creating the venv (spead2 4.5.1 + numpy) if needed.

    Raises :class:`PeerUnavailable` with the reason if it cannot be created.
    """
    python = venv / "bin" / "python"
    if _peer_version(python) == PEER_SPEAD2_VERSION:
        return python
    with _lock_path(venv).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run may be installing right now
        version = _peer_version(python)
        if version != PEER_SPEAD2_VERSION:
            _create_venv(venv)
            version = _peer_version(python)
    if version != PEER_SPEAD2_VERSION:
        raise PeerUnavailable(
            f"{python} imports spead2 {version!r}, expected {PEER_SPEAD2_VERSION}"
        )
    return python


def load_catalogue() -> ModuleType:
    """``tests/peer/catalogue.py`` as a module of the pytest process (it needs only numpy)."""
    module = sys.modules.get(CATALOGUE_MODULE)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(CATALOGUE_MODULE, PEER_SCRIPTS / "catalogue.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[CATALOGUE_MODULE] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def _pump(stream: object, sink: queue.Queue[str | None]) -> None:
    """Copy lines from a pipe into a queue; None marks the end of the pipe."""
    for line in stream:  # type: ignore[attr-defined]
        sink.put(line)
    sink.put(None)


class PeerProcess:
    """A long-running peer script (such as a receiver) with a readiness handshake.

    The script prints ``READY`` on stdout once it may be talked to. Use as a context manager:
    leaving the block kills the process if it is still running.
    """

    def __init__(self, python: Path, script: str, args: list[str]) -> None:
        self.argv = [str(python), str(PEER_SCRIPTS / script), *args]
        self._proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=peer_env(),
            cwd=PEER_SCRIPTS,
        )
        self._stdout: queue.Queue[str | None] = queue.Queue()
        self._stderr: queue.Queue[str | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=_pump, args=(self._proc.stdout, self._stdout), daemon=True),
            threading.Thread(target=_pump, args=(self._proc.stderr, self._stderr), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self._seen_stdout: list[str] = []

    def __enter__(self) -> PeerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()

    def _drain(self, q: queue.Queue[str | None]) -> str:
        lines = []
        while True:
            try:
                line = q.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                lines.append(line)
        return "".join(lines)

    def _failure(self, what: str) -> PeerError:
        for thread in self._threads:
            thread.join(timeout=5)
        stdout = "".join(self._seen_stdout) + self._drain(self._stdout)
        return PeerError(
            f"{what}: {' '.join(self.argv)}\nstdout:\n{stdout}\n"
            f"stderr:\n{self._drain(self._stderr)}"
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the script prints ``READY``; raise :class:`PeerError` if it never does."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._stdout.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                self._proc.kill()
                raise self._failure(f"peer not ready after {timeout} s") from None
            if line is None:
                self._proc.wait()
                raise self._failure(f"peer exited ({self._proc.returncode}) before READY")
            self._seen_stdout.append(line)
            if line.strip() == "READY":
                return

    def finish(self, timeout: float = 60.0) -> PeerResult:
        """Wait for a clean exit and return the output; raise :class:`PeerError` otherwise."""
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
            raise self._failure(f"peer still running after {timeout} s") from None
        if self._proc.returncode != 0:
            raise self._failure(f"peer exited with {self._proc.returncode}")
        for thread in self._threads:
            thread.join(timeout=5)
        stdout = "".join(self._seen_stdout) + self._drain(self._stdout)
        return PeerResult(stdout, self._drain(self._stderr))


@dataclass(frozen=True)
class Peer:
    """The real spead2, reachable through scripts in ``tests/peer``."""

    python: Path

    def run(self, script: str, *args: str, timeout: float = 60.0) -> PeerResult:
        """Run a script to completion; raise :class:`PeerError` with its stderr on failure."""
        argv = [str(self.python), str(PEER_SCRIPTS / script), *args]
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=peer_env(),
                cwd=PEER_SCRIPTS,
            )
        except subprocess.TimeoutExpired as exc:
            raise PeerError(
                f"peer timed out after {timeout} s: {' '.join(argv)}\nstderr:\n{exc.stderr!r}"
            ) from exc
        if proc.returncode != 0:
            raise PeerError(
                f"peer exited with {proc.returncode}: {' '.join(argv)}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return PeerResult(proc.stdout, proc.stderr)

    def start(self, script: str, *args: str) -> PeerProcess:
        """Start a script in the background (see :class:`PeerProcess`)."""
        return PeerProcess(self.python, script, list(args))
