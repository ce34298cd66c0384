#!/usr/bin/env python3
"""Generate docs/config-reference.md from service/spead2_gateway/config.py.

The keys, their defaults and their limits are read from the validator itself (the ``t.get_*``
calls of each section function, parsed with ``ast``); only the one-line descriptions live
here. The generator fails when the validator reads a key without a description or a
description names a key the validator no longer reads, so the page cannot drift.

    python scripts/gen_config_reference.py           # rewrite the page
    python scripts/gen_config_reference.py --check   # exit 1 if the page is stale
"""

from __future__ import annotations

import argparse
import ast
import difflib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "service" / "spead2_gateway" / "config.py"
OUTPUT = ROOT / "docs" / "config-reference.md"

# (TOML table, validator function, variable holding the table in that function).
SECTIONS: list[tuple[str, str, str, str]] = [
    ("(top level)", "parse_config", "root", "Keys outside any table."),
    ("[server]", "_server", "t", "The gRPC server."),
    ("[server.tls]", "_server", "tls_table", "TLS for the gRPC server; absent: plaintext."),
    ("[metrics]", "_metrics", "t", "The Prometheus endpoint."),
    ("[subscribe]", "_subscribe", "t", "Limits for subscriptions and stats watchers."),
    (
        "[[receive.streams]]",
        "_receive_stream,_receive_transport",
        "t",
        "One table per receive stream.",
    ),
    (
        "[receive.streams.memory_pool]",
        "_memory_pool",
        "t",
        "Optional memory pool of a receive stream: `spead2.MemoryPool(lower, upper, max_free,"
        " initial)`.",
    ),
    ("[[send.streams]]", "_send_stream,_destinations", "t", "One table per send stream."),
]

DESCRIPTIONS: dict[str, dict[str, str]] = {
    "(top level)": {
        "log_level": "Level of the daemon's log.",
        "server": "The `[server]` table.",
        "metrics": "The `[metrics]` table.",
        "subscribe": "The `[subscribe]` table.",
        "receive": "Holds `[[receive.streams]]`.",
        "send": "Holds `[[send.streams]]`.",
    },
    "[server]": {
        "listen": "gRPC address, `host:port` or `[v6]:port`; port 0 picks a free port.",
        "max_send_message_bytes": "Largest message the server sends (heaps above "
        "`subscribe.fragment_bytes` are split anyway).",
        "max_receive_message_bytes": "Largest message the server accepts (a `SendRequest`).",
        "grace_period": "Seconds that calls in progress get to finish at shutdown.",
        "min_ping_interval": "Client keepalive pings closer than this (seconds) are abuse; at"
        " most 10.",
        "keepalive_time": "Seconds between server keepalive pings.",
        "keepalive_timeout": "Seconds to wait for a ping acknowledgement.",
        "token_file": "File holding a bearer token every call must present (relative to the"
        " configuration file).",
        "token_env": "Environment variable holding that token (instead of `token_file`).",
        "tls": "The `[server.tls]` table.",
    },
    "[server.tls]": {
        "cert": "Certificate chain (PEM). Required.",
        "key": "Private key (PEM). Required.",
        "client_ca": "CA that client certificates must chain to (mutual TLS).",
    },
    "[metrics]": {
        "enabled": "`false` turns the metrics endpoint off.",
        "listen": "Address of `/metrics`.",
    },
    "[subscribe]": {
        "default_queue_depth": "Heaps queued per subscriber when the request asks for 0.",
        "max_queue_depth": "Cap on the queue depth a subscriber may ask for.",
        "max_queue_bytes": "Cap on the bytes queued for one subscriber.",
        "fragment_bytes": "Heaps larger than this are sent in several messages; default and "
        "maximum `server.max_send_message_bytes` - 65536.",
        "max_subscribers": "Subscriptions and stats watchers allowed at once.",
        "min_stats_interval": "Smallest `WatchStats` interval (seconds) the server honours.",
    },
    "[[receive.streams]]": {
        "name": "Stream name: 1-63 letters, digits, `_`, `.`, `-`; unique in the file.",
        "transport": "`udp`, `tcp` or `pcap`. Required.",
        "host": "Address to bind (udp, tcp); not with `group`.",
        "port": "Port to bind (udp, tcp). Required for them.",
        "group": "Multicast group to join (udp).",
        "interface_address": "Multicast: interface by address.",
        "interface_index": "Multicast: interface by index (instead of the address).",
        "max_size": "Largest packet accepted; the default depends on the transport.",
        "buffer_size": "Socket buffer requested; the default depends on the transport.",
        "file": "pcap/pcapng file to replay (pcap). Required for it.",
        "filter": "Packet filter expression applied to the capture (pcap).",
        "restart": "Start the stream again after it stops (default false for pcap).",
        "flavour": 'SPEAD flavour `"64-N"`, N a multiple of 8 from 8 to 56.',
        "threads": "Threads of the stream's `spead2.ThreadPool`.",
        "max_heaps": "`StreamConfig.max_heaps`: heaps assembled at once per substream.",
        "max_heap_size": "`StreamConfig.max_heap_size`: bytes a heap may claim; packets of"
        " larger heaps are dropped (`heap_too_large`) before anything is allocated.",
        "substreams": "`StreamConfig.substreams`.",
        "bug_compat": "`StreamConfig.bug_compat` flags.",
        "memcpy": "`StreamConfig.memcpy`: `std` or `nontemporal`.",
        "stop_on_stop_item": "`StreamConfig.stop_on_stop_item`.",
        "allow_unsized_heaps": "`StreamConfig.allow_unsized_heaps`.",
        "allow_out_of_order": "`StreamConfig.allow_out_of_order`.",
        "stream_id": "`StreamConfig.stream_id`.",
        "explicit_start": "`StreamConfig.explicit_start`.",
        "ring_heaps": "`RingStreamConfig.heaps`: capacity of the ring.",
        "contiguous_only": "`RingStreamConfig.contiguous_only`.",
        "incomplete_keep_payload_ranges": "`RingStreamConfig.incomplete_keep_payload_ranges`.",
        "memory_pool": "The `[receive.streams.memory_pool]` table.",
    },
    "[receive.streams.memory_pool]": {
        "lower": "Smallest allocation served by the pool; at most `upper`.",
        "upper": "Largest allocation served by the pool. Required.",
        "max_free": "Free buffers kept.",
        "initial": "Buffers allocated up front; at most `max_free`.",
    },
    "[[send.streams]]": {
        "name": "Stream name, as for receive streams.",
        "transport": "`udp` or `tcp`. Required.",
        "destinations": 'List of `"host:port"` (IP addresses); exactly one for tcp. Required.',
        "flavour": 'SPEAD flavour `"64-N"`.',
        "bug_compat": "`send.StreamConfig` bug-compatibility flags.",
        "rate": "Bytes per second; 0 is unlimited.",
        "max_packet_size": "`send.StreamConfig.max_packet_size`.",
        "max_heaps": "`send.StreamConfig.max_heaps`: heaps queued in the stream.",
        "burst_size": "`send.StreamConfig.burst_size`.",
        "burst_rate_ratio": "`send.StreamConfig.burst_rate_ratio`.",
        "ttl": "Multicast TTL (udp only).",
        "interface_address": "Local interface address to send from; empty: any.",
        "buffer_size": "Socket buffer requested; the default depends on the transport.",
        "queue_timeout": "Seconds a `Send` call waits for room in the stream's queue.",
        "threads": "Threads of the stream's `spead2.ThreadPool`.",
        "max_client_rate": "Bytes of `SendRequest` messages per second one `Send` call may"
        " send; a call over it ends with `RESOURCE_EXHAUSTED`. 0 is unlimited.",
        "max_client_burst": "Bytes one `Send` call may send at once (its token bucket);"
        " 0 is one second at `max_client_rate`. Needs `max_client_rate`.",
        "max_concurrent_sends": "`Send` calls open at once on this stream; more get"
        " `RESOURCE_EXHAUSTED`.",
    },
}

# How each getter names its key and where its default and limits are.
GETTERS = {
    "get_int": (1, 2, 3),
    "get_float": (1, 2, None),
    "get_bool": (1, None, None),
    "get_str": (1, None, None),
    "choice": (1, None, None),
    "optional_int": (None, 1, 2),
    "optional_str": (None, None, None),
    "required_str": (None, None, None),
    "table": (None, None, None),
    "tables": (None, None, None),
    "take": (None, None, None),
}
HELPERS = {"_listen": "string", "_path": "path", "_ip": "IP address"}
IMPLIED = {"_flavour": "flavour", "_name": "name", "_destinations": "destinations"}


@dataclass
class Key:
    """What the validator says about one key."""

    kind: str = ""
    defaults: list[str] = field(default_factory=list)
    limits: list[str] = field(default_factory=list)
    required: bool = False


def _kind(method: str) -> str:
    return {
        "get_int": "integer",
        "optional_int": "integer",
        "get_float": "number",
        "get_bool": "boolean",
        "choice": "string",
        "table": "table",
        "tables": "array of tables",
        "take": "array",
    }.get(method, "string")


class Evaluator:
    """Renders default expressions of the validator with the config module's values."""

    def __init__(
        self, module: dict[str, Any], func: ast.FunctionDef, functions: dict[str, ast.FunctionDef]
    ) -> None:
        self.module = module
        self.functions = functions
        self.names = dict(module)
        self.local: dict[str, ast.expr] = {}
        for node in ast.walk(func):
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
            ):
                self.local[node.targets[0].id] = node.value
        for node in ast.walk(func):
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "d"
            ):
                self.names["d"] = eval(ast.unparse(node.value), self.names)  # noqa: S307

    def render(self, node: ast.expr) -> str:
        if isinstance(node, ast.IfExp):
            test = ast.unparse(node.test)
            return f"{self.render(node.body)} if {test}, else {self.render(node.orelse)}"
        if isinstance(node, ast.Name) and node.id in self.local and node.id not in self.names:
            return self.render(self.local[node.id])
        try:
            value = eval(ast.unparse(node), self.names)  # noqa: S307
        except Exception:  # names local to the function: show the expression
            return f"`{ast.unparse(node)}`"
        return _toml(value)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, float):
        return f"`{value:g}`"
    if value is None:
        return "(none)"
    return f"`{value}`"


def _limit(name: str, node: ast.expr) -> str:
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return f"{name} `{ast.unparse(node)}`"
    return f"{name} {value}" if value is not None else ""


def _keys_of(
    tree: ast.Module, module: dict[str, Any], funcs: list[str], var: str
) -> dict[str, Key]:
    keys: dict[str, Key] = {}
    by_name = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    for func_name in funcs:
        func = by_name[func_name]
        evaluator = Evaluator(module, func, by_name)
        for node in ast.walk(func):
            if not isinstance(node, ast.Call):
                continue
            _record_call(node, var, evaluator, keys)
    return keys


def _record_call(node: ast.Call, var: str, ev: Evaluator, keys: dict[str, Key]) -> None:
    f = node.func
    args = node.args
    if isinstance(f, ast.Name) and f.id in IMPLIED and _is_var(args[0], var):
        helper = ev.functions[f.id]
        inner = Evaluator(ev.module, helper, ev.functions)
        for sub in ast.walk(helper):
            if isinstance(sub, ast.Call):
                _record_call(sub, helper.args.args[0].arg, inner, keys)
        if f.id == "_destinations":
            keys[IMPLIED[f.id]].kind = "array of strings"
        return
    if isinstance(f, ast.Attribute) and _is_var(f.value, var) and f.attr == "error":
        message = ast.unparse(args[1]) if len(args) > 1 else ""
        if isinstance(args[0], ast.Constant) and "is required" in message:
            keys.setdefault(args[0].value, Key()).required = True
        return
    if isinstance(f, ast.Name) and f.id in HELPERS and len(args) >= 2 and _is_var(args[0], var):
        key = keys.setdefault(ast.literal_eval(args[1]), Key(kind=HELPERS[f.id]))
        if len(args) >= 3 and f.id != "_path":
            _add(key.defaults, ev.render(args[2]))
        return
    if not (isinstance(f, ast.Attribute) and _is_var(f.value, var) and f.attr in GETTERS):
        return
    if not args or not isinstance(args[0], ast.Constant):
        return
    key = keys.setdefault(args[0].value, Key())
    key.kind = key.kind or _kind(f.attr)
    kw = {k.arg: k.value for k in node.keywords}
    if f.attr == "required_str" or ("required" in kw and ast.literal_eval(kw["required"])):
        key.required = True
    default_at, min_at, max_at = GETTERS[f.attr]
    if default_at is not None and len(args) > default_at:
        _add(key.defaults, ev.render(args[default_at]))
    if f.attr == "choice" and len(args) > 2:
        choices = eval(ast.unparse(args[2]), ev.names)  # noqa: S307
        _add(key.limits, "one of " + ", ".join(f"`{c}`" for c in choices))
    if f.attr in ("get_int", "optional_int"):
        lo = args[min_at] if min_at is not None and len(args) > min_at else None
        hi = args[max_at] if max_at is not None and len(args) > max_at else None
        low = _limit(">=", lo) if lo is not None else ">= 0"
        if hi is not None:
            low = f"{low.removeprefix('>= ')} to {_limit('', hi).strip()}"
        _add(key.limits, low)
    if f.attr == "get_float":
        lo = args[2] if len(args) > 2 else kw.get("minimum")
        positive = kw.get("positive")
        relation = ">" if positive is not None and ast.literal_eval(positive) else ">="
        _add(key.limits, _limit(relation, lo) if lo is not None else f"{relation} 0")


def _is_var(node: ast.expr, var: str) -> bool:
    return isinstance(node, ast.Name) and node.id == var


def _add(values: list[str], value: str) -> None:
    if value and value not in values:
        values.append(value)


def generate() -> str:
    source = SOURCE.read_text(encoding="utf-8")
    tree = ast.parse(source)
    sys.path.insert(0, str(SOURCE.parent.parent))
    import spead2_gateway.config as config_module

    module = vars(config_module)
    lines = [
        "# Configuration reference",
        "",
        "<!-- GENERATED by scripts/gen_config_reference.py from",
        "     service/spead2_gateway/config.py; do not edit by hand. -->",
        "",
        "The gateway reads one TOML file (`spead2-gateway --config FILE`). Every key is",
        "validated, unknown keys are errors, and an error names the file and the field. Check",
        "a file without starting anything with `spead2-gateway --config FILE --check-config`.",
        "A commented example of every transport is `deploy/gateway.example.toml`.",
        "",
        "Without `--config` the daemon runs this embedded default:",
        "",
        "```toml",
        config_module.DEFAULT_CONFIG_TOML.rstrip("\n"),
        "```",
        "",
    ]
    problems: list[str] = []
    for title, funcs, var, blurb in SECTIONS:
        keys = _keys_of(tree, module, funcs.split(","), var)
        described = DESCRIPTIONS[title]
        for missing in sorted(set(keys) - set(described)):
            problems.append(f"{title} {missing}: read by the validator but has no description")
        for extra in sorted(set(described) - set(keys)):
            problems.append(f"{title} {extra}: described but the validator never reads it")
        lines += [f"## `{title}`", "", blurb, "", "| key | type | default | limits | meaning |"]
        lines.append("|---|---|---|---|---|")
        for name in described:
            if name not in keys:
                continue
            key = keys[name]
            default = "required" if key.required else " or ".join(key.defaults) or "-"
            limits = "; ".join(key.limits) or "-"
            lines.append(f"| `{name}` | {key.kind} | {default} | {limits} | {described[name]} |")
        lines.append("")
    if problems:
        raise SystemExit("gen_config_reference: " + "\n".join(problems))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the page is stale")
    args = parser.parse_args()
    text = generate()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            diff = difflib.unified_diff(
                current.splitlines(), text.splitlines(), str(OUTPUT), "generated", lineterm=""
            )
            print("\n".join(list(diff)[:40]), file=sys.stderr)
            print(f"{OUTPUT} is stale: run python {__file__}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
