"""deploy/: the Dockerfile only copies what exists and what .dockerignore lets through, the
container health check tells SERVING from unreachable, and the shipped configurations are
valid for the daemon."""

from __future__ import annotations

import fnmatch
import subprocess
import sys
from collections.abc import Iterator

import pytest
from gateway_harness import Daemon, daemon_env
from obs_support import REPO_ROOT, gateway_config
from util.ports import free_tcp_port, free_udp_port

DEPLOY = REPO_ROOT / "deploy"
HEALTHCHECK = DEPLOY / "healthcheck.py"


def _copy_sources() -> list[str]:
    """Sources of every COPY without --from in deploy/Dockerfile (context: repo root)."""
    sources: list[str] = []
    for line in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        words = line.split()
        if not words or words[0] != "COPY" or any(w.startswith("--from") for w in words):
            continue
        sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def _included(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore (last matching pattern wins) lets ``path`` into the context."""
    included = True
    for pattern in patterns:
        negate = pattern.startswith("!")
        bare = pattern.lstrip("!")
        if fnmatch.fnmatch(path, bare) or fnmatch.fnmatch(path, bare.removesuffix("/**")):
            included = negate
    return included


def test_dockerfile_copies_existing_unignored_files() -> None:
    """Each COPY source exists in the repository and is not excluded from the context."""
    lines = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [p.strip() for p in lines if p.strip() and not p.startswith("#")]
    sources = _copy_sources()
    assert "native/src" in sources and "deploy/healthcheck.py" in sources
    for source in sources:
        assert (REPO_ROOT / source).exists(), f"COPY {source}: no such path"
        assert _included(source, patterns), f"COPY {source}: excluded by .dockerignore"
    assert not _included(".venv", patterns) and not _included("native/target", patterns)


@pytest.mark.parametrize("config", ["gateway.container.toml", "kubernetes/gateway.toml"])
def test_shipped_configurations_are_valid(config: str) -> None:
    """The daemon accepts the configuration baked into the image and the Kubernetes one."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "spead2_gateway",
            "--config",
            str(DEPLOY / config),
            "--check-config",
        ],
        capture_output=True,
        text=True,
        env=daemon_env(),
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "0.0.0.0:50051" in result.stdout


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A running daemon."""
    config = gateway_config(free_udp_port(), free_udp_port())
    with Daemon(tmp_path_factory.mktemp("gateway"), config) as d:
        d.wait_ready()
        yield d
        assert d.terminate() == 0, d.log()


def _healthcheck(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), *args],
        capture_output=True,
        text=True,
        env=daemon_env(),
        timeout=60,
    )


def test_healthcheck_serving(daemon: Daemon) -> None:
    """SERVING, exit 0, for the gateway and for one stream."""
    for service in ("", "receive/beam"):
        result = _healthcheck(daemon.target, service)
        assert (result.returncode, result.stdout.strip()) == (0, "SERVING"), result.stderr


def test_healthcheck_unknown_service_and_no_server(daemon: Daemon) -> None:
    """A stream the gateway does not have, or no gateway at all, exit 1."""
    unknown = _healthcheck(daemon.target, "receive/nope")
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr
    nobody = _healthcheck(f"127.0.0.1:{free_tcp_port()}")
    assert nobody.returncode == 1 and "UNAVAILABLE" in nobody.stderr
