#!/usr/bin/env bash
# Regenerates the Python code of the gateway API from proto/spead2/gateway/v1/gateway.proto
# into service/spead2_gateway/_proto/ (gateway_pb2.py and its type stub gateway_pb2.pyi).
#
#   bash scripts/gen_proto.sh           regenerate in place
#   bash scripts/gen_proto.sh --check   fail (exit 1, with a diff) if the committed code is stale
#
# The output depends on the protoc bundled with grpcio-tools, so the version is pinned here:
# the script installs nothing and refuses to run with another version. PYTHON selects the
# interpreter (default: .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."

GRPCIO_TOOLS_VERSION=1.85.1
PYTHON=${PYTHON:-.venv/bin/python}
PROTO=spead2/gateway/v1/gateway.proto
DEST=service/spead2_gateway/_proto
FILES=(gateway_pb2.py gateway_pb2.pyi)

mode=write
case "${1:-}" in
    "") ;;
    --check) mode=check ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

have=$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("grpcio-tools"))' 2>/dev/null || true)
if [ "$have" != "$GRPCIO_TOOLS_VERSION" ]; then
    echo "gen_proto: need grpcio-tools==$GRPCIO_TOOLS_VERSION in $PYTHON (found: ${have:-none});" >&2
    echo "  $PYTHON -m pip install grpcio-tools==$GRPCIO_TOOLS_VERSION" >&2
    exit 2
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$PYTHON" -m grpc_tools.protoc -I proto --python_out="$out" --pyi_out="$out" "proto/$PROTO"
generated="$out/$(dirname "$PROTO")"

if [ "$mode" = check ]; then
    stale=0
    for f in "${FILES[@]}"; do
        if ! diff -u "$DEST/$f" "$generated/$f"; then
            stale=1
        fi
    done
    if [ "$stale" -ne 0 ]; then
        echo "gen_proto: $DEST is stale; run: bash scripts/gen_proto.sh" >&2
        exit 1
    fi
    echo "gen_proto: $DEST is up to date"
else
    mkdir -p "$DEST"
    for f in "${FILES[@]}"; do
        cp "$generated/$f" "$DEST/$f"
    done
    echo "gen_proto: wrote ${FILES[*]} to $DEST"
fi
