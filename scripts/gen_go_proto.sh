#!/usr/bin/env bash
# Regenerates the Go stubs of the gateway API from proto/spead2/gateway/v1/gateway.proto into
# clients/go/gen/gatewayv1/ (gateway.pb.go and gateway_grpc.pb.go).
#
#   bash scripts/gen_go_proto.sh           regenerate in place
#   bash scripts/gen_go_proto.sh --check   fail (exit 1, with a diff) if the committed code is stale
#
# protoc is the one bundled with grpcio-tools (pinned in scripts/lib/protogen.sh) run through
# PYTHON (default: .venv/bin/python). The Go plugins are pinned below and installed with
# `go install` into GO_PLUGIN_BIN (default: a cache directory named after the versions), so
# the output only depends on these three versions. The .proto's go_package is overridden with
# M options: the Go import path belongs to the Go module, not to the API definition.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/protogen.sh

PROTOC_GEN_GO_VERSION=v1.36.11
PROTOC_GEN_GO_GRPC_VERSION=v1.6.0
PYTHON=${PYTHON:-.venv/bin/python}
PROTO=spead2/gateway/v1/gateway.proto
MODULE=github.com/spead2-rs/spead2-gateway-go
GO_PACKAGE="$MODULE/gen/gatewayv1;gatewayv1"
DEST=clients/go/gen/gatewayv1
FILES=(gateway.pb.go gateway_grpc.pb.go)

mode=$(protogen_mode gen_go_proto "$@")
protogen_require_tools gen_go_proto "$PYTHON"
if ! command -v go >/dev/null; then
    echo "gen_go_proto: the Go toolchain (go) is not on PATH" >&2
    exit 2
fi

cache=${XDG_CACHE_HOME:-$HOME/.cache}
GO_PLUGIN_BIN=${GO_PLUGIN_BIN:-$cache/spead2-gateway-go/protoc-gen-go-$PROTOC_GEN_GO_VERSION-grpc-$PROTOC_GEN_GO_GRPC_VERSION}
if [ ! -x "$GO_PLUGIN_BIN/protoc-gen-go" ] || [ ! -x "$GO_PLUGIN_BIN/protoc-gen-go-grpc" ]; then
    mkdir -p "$GO_PLUGIN_BIN"
    gobin=$(cd "$GO_PLUGIN_BIN" && pwd)
    GOBIN=$gobin GOFLAGS=-mod=mod go install \
        "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
    GOBIN=$gobin GOFLAGS=-mod=mod go install \
        "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
PATH="$GO_PLUGIN_BIN:$PATH" "$PYTHON" -m grpc_tools.protoc -I proto \
    --go_out="$out" --go_opt=paths=source_relative --go_opt="M$PROTO=$GO_PACKAGE" \
    --go-grpc_out="$out" --go-grpc_opt=paths=source_relative --go-grpc_opt="M$PROTO=$GO_PACKAGE" \
    "proto/$PROTO"
generated="$out/$(dirname "$PROTO")"

protogen_finish gen_go_proto "$mode" "$DEST" "$generated" "${FILES[@]}"
