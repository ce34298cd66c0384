#!/usr/bin/env bash
# Builds the documentation and checks that it is true:
#   1. installs mkdocs into .venv if it is missing;
#   2. fails if docs/config-reference.md or docs/grpc-reference.md differ from what their
#      generators produce now;
#   3. fails if a code block marked <!-- example: NAME.py --> differs from docs/examples/NAME.py
#      (FIX_EXAMPLES=1 rewrites the blocks instead);
#   4. runs every docs/examples/*.py with a timeout, failing on any error;
#   5. runs `mkdocs build --strict` into a temporary directory.
# Expects the dev venv of scripts/test.sh (spead2 and spead2_gateway importable).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

if ! "$PY" -c "import mkdocs" 2>/dev/null; then
    .venv/bin/pip install -q "mkdocs>=1.6,<2"
fi

echo "== generated reference pages are current"
"$PY" scripts/gen_config_reference.py --check
"$PY" scripts/gen_grpc_reference.py --check

echo "== example code shown in the pages matches docs/examples"
"$PY" - <<'PYEOF'
import os
import re
import sys
from pathlib import Path

fix = os.environ.get("FIX_EXAMPLES") == "1"
block = re.compile(r"<!-- example: ([\w.-]+\.py) -->\n```python\n(.*?)```\n", re.S)
bad = []
used = set()
for page in sorted(Path("docs").glob("*.md")):
    text = page.read_text(encoding="utf-8")

    def check(match: re.Match) -> str:
        name = match.group(1)
        used.add(name)
        source = Path("docs/examples", name)
        if not source.exists():
            bad.append(f"{page}: example {name} does not exist")
            return match.group(0)
        code = source.read_text(encoding="utf-8")
        if match.group(2) != code:
            bad.append(f"{page}: the block of {name} differs from {source}")
        return f"<!-- example: {name} -->\n```python\n{code}```\n"

    new = block.sub(check, text)
    if fix and new != text:
        page.write_text(new, encoding="utf-8")
for source in sorted(Path("docs/examples").glob("*.py")):
    if source.name not in used:
        bad.append(f"{source} is not shown in any page")
if bad and not fix:
    sys.exit("\n".join(bad) + "\nrun FIX_EXAMPLES=1 bash scripts/build_docs.sh to copy them")
PYEOF

echo "== examples run"
for example in docs/examples/*.py; do
    echo "-- $example"
    # Each example finishes in well under 5 s; the margin is for a loaded machine.
    if ! timeout 60 "$PY" "$example" >/dev/null; then
        echo "FAILED: $example" >&2
        exit 1
    fi
done

echo "== mkdocs build --strict"
site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
"$PY" -m mkdocs build --strict --quiet --site-dir "$site"
echo "docs OK"
