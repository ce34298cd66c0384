"""Gateway limits: per-call send rate, concurrent Send calls, message size, the receive
``max_heap_size``, the achieved-rate gauge, and warnings about exposed secret files.

The token bucket and the rate window are checked with a fake clock (no timed assertions);
the daemon tests use rates so far from the limits that scheduling delays cannot matter.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import grpc
import numpy as np
import pytest
from gateway_harness import Daemon, collect, metric_value, udp_sender, wait_subscribers, wait_until
from spead2_gateway.app import warn_exposed_secrets
from spead2_gateway.client import GatewayClient, SendResult
from spead2_gateway.config import ConfigError, ServerConfig, TlsConfig, parse_config
from spead2_gateway.sender import RateWindow, TokenBucket
from util.ports import free_udp_port

TOKEN = "limits-t0ken-9f2c6a"
WRONG_TOKEN = "wrong-t0ken-77b1e0"
ITEM_ID = 0x1600
MESSAGE_LIMIT = 65536
CLIENT_RATE = 100  # bytes per second per Send call on "capped"
CLIENT_BURST = 10000


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _code(exc: pytest.ExceptionInfo[grpc.RpcError]) -> grpc.StatusCode:
    return exc.value.code()  # type: ignore[attr-defined, no-any-return]


def _details(exc: pytest.ExceptionInfo[grpc.RpcError]) -> str:
    return str(exc.value.details())  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------
# Building blocks, in-process


def test_token_bucket_admits_burst_then_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=100.0, burst=1000.0, clock=clock)
    assert bucket.take(600)
    assert bucket.take(400)
    assert not bucket.take(1)  # empty
    clock.now += 0.5
    assert not bucket.take(51)  # 50 tokens back; a refused request takes nothing ...
    assert bucket.take(50)  # ... so these 50 are still there
    clock.now += 1000.0
    assert not bucket.take(1001)  # never more than the burst, however long the pause
    assert bucket.take(1000)


def test_rate_window_counts_the_last_ten_seconds() -> None:
    clock = FakeClock(0.0)
    window = RateWindow(window=10.0, slots=50, clock=clock)
    clock.now = 0.5
    window.add(1000)
    assert window.rate() == 1000.0  # under one second since creation: per one second
    clock.now = 20.0
    for _ in range(100):  # 100 kB over [20, 29.9]
        window.add(1000)
        clock.now += 0.1
    assert clock.now == pytest.approx(30.0)
    assert window.rate() == pytest.approx(100000 / 10.0, rel=0.03)
    clock.now = 35.0
    assert window.rate() == pytest.approx(50000 / 10.0, rel=0.05)
    clock.now = 41.0
    assert window.rate() == 0.0
    assert len(window._totals) <= 50  # memory does not grow with the heap rate


def test_rate_window_readers_do_not_disturb_each_other() -> None:
    clock = FakeClock(0.0)
    window = RateWindow(clock=clock)
    clock.now = 12.0
    window.add(5000)
    readings = [window.rate() for _ in range(5)]
    assert readings == [500.0] * 5


def test_config_limits_are_validated() -> None:
    send = '[[send.streams]]\nname = "out"\ntransport = "udp"\ndestinations = ["127.0.0.1:9"]\n'
    config = parse_config(send + "max_client_rate = 1e6\n", "t.toml")
    assert config.send[0].client_burst == 1000000
    assert config.send[0].max_concurrent_sends == 16
    assert parse_config(send, "t.toml").send[0].client_burst == 0
    with pytest.raises(ConfigError, match=r"t.toml: send.streams\[0\].max_client_burst: has no"):
        parse_config(send + "max_client_burst = 100\n", "t.toml")
    with pytest.raises(ConfigError, match=r"max_concurrent_sends: must be an integer from 1"):
        parse_config(send + "max_concurrent_sends = 0\n", "t.toml")
    with pytest.raises(ConfigError, match=r"max_client_rate: must be a finite number >= 0"):
        parse_config(send + "max_client_rate = -1\n", "t.toml")
    receive = '[[receive.streams]]\nname = "rx"\ntransport = "udp"\nport = 9\n'
    assert parse_config(receive, "t.toml").receive[0].max_heap_size == 2**32
    with pytest.raises(ConfigError, match=r"max_heap_size: must be a positive integer \(got 0\)"):
        parse_config(receive + "max_heap_size = 0\n", "t.toml")


def test_secret_file_warnings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Group/other-accessible token and TLS key files are named with their mode; private ones
    are not; the secret itself never reaches the log."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    key = tmp_path / "server.key"
    key.write_text("PRIVATE KEY MATERIAL", encoding="utf-8")
    config = ServerConfig(token_file=token_file, tls=TlsConfig(tmp_path / "server.crt", key))
    token_file.chmod(0o640)
    key.chmod(0o604)
    with caplog.at_level(logging.WARNING, logger="spead2_gateway"):
        assert warn_exposed_secrets(config) == ["server.token_file", "server.tls.key"]
    assert f"server.token_file {token_file} is accessible by group or others (mode 0640)" in (
        caplog.text
    )
    assert f"server.tls.key {key} is accessible by group or others (mode 0604)" in caplog.text
    assert TOKEN not in caplog.text and "KEY MATERIAL" not in caplog.text
    caplog.clear()
    token_file.chmod(0o600)
    key.chmod(0o400)
    with caplog.at_level(logging.WARNING, logger="spead2_gateway"):
        assert warn_exposed_secrets(config) == []
    assert caplog.text == ""


# ------------------------------------------------------------------------------------------
# The daemon: send limits, message size, token hygiene


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secret") / "gateway.token"
    path.write_text(TOKEN + "\n", encoding="utf-8")
    path.chmod(0o644)  # deliberately too open: the daemon must warn
    return path


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, token_file: Path) -> Iterator[Daemon]:
    config = f"""
log_level = "debug"
[server]
listen = "127.0.0.1:0"
max_receive_message_bytes = {MESSAGE_LIMIT}
token_file = "{token_file}"
grace_period = 3.0
[metrics]
listen = "127.0.0.1:0"
[[send.streams]]
name = "out"
transport = "udp"
destinations = ["127.0.0.1:{free_udp_port()}"]
rate = 50e6
max_concurrent_sends = 1
[[send.streams]]
name = "capped"
transport = "udp"
destinations = ["127.0.0.1:{free_udp_port()}"]
rate = 50e6
max_client_rate = {CLIENT_RATE}
max_client_burst = {CLIENT_BURST}
"""
    with Daemon(tmp_path_factory.mktemp("limits"), config) as d:
        d.wait_ready()
        yield d
        assert d.terminate() == 0, d.log()
        assert TOKEN not in d.log()


def _client(daemon: Daemon) -> GatewayClient:
    return daemon.client(token=TOKEN)


def _send(client: GatewayClient, stream: str, sizes: list[int]) -> SendResult:
    sender = client.sender(stream)
    for i, size in enumerate(sizes):
        value = np.full(size, i % 251, np.uint8)
        sender.add_item(ITEM_ID, "blob", "", (size,), dtype="u1", value=value)
        sender.send_heap(sender.get_heap())
    return sender.close()


def _counter(client: GatewayClient, stream: str, name: str) -> int:
    return client.get_stream(stream).stats.counters[name]


def test_open_token_file_is_warned_about_without_the_token(
    daemon: Daemon, token_file: Path
) -> None:
    log = daemon.log()
    assert f"server.token_file {token_file} is accessible by group or others (mode 0644)" in log
    assert "WARNING" in log
    assert TOKEN not in log


def test_wrong_token_is_refused_and_never_logged(daemon: Daemon) -> None:
    with daemon.client(token=WRONG_TOKEN) as client, pytest.raises(grpc.RpcError) as exc:
        client.list_streams()
    assert _code(exc) == grpc.StatusCode.UNAUTHENTICATED
    with _client(daemon) as client:  # a good call after it, so the daemon has logged it all
        assert {s.name for s in client.list_streams()} == {"out", "capped"}
    log = daemon.log()
    assert TOKEN not in log and WRONG_TOKEN not in log


def test_oversize_request_is_refused_and_the_daemon_keeps_serving(daemon: Daemon) -> None:
    """A Send message over server.max_receive_message_bytes ends that call with
    RESOURCE_EXHAUSTED; its Send slot is freed and the next call on the stream succeeds."""
    with _client(daemon) as client:
        with pytest.raises(grpc.RpcError) as exc:
            _send(client, "out", [100, MESSAGE_LIMIT + 1000])
        assert _code(exc) == grpc.StatusCode.RESOURCE_EXHAUSTED
        wait_until(lambda: _counter(client, "out", "active_sessions") == 0, 10.0, "slot freed")
        result = _send(client, "out", [1000, 2000])
        assert result.heaps == 2
        assert client.health() == "SERVING"


def test_concurrent_send_calls_are_capped(daemon: Daemon) -> None:
    """With max_concurrent_sends = 1, a second call while the first is open gets
    RESOURCE_EXHAUSTED; the first completes normally and the slot is reused afterwards."""
    with _client(daemon) as client:
        wait_until(lambda: _counter(client, "out", "active_sessions") == 0, 10.0, "no calls")
        refused = _counter(client, "out", "refused_sessions")
        first = client.sender("out")
        first.add_item(ITEM_ID, "blob", "", (100,), dtype="u1", value=np.zeros(100, np.uint8))
        first.send_heap(first.get_heap())
        wait_until(lambda: _counter(client, "out", "active_sessions") == 1, 10.0, "first open")
        with pytest.raises(grpc.RpcError) as exc:
            _send(client, "out", [100])
        assert _code(exc) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "1 Send calls already in progress (max_concurrent_sends)" in _details(exc)
        assert first.close().heaps == 1
        wait_until(lambda: _counter(client, "out", "active_sessions") == 0, 10.0, "slot freed")
        assert _send(client, "out", [100]).heaps == 1
        assert _counter(client, "out", "refused_sessions") == refused + 1
    text = daemon.scrape()
    assert metric_value(text, "spead2_gateway_send_refused_sessions_total", stream="out") == (
        refused + 1
    )
    assert metric_value(text, "spead2_gateway_send_active_sessions", stream="out") == 0


def test_client_rate_cap_ends_the_call(daemon: Daemon) -> None:
    """A call that sends faster than max_client_rate once its burst is used ends with
    RESOURCE_EXHAUSTED; each call has its own bucket; a request larger than the burst is
    refused with a message that says so."""
    with _client(daemon) as client:
        before = _counter(client, "capped", "rate_limited_sessions")
        # 40 kB against a 10 kB burst refilling at 100 B/s: it would need 300 s to pass.
        with pytest.raises(grpc.RpcError) as exc:
            _send(client, "capped", [2000] * 20)
        assert _code(exc) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"exceeded max_client_rate = {CLIENT_RATE} bytes/s" in _details(exc)
        assert _send(client, "capped", [2000]).heaps == 1  # a new call, a full bucket
        with pytest.raises(grpc.RpcError) as exc:
            _send(client, "capped", [CLIENT_BURST + 1])
        assert _code(exc) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert f"larger than this call's burst of {CLIENT_BURST} bytes" in _details(exc)
        assert _counter(client, "capped", "rate_limited_sessions") == before + 2
    text = daemon.scrape()
    assert (
        metric_value(text, "spead2_gateway_send_rate_limited_sessions_total", stream="capped")
        == before + 2
    )


def test_achieved_rate_gauge_follows_recent_sends(daemon: Daemon) -> None:
    """After a completed Send the gauge is positive, at most the bytes sent (the window is at
    least one second), and scraping twice does not change what the sender measured."""
    with _client(daemon) as client:
        for _attempt in range(3):  # the window is 10 s: retry if the machine stalled longer
            _send(client, "out", [20000] * 5)
            first = daemon.scrape()
            second = daemon.scrape()
            rate = metric_value(first, "spead2_gateway_send_achieved_rate_bytes_per_second")
            if rate:
                break
    assert rate is not None and rate > 0
    total = metric_value(first, "spead2_gateway_send_bytes_total", stream="out")
    assert total is not None and rate <= total
    again = metric_value(second, "spead2_gateway_send_achieved_rate_bytes_per_second")
    assert again is not None and again > 0


# ------------------------------------------------------------------------------------------
# The receive max_heap_size


def test_receive_max_heap_size_drops_larger_heaps(tmp_path: Path, ours: ModuleType) -> None:
    """Heaps over the stream's max_heap_size never reach subscribers and are counted as
    heap_too_large; smaller heaps around them are delivered."""
    port = free_udp_port()
    config = f"""
[server]
listen = "127.0.0.1:0"
[metrics]
listen = "127.0.0.1:0"
[[receive.streams]]
name = "rx"
transport = "udp"
port = {port}
max_heap_size = 4096
"""
    with Daemon(tmp_path, config) as daemon:
        daemon.wait_ready()
        with daemon.client() as client:
            assert client.get_stream("rx").config["max_heap_size"] == 4096
            sub = client.subscribe("rx")
            wait_subscribers(client, "rx", 1)
            stream = udp_sender(ours, port)
            group = ours.send.ItemGroup(flavour=ours.Flavour(4, 64, 48))
            group.add_item(0x1000, "small", "", (16,), dtype=np.uint8)
            group["small"].value = np.arange(16, dtype=np.uint8)
            stream.send_heap(group.get_heap(), 1)
            group.add_item(0x1001, "big", "", (8000,), dtype=np.uint8)
            group["big"].value = np.ones(8000, np.uint8)
            stream.send_heap(group.get_heap(), 2)
            stream.send_heap(group.get_end(), 3)
            heaps = collect(sub, 1, 30.0)
        assert [h.cnt for h in heaps] == [1, 3]
        assert np.array_equal(heaps[0]["small"], np.arange(16, dtype=np.uint8))
        dropped = metric_value(
            daemon.scrape(), "spead2_gateway_receive_discarded_total", reason="heap_too_large"
        )
        assert dropped is not None and dropped >= 1
        assert daemon.terminate() == 0, daemon.log()


def test_token_file_private_mode_gives_no_warning(tmp_path: Path) -> None:
    """The same daemon start with a 0600 token file logs no warning about it."""
    token = tmp_path / "gateway.token"
    token.write_text(TOKEN, encoding="utf-8")
    os.chmod(token, 0o600)
    config = f"""
[server]
listen = "127.0.0.1:0"
token_file = "{token}"
[metrics]
enabled = false
[[send.streams]]
name = "out"
transport = "udp"
destinations = ["127.0.0.1:{free_udp_port()}"]
"""
    with Daemon(tmp_path, config) as daemon:
        daemon.wait_ready()
        assert daemon.terminate() == 0, daemon.log()
        log = daemon.log()
    assert "accessible by group or others" not in log
    assert TOKEN not in log
