"""TLS and bearer-token authentication on the real daemon."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from gateway_harness import Daemon, metric_value, wait_subscribers
from spead2_gateway.client import GatewayClient
from util.ports import free_udp_port

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture(scope="module")
def daemon(
    tmp_path_factory: pytest.TempPathFactory, certificate: tuple[Path, Path]
) -> Iterator[Daemon]:
    cert, key = certificate
    config = f"""
[server]
listen = "127.0.0.1:0"
token_env = "GATEWAY_TEST_TOKEN"
[server.tls]
cert = "{cert}"
key = "{key}"
[metrics]
listen = "127.0.0.1:0"
[[receive.streams]]
name = "rx"
transport = "udp"
port = {free_udp_port()}
"""
    d = Daemon(tmp_path_factory.mktemp("secure"), config, env={"GATEWAY_TEST_TOKEN": TOKEN})
    with d:
        _wait_ready_tls(d, cert)
        yield d
        assert d.terminate() == 0, d.log()


def _wait_ready_tls(d: Daemon, cert: Path) -> None:
    # The harness checks health over plain text; here only the ready file is awaited, then
    # health over TLS (it needs no token).
    import json
    import time

    deadline = time.monotonic() + 30
    while not d.ready_path.exists():
        assert d.proc.poll() is None, d.log()
        assert time.monotonic() < deadline, d.log()
        time.sleep(0.02)
    d.info = json.loads(d.ready_path.read_text())
    with GatewayClient(d.target, root_certificates=cert.read_bytes()) as client:
        assert client.health() == "SERVING"


def _client(d: Daemon, cert: Path, token: str | None) -> GatewayClient:
    return GatewayClient(d.target, root_certificates=cert.read_bytes(), token=token)


def test_token_is_required_except_for_health(
    daemon: Daemon, certificate: tuple[Path, Path]
) -> None:
    cert, _ = certificate
    unauthenticated = grpc.StatusCode.UNAUTHENTICATED
    for token in (None, "wrong", TOKEN + "x"):
        with _client(daemon, cert, token) as client:
            assert client.health() == "SERVING"
            with pytest.raises(grpc.RpcError) as info:
                client.list_streams()
            assert info.value.code() == unauthenticated
            with pytest.raises(grpc.RpcError) as info:
                next(iter(client.subscribe("rx")))
            assert info.value.code() == unauthenticated
            sender = client.sender("rx")
            with pytest.raises(grpc.RpcError) as info:
                sender.close()
            assert info.value.code() == unauthenticated
    with _client(daemon, cert, TOKEN) as client:
        assert [s.name for s in client.list_streams()] == ["rx"]
        with client.subscribe("rx"):
            wait_subscribers(client, "rx", 1)
    text = daemon.scrape()
    denied = metric_value(
        text, "grpc_server_handled_total", grpc_method="ListStreams", grpc_code="UNAUTHENTICATED"
    )
    assert denied == 3


def test_plain_text_client_cannot_talk_to_tls(daemon: Daemon) -> None:
    with GatewayClient(daemon.target, token=TOKEN, timeout=3) as client:
        with pytest.raises(grpc.RpcError) as info:
            client.list_streams()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
