"""Offline check of deploy/compose.yaml (no Docker engine or compose plugin needed).

Checks: the three services exist; every bind-mount source and the build's Dockerfile exist
relative to the compose file; the gateway's published ports are the ones the container
configuration listens on; Prometheus scrapes the gateway service by name. Needs PyYAML.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent


def problems(compose_path: Path) -> list[str]:
    """Every problem found, as text (empty when the file is fine)."""
    compose = yaml.safe_load(compose_path.read_text(encoding="utf-8"))
    found: list[str] = []
    services = compose.get("services", {})
    for name in ("gateway", "prometheus", "grafana"):
        if name not in services:
            found.append(f"service {name!r} is missing")
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")) and not (DEPLOY / source).exists():
                found.append(f"{name}: bind-mount source {source} does not exist")
            elif not source.startswith((".", "/")) and source not in compose.get("volumes", {}):
                found.append(f"{name}: named volume {source} is not declared")
    build = services.get("gateway", {}).get("build", {})
    context = DEPLOY / build.get("context", ".")
    if not (context / build.get("dockerfile", "Dockerfile")).is_file():
        found.append("gateway: the Dockerfile is not where build.dockerfile says")
    ports = {p.split(":")[-1] for p in services.get("gateway", {}).get("ports", [])}
    for needed in ("50051/tcp", "9464/tcp", "8888/udp"):
        if needed not in ports:
            found.append(f"gateway: port {needed} is not published")
    scrape = (DEPLOY / "prometheus/prometheus.yml").read_text(encoding="utf-8")
    if "gateway:9464" not in scrape:
        found.append("prometheus.yml does not scrape gateway:9464")
    return found


def main() -> int:
    """Prints problems; exit status 1 if there are any."""
    found = problems(DEPLOY / "compose.yaml")
    for problem in found:
        print(f"compose.yaml: {problem}", file=sys.stderr)
    if not found:
        print("compose.yaml: OK")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
