#!/usr/bin/env bash
# Runs every test: Rust unit tests of the core, then pytest (unit, interop with the real
# spead2 4.5.1 in its own venv, end to end). Builds the native core once, in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q "maturin>=1.5,<2" "numpy>=1.24" "pytest>=8" "pytest-asyncio>=0.23" \
    "pytest-timeout>=2" "hypothesis>=6" ruff

# The peer: the real spead2 from the package registry, never imported beside ours.
if ! .venv-peer/bin/python -c "import spead2" 2>/dev/null; then
    "$PYTHON" -m venv .venv-peer
    .venv-peer/bin/pip install -q "spead2==4.5.1" numpy
fi

echo "== cargo test (release)"
(cd native && cargo test --release --quiet)

echo "== build the extension (release)"
.venv/bin/maturin develop --release --quiet

echo "== the gateway (service/) and its codegen/typing tools"
.venv/bin/pip install -q -e ./service "grpcio-tools==1.85.1" mypy types-protobuf grpc-stubs pyyaml
echo "== generated protobuf code is current"
bash scripts/gen_proto.sh --check

echo "== ruff and mypy"
.venv/bin/ruff check spead2 tests service deploy bench scripts docs/examples
.venv/bin/mypy service/spead2_gateway

echo "== pytest"
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"

echo "== Go client: generated stubs current, vet, tests (end to end against the daemon)"
bash scripts/gen_go_proto.sh --check
(cd clients/go && go vet ./... && go test -count=1 ./...)

echo "== fuzz smoke run (coverage-guided, libFuzzer on stable): 10 s per target"
bash scripts/fuzz_smoke.sh 10

echo "== docs: generated pages current, examples run, mkdocs --strict"
bash scripts/build_docs.sh

echo "== deploy checks: alert rules (promtool), compose, kustomize render, strict manifest decode"
PYTHON_YAML=.venv/bin/python bash scripts/check_deploy.sh
