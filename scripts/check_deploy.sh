#!/usr/bin/env bash
# Offline checks of deploy/: Prometheus rules (syntax and unit tests), the Prometheus config,
# the compose file, the gateway configurations shipped with the image and the DaemonSet, and
# the Kubernetes manifests (kustomize render, then typed strict decoding with k8s.io/api and
# kubeconform -strict against JSON schemas, the PodMonitor custom resource included).
#
# Needs: promtool (Debian package prometheus), kubectl (for `kubectl kustomize`) or
# kustomize, go (builds deploy/kubernetes/k8sstrict and installs kubeconform; modules come
# from the Go proxy or the module cache), a python3 with PyYAML (PYTHON_YAML, default
# python3), .venv (whose pip fetches the schemas). scripts/k8s_schemas.py pins kubeconform
# and the schemas (PyPI wheel kubernetes-validate, CRDs from the prometheus-operator Go
# module), verifies them and caches them outside the repository: the first run needs PyPI
# and the Go proxy, later runs are offline.
set -euo pipefail
cd "$(dirname "$0")/.."
GOBIN_DIR=$(go env GOPATH 2>/dev/null || echo "$HOME/go")/bin
export PATH="$PATH:$GOBIN_DIR"

echo "== promtool: rules and their unit tests"
promtool check rules deploy/prometheus/spead2-gateway.rules.yaml
(cd deploy/prometheus/tests && promtool test rules ./*.yaml)
promtool check config --syntax-only deploy/prometheus/prometheus.yml

echo "== compose file (offline: no Docker engine needed)"
if docker compose version >/dev/null 2>&1; then
    docker compose -f deploy/compose.yaml config --quiet
fi
"${PYTHON_YAML:-python3}" deploy/check_compose.py

echo "== gateway configurations"
for config in deploy/gateway.container.toml deploy/kubernetes/gateway.toml deploy/gateway.example.toml; do
    .venv/bin/spead2-gateway --config "$config" --check-config >/dev/null
    echo "$config: OK"
done

echo "== Kubernetes: kustomize render"
rendered=$(mktemp --suffix=.yaml)
trap 'rm -f "$rendered"' EXIT
if command -v kustomize >/dev/null 2>&1; then
    kustomize build deploy/kubernetes >"$rendered"
else
    kubectl kustomize deploy/kubernetes >"$rendered"
fi
grep -q "kind: DaemonSet" "$rendered"
grep -q "dnsPolicy: ClusterFirstWithHostNet" "$rendered"

echo "== Kubernetes: typed strict decoding (offline; deploy/kubernetes/k8sstrict)"
validator=$(mktemp -d)
trap 'rm -f "$rendered"; rm -rf "$validator"' EXIT
(cd deploy/kubernetes/k8sstrict && go build -o "$validator/k8sstrict" .)
"$validator/k8sstrict" -skip=PodMonitor <"$rendered"

echo "== Kubernetes: kubeconform -strict (pinned schemas, PodMonitor CRD included)"
# Binary and -schema-location flags, one per line; fetched and verified once, then cached.
kubeconform_args=$(.venv/bin/python scripts/k8s_schemas.py)
mapfile -t kubeconform <<<"$kubeconform_args"
summary=$("${kubeconform[@]}" -strict -summary "$rendered")
echo "$summary"
# Guard against a vacuous pass: kubeconform ignores what it does not recognise and counts
# a kind without a schema as skipped only when told to; every resource must be Valid.
expected=5 # Namespace, ConfigMap, Service, DaemonSet, PodMonitor
[ "$(grep -c '^kind: ' "$rendered")" -eq "$expected" ]
grep -qx "Summary: $expected resources found in 1 file - Valid: $expected, Invalid: 0, Errors: 0, Skipped: 0" <<<"$summary"
echo "deploy checks: OK"
