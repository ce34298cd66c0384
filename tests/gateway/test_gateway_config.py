"""Gateway configuration: every field validated, errors that name the file and the field."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from gateway_harness import REPO_ROOT, daemon_env
from spead2_gateway.app import server_options
from spead2_gateway.config import ConfigError, load_config, parse_config

STREAM = '[[receive.streams]]\nname = "a"\ntransport = "udp"\nport = 9000\n'


def error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "gw.toml")
    return str(info.value)


def test_embedded_default() -> None:
    config = load_config(None)
    assert config.server.listen == "127.0.0.1:50051"
    assert config.metrics.listen == "127.0.0.1:9464"
    (stream,) = config.receive
    assert (stream.transport, stream.host, stream.port) == ("udp", "127.0.0.1", 8888)
    assert stream.heap_address_bits == 48
    assert config.send == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            STREAM + "max_heaps = 0\n",
            "gw.toml: receive.streams[0].max_heaps: must be a positive integer (got 0)",
        ),
        (
            STREAM + "max_heaps = true\n",
            "gw.toml: receive.streams[0].max_heaps: must be an integer (got True)",
        ),
        (
            STREAM + "ring_heaps = -3\n",
            "gw.toml: receive.streams[0].ring_heaps: must be a positive integer (got -3)",
        ),
        (
            STREAM + 'memcpy = "fast"\n',
            "gw.toml: receive.streams[0].memcpy: must be one of std, nontemporal (got 'fast')",
        ),
        (
            STREAM + "contiguous_only = 1\n",
            "gw.toml: receive.streams[0].contiguous_only: must be true or false (got 1)",
        ),
        (
            STREAM + 'flavour = "64-41"\n',
            'gw.toml: receive.streams[0].flavour: must be "64-N" with N a multiple of 8 from 8 '
            "to 56, e.g. \"64-48\" (got '64-41')",
        ),
        (
            STREAM + 'host = "localhost"\n',
            "gw.toml: receive.streams[0].host: must be an IP address (got 'localhost')",
        ),
        (
            STREAM + 'group = "10.0.0.1"\n',
            "gw.toml: receive.streams[0].group: must be a multicast address (got '10.0.0.1')",
        ),
        (
            STREAM + 'file = "x.pcap"\n',
            "gw.toml: receive.streams[0].file: is not allowed for transport 'udp'",
        ),
        (
            STREAM + "[receive.streams.memory_pool]\nlower = 10\nupper = 5\n",
            "gw.toml: receive.streams[0].memory_pool.lower: must not exceed upper (5) (got 10)",
        ),
        (
            STREAM + "[receive.streams.memory_pool]\nlower = 10\n",
            "gw.toml: receive.streams[0].memory_pool.upper: is required",
        ),
        (
            '[[receive.streams]]\nname = "a"\ntransport = "udp"\n',
            "gw.toml: receive.streams[0].port: is required for transport 'udp'",
        ),
        (
            '[[receive.streams]]\nname = "a"\ntransport = "udp"\nport = 70000\n',
            "gw.toml: receive.streams[0].port: must be an integer from 1 to 65535 (got 70000)",
        ),
        (
            '[[receive.streams]]\nname = "a b"\ntransport = "udp"\nport = 1\n',
            "gw.toml: receive.streams[0].name: must be 1-63 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit (got 'a b')",
        ),
        (
            '[[receive.streams]]\nname = "a"\nport = 1\n',
            "gw.toml: receive.streams[0].transport: is required (one of udp, tcp, pcap)",
        ),
        (
            '[[receive.streams]]\nname = "a"\ntransport = "pcap"\n',
            'gw.toml: receive.streams[0].file: is required for transport "pcap"',
        ),
        (STREAM + STREAM, "gw.toml: receive.streams[1].name: duplicate stream name 'a'"),
        (
            STREAM + '[server]\nlisten = "127.0.0.1"\n',
            "gw.toml: server.listen: expected host:port (got '127.0.0.1')",
        ),
        (
            STREAM + "[server]\nmin_ping_interval = 30\n",
            "gw.toml: server.min_ping_interval: must be at most 10 so clients may ping every "
            "10 s (got 30.0)",
        ),
        (
            STREAM + "[server]\ngrace_period = -1\n",
            "gw.toml: server.grace_period: must be a finite number >= 0 (got -1)",
        ),
        (STREAM + '[server.tls]\ncert = "c.pem"\n', "gw.toml: server.tls.key: is required for TLS"),
        (
            STREAM + "[subscribe]\nfragment_bytes = 8388608\n",
            "gw.toml: subscribe.fragment_bytes: must be at most server.max_send_message_bytes - "
            "65536 = 4128768 (got 8388608)",
        ),
        (
            STREAM + "[subscribe]\ndefault_queue_depth = 10\nmax_queue_depth = 5\n",
            "gw.toml: subscribe.default_queue_depth: must not exceed max_queue_depth (5) (got 10)",
        ),
        (
            '[[send.streams]]\nname = "s"\ntransport = "udp"\n',
            'gw.toml: send.streams[0].destinations: is required (a list of "host:port" strings)',
        ),
        (
            '[[send.streams]]\nname = "s"\ntransport = "udp"\ndestinations = ["1.2.3.4"]\n',
            "gw.toml: send.streams[0].destinations[0]: expected host:port (got '1.2.3.4')",
        ),
        (
            '[[send.streams]]\nname = "s"\ntransport = "tcp"\n'
            'destinations = ["127.0.0.1:1", "127.0.0.1:2"]\n',
            "gw.toml: send.streams[0].destinations: must have exactly one entry for transport "
            '"tcp"',
        ),
        (
            '[[send.streams]]\nname = "s"\ntransport = "udp"\ndestinations = ["127.0.0.1:9"]\n'
            "rate = -5\n",
            "gw.toml: send.streams[0].rate: must be a finite number >= 0 (got -5)",
        ),
        (
            '[[send.streams]]\nname = "s"\ntransport = "udp"\ndestinations = ["127.0.0.1:9"]\n'
            "max_packet_size = 64\n",
            "gw.toml: send.streams[0].max_packet_size: must be an integer from 128 to 65507 "
            "(got 64)",
        ),
        ("", "gw.toml: receive: the configuration defines no streams"),
        ("x = ", "gw.toml: not valid TOML: "),
    ],
)
def test_field_errors(text: str, message: str) -> None:
    assert error(text).startswith(message)


def test_unknown_keys_are_errors() -> None:
    message = error(STREAM + "max_heap = 4\n")
    assert message.startswith("gw.toml: receive.streams[0].max_heap: unknown key (allowed here: ")
    assert "max_heaps" in message
    assert error(STREAM + "[serve]\nlisten = 1\n").startswith("gw.toml: serve: unknown key")


def test_fields_reach_the_config() -> None:
    config = parse_config(
        '[[receive.streams]]\nname = "m"\ntransport = "udp"\ngroup = "239.1.2.3"\nport = 7000\n'
        'interface_address = "127.0.0.1"\nmax_heaps = 9\nring_heaps = 33\nsubstreams = 2\n'
        'contiguous_only = false\nmemcpy = "nontemporal"\nstop_on_stop_item = true\n'
        "[receive.streams.memory_pool]\nlower = 1\nupper = 100\nmax_free = 4\ninitial = 2\n"
        '[[send.streams]]\nname = "s"\ntransport = "udp"\ndestinations = ["[::1]:9", '
        '"127.0.0.1:8"]\nrate = 1e6\nflavour = "64-40"\n',
        "gw.toml",
    )
    stream = config.receive[0]
    assert (stream.group, stream.port, stream.interface_address) == ("239.1.2.3", 7000, "127.0.0.1")
    assert (stream.max_heaps, stream.ring_heaps, stream.substreams) == (9, 33, 2)
    assert (stream.contiguous_only, stream.memcpy, stream.stop_on_stop_item) == (
        False,
        "nontemporal",
        True,
    )
    assert stream.memory_pool is not None and stream.memory_pool.upper == 100
    send = config.send[0]
    assert send.destinations == (("::1", 9), ("127.0.0.1", 8))
    assert (send.rate, send.heap_address_bits) == (1e6, 40)


def test_server_options_accept_pings_and_refuse_port_sharing() -> None:
    options = dict(server_options(load_config(None).server))
    assert options["grpc.so_reuseport"] == 0
    assert options["grpc.keepalive_permit_without_calls"] == 1
    assert options["grpc.http2.min_recv_ping_interval_without_data_ms"] <= 10_000
    assert options["grpc.http2.max_ping_strikes"] == 0
    assert options["grpc.max_receive_message_length"] == 64 * 1024 * 1024


@pytest.mark.parametrize("path", ["deploy/gateway.example.toml"])
def test_example_configs_are_valid(path: str) -> None:
    config = load_config(REPO_ROOT / path)
    assert config.receive or config.send


def test_configs_in_the_documentation_are_valid() -> None:
    text = (REPO_ROOT / "docs" / "gateway.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    assert blocks
    for block in blocks:
        parse_config(block, "docs/gateway.md")


def _daemon(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spead2_gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=daemon_env(),
        cwd=cwd,
    )


def test_bad_config_file_fails_at_start_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(STREAM + "ring_heaps = 0\n", encoding="utf-8")
    proc = _daemon("--config", str(path), cwd=tmp_path)
    assert proc.returncode == 2
    assert f"{path}: receive.streams[0].ring_heaps: must be a positive integer (got 0)" in (
        proc.stderr
    )
    missing = _daemon("--config", str(tmp_path / "nope.toml"), cwd=tmp_path)
    assert missing.returncode == 2 and "nope.toml: cannot read" in missing.stderr


def test_check_config_prints_the_embedded_default(tmp_path: Path) -> None:
    proc = _daemon("--check-config", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    plain = json.loads(proc.stdout)
    assert plain["receive"][0]["port"] == 8888
    printed = _daemon("--print-default-config", cwd=tmp_path)
    assert parse_config(printed.stdout) == load_config(None)
