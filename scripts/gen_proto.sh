#!/usr/bin/env bash
# Regenerates the Python code of the gateway API from proto/spead2/gateway/v1/gateway.proto
# into service/spead2_gateway/_proto/ (gateway_pb2.py and its type stub gateway_pb2.pyi).
#
#   bash scripts/gen_proto.sh           regenerate in place
#   bash scripts/gen_proto.sh --check   fail (exit 1, with a diff) if the committed code is stale
#
# The output depends on the protoc bundled with grpcio-tools, so its version is pinned in
# scripts/lib/protogen.sh: the script installs nothing and refuses to run with another
# version. PYTHON selects the interpreter (default: .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/protogen.sh

PYTHON=${PYTHON:-.venv/bin/python}
PROTO=spead2/gateway/v1/gateway.proto
DEST=service/spead2_gateway/_proto
FILES=(gateway_pb2.py gateway_pb2.pyi)

mode=$(protogen_mode gen_proto "$@")
protogen_require_tools gen_proto "$PYTHON"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$PYTHON" -m grpc_tools.protoc -I proto --python_out="$out" --pyi_out="$out" "proto/$PROTO"
generated="$out/$(dirname "$PROTO")"

protogen_finish gen_proto "$mode" "$DEST" "$generated" "${FILES[@]}"
