#!/usr/bin/env bash
# Builds the libFuzzer targets in native/fuzz on the stable toolchain and runs each one
# for a bounded time (default 20 s) from its seed corpus. Exits non-zero on a build
# failure or on any crash/assertion found; crash inputs are written to $OUT/<target>/.
#
# Usage: scripts/fuzz_smoke.sh [seconds-per-target]   (env: FUZZ_OUT, CARGO_TARGET_DIR)
set -euo pipefail

SECS="${1:-20}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ_DIR="$ROOT/native/fuzz"
OUT="${FUZZ_OUT:-$(mktemp -d -t spead2-fuzz.XXXXXX)}"
TARGETS=(packet_parse heap_assembly tcp_framer)
HOST="$(rustc -vV | sed -n 's/^host: //p')"
TARGET_DIR="${CARGO_TARGET_DIR:-$FUZZ_DIR/target}"

# SanitizerCoverage instrumentation as cargo-fuzz applies it, minus -Zsanitizer (nightly
# only). --target keeps these flags off build scripts and proc macros.
export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 --cfg fuzzing"

(cd "$FUZZ_DIR" && cargo build --release --target "$HOST" --target-dir "$TARGET_DIR")

status=0
for target in "${TARGETS[@]}"; do
    work="$OUT/$target/corpus"
    crashes="$OUT/$target/crashes"
    mkdir -p "$work" "$crashes"
    # Work on a copy: the fuzzer adds inputs to its corpus directory.
    cp "$FUZZ_DIR/corpus/$target/"* "$work/"
    echo "== $target: ${SECS}s"
    # timeout is a backstop in case the fuzzer ignores max_total_time (e.g. a hang).
    if ! timeout --signal=KILL "$((SECS + 60))" \
        "$TARGET_DIR/$HOST/release/$target" \
        -max_total_time="$SECS" -rss_limit_mb=1024 -max_len=8192 -timeout=10 \
        -artifact_prefix="$crashes/" "$work" >"$OUT/$target/log.txt" 2>&1; then
        echo "!! $target failed; see $OUT/$target/log.txt and $crashes/" >&2
        tail -n 30 "$OUT/$target/log.txt" >&2
        status=1
    else
        tail -n 1 "$OUT/$target/log.txt"
    fi
done
exit "$status"
