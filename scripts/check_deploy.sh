#!/usr/bin/env bash
# Offline checks of deploy/: Prometheus rules (syntax and unit tests), the Prometheus config,
# the compose file, the gateway configurations shipped with the image and the DaemonSet, and
# the Kubernetes manifests (kustomize render, then typed strict decoding with k8s.io/api).
#
# Needs: promtool (Debian package prometheus), kubectl (for `kubectl kustomize`) or
# kustomize, go (builds deploy/kubernetes/k8sstrict; its modules come from the Go proxy or
# the module cache), a python3 with PyYAML (PYTHON_YAML, default python3), .venv.
# kubeconform -strict runs only when KUBECONFORM_SCHEMAS names a local schema location
# (passed to -schema-location): its default source is on the internet. The script says so
# when it does not run it.
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

echo "== Kubernetes: kubeconform -strict (PodMonitor is a CRD without a bundled schema)"
if [ -n "${KUBECONFORM_SCHEMAS:-}" ]; then
    summary=$(kubeconform -strict -summary -skip PodMonitor \
        -schema-location "$KUBECONFORM_SCHEMAS" "$rendered")
    echo "$summary"
    # Guard against a vacuous pass (kubeconform ignores files it does not recognise).
    grep -q "Valid: 4, Invalid: 0, Errors: 0, Skipped: 1" <<<"$summary"
else
    echo "kubeconform NOT RUN: set KUBECONFORM_SCHEMAS to a local copy of the"
    echo "kubernetes-json-schema tree (e.g. '/schemas/{{ .NormalizedKubernetesVersion }}-standalone-strict/{{ .ResourceKind }}{{ .KindSuffix }}.json');"
    echo "its default schema source (raw.githubusercontent.com) is not reachable offline."
fi
echo "deploy checks: OK"
