#!/usr/bin/env python3
"""Pinned, offline JSON schemas and binary for ``kubeconform -strict``.

kubeconform's default schema source (raw.githubusercontent.com) is not reachable from CI, so
everything comes from package registries, pinned to exact versions and verified:

* Kubernetes kinds: the strict schema tree bundled in the PyPI wheel ``kubernetes-validate``
  (downloaded by pip with ``--require-hashes`` and checked again here). Its files point into a
  shared ``_definitions.json`` through absolute https URLs, which kubeconform would try to
  fetch; each kind is rewritten as a standalone schema carrying only the definitions it reaches.
  The tree sets ``additionalProperties: false`` on every object, which is what makes
  ``kubeconform -strict`` reject unknown fields (``-strict`` itself only selects the
  ``-strict`` schema directory and rejects duplicate keys).
* Prometheus Operator kinds (PodMonitor...): the CRD YAML in the Go module
  github.com/prometheus-operator/prometheus-operator (downloaded by ``go mod download``, which
  checks the Go checksum database; the module's h1 hash is compared with the pin here too).
  See ``to_json_schema`` and ``crd_schema`` for the conversion.
* kubeconform itself: ``go install`` at a pinned version; ``go version -m`` must report the
  pinned module hash.

Everything is cached under ``$SPEAD2_K8S_CACHE`` (default
``${XDG_CACHE_HOME:-~/.cache}/spead2-k8s-schemas``) in a directory keyed by every pin and by
this script's content, so reruns are offline. Prints the kubeconform command prefix (binary,
``-kubernetes-version`` and the two ``-schema-location`` flags), one argument per line.
Needs: pip and PyYAML for the running Python, go.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

KUBERNETES_VERSION = "1.32.0"  # matches k8s.io/api v0.32.x used by deploy/kubernetes/k8sstrict
KUBERNETES_VALIDATE = "1.32.0"
KUBERNETES_VALIDATE_WHEEL = "kubernetes_validate-1.32.0-py3-none-any.whl"
KUBERNETES_VALIDATE_SHA256 = "0d5610622bd9c8fdea67f114faf4dc71fda755c9640e58a1ad9f4bc13c8b7751"
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator"
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"
PROMETHEUS_OPERATOR_H1 = "h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s="
PROMETHEUS_OPERATOR_CRDS = "example/prometheus-operator-crd"
KUBECONFORM = "github.com/yannh/kubeconform"
KUBECONFORM_VERSION = "v0.8.0"
KUBECONFORM_H1 = "h1:loDYd3a3spjIFrauqW67CDKF55Oo9R6uvC8AvpVd4ug="

DRAFT = "https://json-schema.org/draft/2020-12/schema"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
# kubeconform fills these templates; the k8s one is the layout of its default source.
K8S_TEMPLATE = (
    "{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/"
    "{{ .ResourceKind }}{{ .KindSuffix }}.json"
)
CRD_TEMPLATE = "crds/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json"
# A $ref of the bundled tree: into _definitions.json, from a kind file or from within it.
REF = re.compile(r"^(?:/api/_definitions\.json)?#/\$defs/(?P<name>[^/]+)$")
# Keywords whose value maps names to schemas: a key there such as "$ref" (a field of
# JSONSchemaProps) is a property name, not a keyword.
NAMED_SCHEMAS = ("properties", "patternProperties", "$defs")

Schema = dict[str, Any]


def cache_root() -> Path:
    explicit = os.environ.get("SPEAD2_K8S_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "spead2-k8s-schemas"


def schema_key() -> str:
    """Directory name: every pin, plus this script so a changed conversion is not reused."""
    script = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    return (
        f"k8s-{KUBERNETES_VERSION}_kv-{KUBERNETES_VALIDATE}"
        f"_po-{PROMETHEUS_OPERATOR_VERSION}_{script}"
    )


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"k8s_schemas: {' '.join(cmd)} failed:\n{result.stderr}")
    return result.stdout


# --- Kubernetes kinds: kubernetes-validate wheel --------------------------------------------


def fetch_wheel(work: Path) -> Path:
    """The pinned wheel, downloaded by pip from the configured index with hash checking."""
    requirement = work / "requirements.txt"
    requirement.write_text(
        f"kubernetes-validate=={KUBERNETES_VALIDATE} --hash=sha256:{KUBERNETES_VALIDATE_SHA256}\n",
        encoding="utf-8",
    )
    run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
         "--only-binary=:all:", "--require-hashes", "-r", str(requirement), "-d", str(work)],
        cwd=work,
    )  # fmt: skip
    wheel = work / KUBERNETES_VALIDATE_WHEEL
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != KUBERNETES_VALIDATE_SHA256:
        sys.exit(f"k8s_schemas: {wheel.name}: sha256 {digest}, expected the pinned one")
    return wheel


def rewrite_refs(node: Any) -> Any:
    """A copy of ``node`` whose refs point into the same document's ``$defs``; no ``$id``."""
    if isinstance(node, list):
        return [rewrite_refs(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: Schema = {}
    for key, value in node.items():
        if key == "$id":
            continue  # would make refs resolve against https://kubernetes.io/...
        if key == "$ref":
            out[key] = f"#/$defs/{ref_name(value)}"
        elif key in NAMED_SCHEMAS:
            out[key] = {name: rewrite_refs(sub) for name, sub in value.items()}
        else:
            out[key] = rewrite_refs(value)
    return out


def ref_name(ref: str) -> str:
    match = REF.match(ref)
    if match is None:
        raise ValueError(f"unexpected $ref {ref!r}")  # fail rather than let kubeconform fetch it
    return match["name"]


def referenced(node: Any) -> Iterator[str]:
    """Definition names referenced anywhere in ``node`` (not transitively)."""
    if isinstance(node, list):
        for item in node:
            yield from referenced(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield ref_name(value)
            elif key in NAMED_SCHEMAS:
                for sub in value.values():
                    yield from referenced(sub)
            else:
                yield from referenced(value)


def closure(root: Any, definitions: Schema) -> Schema:
    """The definitions reachable from ``root``, refs rewritten."""
    found: Schema = {}
    pending = list(referenced(root))
    while pending:
        name = pending.pop()
        if name not in found:
            found[name] = rewrite_refs(definitions[name])
            pending += referenced(definitions[name])
    return dict(sorted(found.items()))


def standalone(schema: Schema, definitions: Schema) -> Schema:
    out = rewrite_refs(schema)
    out["$schema"] = DRAFT
    out["$defs"] = closure(schema, definitions)
    return out


def kind_file(gvk: dict[str, str]) -> str:
    """The file name kubeconform derives from apiVersion and kind (its KindSuffix)."""
    group = gvk["group"].split(".")[0]
    suffix = f"-{group}" if group else ""
    return f"{gvk['kind'].lower()}{suffix}-{gvk['version']}.json"


def write_kubernetes_schemas(wheel: Path, out: Path) -> int:
    prefix = f"kubernetes_validate/kubernetes-json-schema/v{KUBERNETES_VERSION}-local-strict/"
    with zipfile.ZipFile(wheel) as archive:
        files = {
            name.removeprefix(prefix): json.loads(archive.read(name))
            for name in archive.namelist()
            if name.startswith(prefix) and name.endswith(".json")
        }
    definitions: Schema = files.pop("_definitions.json")["$defs"]
    written: dict[str, str] = {}
    for source, schema in sorted(files.items()):
        converted = None
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            target = kind_file(gvk)
            if written.setdefault(target, source) != source:
                raise ValueError(f"{target}: both {written[target]} and {source}")
            converted = converted or standalone(schema, definitions)
            (out / target).write_text(json.dumps(converted), encoding="utf-8")
    return len(written)


# --- Prometheus Operator kinds: CRDs from the Go module ----------------------------------


def fetch_go_module(work: Path, module: str, version: str, h1: str) -> Path:
    """Module source directory, from the Go proxy; the checksum database and the pin agree."""
    info = json.loads(run(["go", "mod", "download", "-json", f"{module}@{version}"], cwd=work))
    if info.get("Sum") != h1:
        sys.exit(f"k8s_schemas: {module}@{version}: sum {info.get('Sum')}, expected {h1}")
    return Path(info["Dir"])


def to_json_schema(node: Any) -> Any:
    """An OpenAPI v3 (structural CRD) schema as a strict JSON schema.

    Every object that lists its ``properties`` gets ``additionalProperties: false`` unless it
    says otherwise or preserves unknown fields: the API server prunes (drops) unknown fields
    of a custom resource, so a misspelt field would silently do nothing; strictness turns that
    into an error, like the built-in kinds' strict schemas do. Objects without ``properties``
    are free-form maps and stay open. ``nullable`` becomes a ``null`` type, and an
    ``x-kubernetes-int-or-string`` field without its own ``anyOf`` accepts both types.
    """
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: Schema = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not", "anyOf", "allOf", "oneOf"):
            out[key] = to_json_schema(value)
        elif key != "nullable":
            out[key] = value
    if node.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if node.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    preserves = node.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in node and "additionalProperties" not in node and not preserves:
        out["additionalProperties"] = False
    return out


def crd_schema(crd: Schema, version: Schema, definitions: Schema) -> Schema:
    """One served version of a CRD; metadata is checked with the built-in ObjectMeta schema
    (the CRD leaves it as a bare object because the API server validates it itself)."""
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    schema = to_json_schema(version["schema"]["openAPIV3Schema"])
    properties = schema["properties"]
    properties["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
    properties["kind"] = {"type": "string", "enum": [kind]}
    properties["metadata"] = {"$ref": f"#/$defs/{OBJECT_META}"}
    schema["$schema"] = DRAFT
    schema["$defs"] = closure(properties["metadata"], definitions)
    return schema


class CrdLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe loading without YAML 1.1's ``=`` value tag, which PyYAML cannot construct and
    which an enum of match operators contains."""


CrdLoader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:value"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def write_crd_schemas(crd_dir: Path, wheel: Path, out: Path) -> int:
    prefix = f"kubernetes_validate/kubernetes-json-schema/v{KUBERNETES_VERSION}-local-strict/"
    with zipfile.ZipFile(wheel) as archive:
        definitions = json.loads(archive.read(f"{prefix}_definitions.json"))["$defs"]
    count = 0
    for path in sorted(crd_dir.glob("*.yaml")):
        crd = yaml.load(path.read_text(encoding="utf-8"), Loader=CrdLoader)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"].lower()
        (out / group).mkdir(parents=True, exist_ok=True)
        for version in crd["spec"]["versions"]:
            schema = crd_schema(crd, version, definitions)
            target = out / group / f"{kind}_{version['name']}.json"
            target.write_text(json.dumps(schema), encoding="utf-8")
            count += 1
    return count


def build_schemas(final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=".build-") as tmp:
        work = Path(tmp)
        staged = work / "schemas"
        k8s_dir = staged / f"v{KUBERNETES_VERSION}-standalone-strict"
        k8s_dir.mkdir(parents=True)
        wheel = fetch_wheel(work)
        kinds = write_kubernetes_schemas(wheel, k8s_dir)
        module = fetch_go_module(
            work, PROMETHEUS_OPERATOR, PROMETHEUS_OPERATOR_VERSION, PROMETHEUS_OPERATOR_H1
        )
        crds = write_crd_schemas(module / PROMETHEUS_OPERATOR_CRDS, wheel, staged / "crds")
        if kinds < 100 or crds < 10:
            sys.exit(f"k8s_schemas: only {kinds} Kubernetes and {crds} CRD schemas written")
        try:
            staged.rename(final)  # atomic: a half-built tree is never used
        except OSError:
            if not final.is_dir():  # else a concurrent run built the same tree first
                raise
    print(f"k8s_schemas: {kinds} Kubernetes, {crds} CRD schemas in {final}", file=sys.stderr)


# --- kubeconform ------------------------------------------------------------------------


def module_hash(binary: Path, module: str, cwd: Path) -> str | None:
    """The h1 hash of ``module`` that ``go version -m`` reads from the binary's build info."""
    for line in run(["go", "version", "-m", str(binary)], cwd=cwd).splitlines():
        words = line.split()
        if len(words) >= 4 and words[0] == "mod" and words[1] == module:
            return words[3]
    return None


def kubeconform(root: Path) -> Path:
    """The pinned kubeconform, built by ``go install`` once into the cache."""
    bindir = root / f"kubeconform-{KUBECONFORM_VERSION}"
    binary = bindir / "kubeconform"
    if not binary.exists():
        env = dict(os.environ, GOBIN=str(bindir))
        target = f"{KUBECONFORM}/cmd/kubeconform@{KUBECONFORM_VERSION}"
        root.mkdir(parents=True, exist_ok=True)
        run(["go", "install", target], cwd=root, env=env)
    found = module_hash(binary, KUBECONFORM, root)
    if found != KUBECONFORM_H1:
        sys.exit(f"k8s_schemas: {binary}: module hash {found}, expected {KUBECONFORM_H1}")
    return binary


def main() -> None:
    root = cache_root()
    schemas = root / schema_key()
    if not schemas.is_dir():
        build_schemas(schemas)
    args = [
        str(kubeconform(root)),
        "-kubernetes-version", KUBERNETES_VERSION,
        "-schema-location", f"{schemas}/{K8S_TEMPLATE}",
        "-schema-location", f"{schemas}/{CRD_TEMPLATE}",
    ]  # fmt: skip
    print("\n".join(args))


if __name__ == "__main__":
    main()
