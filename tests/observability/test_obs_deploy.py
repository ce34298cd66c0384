"""deploy/: the Dockerfile only copies what exists and what .dockerignore lets through, the
container health check tells SERVING from unreachable, the shipped configurations are
valid for the daemon, and kubeconform -strict with the pinned schemas of
scripts/k8s_schemas.py accepts the Kubernetes manifests but not a misspelt field."""

from __future__ import annotations

import copy
import fnmatch
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
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


# --- Kubernetes manifests: kubeconform -strict -------------------------------------------

Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def kubeconform() -> list[str]:
    """The pinned kubeconform and its -schema-location flags, as check_deploy.sh runs it."""
    if shutil.which("go") is None:
        pytest.skip("kubeconform is not installed: scripts/k8s_schemas.py needs go for it")
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "k8s_schemas.py")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    return [*result.stdout.splitlines(), "-strict", "-output", "json", "-verbose"]


@pytest.fixture(scope="module")
def manifests() -> list[Manifest]:
    """deploy/kubernetes rendered by kustomize."""
    if shutil.which("kustomize"):
        cmd = ["kustomize", "build", str(DEPLOY / "kubernetes")]
    elif shutil.which("kubectl"):
        cmd = ["kubectl", "kustomize", str(DEPLOY / "kubernetes")]
    else:
        pytest.skip("neither kustomize nor kubectl is installed")
    rendered = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120)
    return list(yaml.safe_load_all(rendered.stdout))


def _validate(kubeconform: list[str], text: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [*kubeconform, "-"], input=text, capture_output=True, text=True, timeout=120
    )
    resources: list[dict[str, Any]] = json.loads(result.stdout)["resources"]
    valid = all(r["status"] == "statusValid" for r in resources)
    assert (result.returncode == 0) == valid, result.stderr
    return resources


def _only(manifests: list[Manifest], kind: str) -> Manifest:
    (found,) = [copy.deepcopy(m) for m in manifests if m["kind"] == kind]
    return found


def test_kubeconform_accepts_manifests(kubeconform: list[str], manifests: list[Manifest]) -> None:
    """Every rendered resource, the PodMonitor custom resource included, validated (none
    skipped for want of a schema)."""
    resources = _validate(kubeconform, yaml.safe_dump_all(manifests))
    statuses = sorted((r["kind"], r["status"]) for r in resources)
    kinds = ["ConfigMap", "DaemonSet", "Namespace", "PodMonitor", "Service"]
    assert statuses == [(kind, "statusValid") for kind in kinds]


def _misspell(path: list[str | int], old: str, new: str) -> Callable[[Manifest], None]:
    """A mutation renaming field ``old`` to ``new`` in the object at ``path``."""

    def mutate(manifest: Manifest) -> None:
        node: Any = manifest
        for step in path:
            node = node[step]
        node[new] = node.pop(old)

    return mutate


MISSPELT = {
    "daemonset-top": ("DaemonSet", [], "spec", "spce"),
    "daemonset-pod": ("DaemonSet", ["spec", "template", "spec"], "hostNetwork", "hostNetwrok"),
    "daemonset-container": (
        "DaemonSet",
        ["spec", "template", "spec", "containers", 0, "securityContext"],
        "readOnlyRootFilesystem",
        "readOnlyRootFileSystem",
    ),
    "service-port": ("Service", ["spec", "ports", 0], "targetPort", "tragetPort"),
    "podmonitor-metadata": ("PodMonitor", ["metadata"], "labels", "lables"),
    "podmonitor-spec": ("PodMonitor", ["spec"], "podMetricsEndpoints", "podMetricEndpoints"),
    "podmonitor-relabeling": (
        "PodMonitor",
        ["spec", "podMetricsEndpoints", 0, "relabelings", 0],
        "targetLabel",
        "targetLable",
    ),
}


@pytest.mark.parametrize("case", sorted(MISSPELT))
def test_kubeconform_rejects_unknown_field(
    kubeconform: list[str], manifests: list[Manifest], case: str
) -> None:
    """A misspelt field, at any depth and in the CRD too, makes the resource invalid."""
    kind, path, old, new = MISSPELT[case]
    manifest = _only(manifests, kind)
    _misspell(path, old, new)(manifest)
    (resource,) = _validate(kubeconform, yaml.safe_dump(manifest))
    assert resource["status"] == "statusInvalid", resource
    # The message names the innermost failure; validationErrors only the outermost level.
    where = "".join(f"/{step}" for step in path)
    assert resource["msg"].endswith(f"at '{where}': additional properties '{new}' not allowed")


def test_kubeconform_rejects_duplicate_key(kubeconform: list[str]) -> None:
    """-strict also refuses a key given twice (plain YAML keeps the last one silently)."""
    text = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  name: b\n"
    (resource,) = _validate(kubeconform, text)
    assert resource["status"] == "statusError"
    assert 'key "name" already set in map' in resource["msg"]
