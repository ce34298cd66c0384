# Shared by scripts/gen_proto.sh and scripts/gen_go_proto.sh (sourced, not run): the pinned
# protoc (the one bundled with grpcio-tools), argument parsing, and the write-or-check step.

# The generated code depends on protoc's version, so both generators use this one.
GRPCIO_TOOLS_VERSION=1.85.1

# protogen_mode NAME ARGS...: prints "write" or "check" (--check); exits 2 on anything else.
protogen_mode() {
    local name=$1
    shift
    case "${1:-}" in
        "") echo write ;;
        --check) echo check ;;
        *) echo "usage: $name [--check]" >&2; exit 2 ;;
    esac
}

# protogen_require_tools NAME PYTHON: exits 2 unless PYTHON has the pinned grpcio-tools.
protogen_require_tools() {
    local name=$1 python=$2 have
    have=$("$python" -c 'import importlib.metadata as m; print(m.version("grpcio-tools"))' 2>/dev/null || true)
    if [ "$have" != "$GRPCIO_TOOLS_VERSION" ]; then
        echo "$name: need grpcio-tools==$GRPCIO_TOOLS_VERSION in $python (found: ${have:-none});" >&2
        echo "  $python -m pip install grpcio-tools==$GRPCIO_TOOLS_VERSION" >&2
        exit 2
    fi
}

# protogen_finish NAME MODE DEST GENERATED FILES...: copies FILES from GENERATED into DEST
# (write), or diffs them and exits 1 if DEST is stale (check).
protogen_finish() {
    local name=$1 mode=$2 dest=$3 generated=$4 f stale=0
    shift 4
    if [ "$mode" = check ]; then
        for f in "$@"; do
            if ! diff -u "$dest/$f" "$generated/$f"; then
                stale=1
            fi
        done
        if [ "$stale" -ne 0 ]; then
            echo "$name: $dest is stale; run: bash scripts/$name.sh" >&2
            exit 1
        fi
        echo "$name: $dest is up to date"
    else
        mkdir -p "$dest"
        for f in "$@"; do
            cp "$generated/$f" "$dest/$f"
        done
        echo "$name: wrote $* to $dest"
    fi
}
