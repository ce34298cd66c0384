"""The daemon: builds everything from a :class:`GatewayConfig`, serves, shuts down cleanly.

Start-up order: bind the gRPC port (fails loudly if taken: ``grpc.so_reuseport`` is 0), start
the metrics endpoint, open every stream, then start serving and mark health SERVING.

Shutdown (SIGTERM/SIGINT, or ``--exit-after``): health goes NOT_SERVING everywhere; receive
streams stop; subscriptions drain what is already queued and end with UNAVAILABLE; stats
watchers end with UNAVAILABLE; the server stops accepting calls and gives in-flight ones
(``Send`` calls) ``server.grace_period`` seconds; queued heaps are flushed; exit status 0.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from spead2_gateway import demo as demo_module
from spead2_gateway.config import GatewayConfig, ServerConfig, split_host_port
from spead2_gateway.errors import StartupError
from spead2_gateway.hub import Hub
from spead2_gateway.interceptors import MetricsInterceptor, TokenAuthInterceptor, read_token
from spead2_gateway.metrics import Metrics, StreamSnapshot
from spead2_gateway.receiver import ReceiveStream
from spead2_gateway.sender import SendStream
from spead2_gateway.service import SERVICE_NAME, GatewayServicer, Streams, generic_handler

__all__ = ["Gateway", "StartupError", "server_options"]

logger = logging.getLogger(__name__)

# The asyncio health servicer (grpc_health.v1.health.aio); the type stubs lack that module.
_health_aio: Any = vars(health)["aio"]

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def server_options(config: ServerConfig) -> list[tuple[str, int]]:
    """gRPC server channel arguments derived from the configuration."""
    return [
        # A second daemon on the same port must fail, not share the port silently.
        ("grpc.so_reuseport", 0),
        ("grpc.max_send_message_length", config.max_send_message_bytes),
        ("grpc.max_receive_message_length", config.max_receive_message_bytes),
        # Accept client keepalive pings (Go clients commonly ping every 10-30 s).
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", int(config.min_ping_interval * 1000)),
        ("grpc.http2.max_ping_strikes", 0),
        # Our own pings find dead subscribers whose queues would otherwise linger.
        ("grpc.keepalive_time_ms", int(config.keepalive_time * 1000)),
        ("grpc.keepalive_timeout_ms", int(config.keepalive_timeout * 1000)),
    ]


def health_name(stream: ReceiveStream | SendStream) -> str:
    """The health service name of a stream: ``receive/<name>`` or ``send/<name>``."""
    return f"{stream.kind}/{stream.name}"


def _credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    tls = config.tls
    if tls is None:
        return None
    try:
        key = tls.key.read_bytes()
        cert = tls.cert.read_bytes()
        client_ca = tls.client_ca.read_bytes() if tls.client_ca is not None else None
    except OSError as exc:
        raise StartupError(f"server.tls: cannot read {exc.filename}: {exc.strerror}") from None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def secret_files(config: ServerConfig) -> list[tuple[str, Path]]:
    """The configured files that hold secrets, with the key that names each.

    The configuration file itself holds none: the token is only ever in ``token_file`` or
    the environment, and TLS keys are files of their own.
    """
    files = []
    if config.token_file is not None:
        files.append(("server.token_file", config.token_file))
    if config.tls is not None:
        files.append(("server.tls.key", config.tls.key))
    return files


def warn_exposed_secrets(config: ServerConfig) -> list[str]:
    """Logs a WARNING for each secret file that group or others may access; returns the
    keys warned about. Only the path and the mode are logged, never the contents. A file
    that cannot be examined is left to the code that reads it, which fails clearly."""
    warned = []
    for key, path in secret_files(config):
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            continue
        if mode & 0o077:
            logger.warning(
                "%s %s is accessible by group or others (mode %04o); it holds a secret, "
                "restrict it with chmod 600",
                key,
                path,
                mode,
            )
            warned.append(key)
    return warned


class Gateway:
    """One daemon instance."""

    def __init__(self, config: GatewayConfig, demo: bool = False) -> None:
        self.config = config
        self.demo = demo
        self.health: Any = _health_aio.HealthServicer()
        self.receive: dict[str, ReceiveStream] = {}
        self.send: dict[str, SendStream] = {}
        self.metrics = Metrics(self._snapshot)
        self.grpc_address = ""
        self._server: grpc.aio.Server | None = None
        self._servicer: GatewayServicer | None = None
        self._stop = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.demo_runner: demo_module.Demo | None = None
        self._shutting_down = False

    # Metrics and health ------------------------------------------------------------------

    def _streams(self) -> list[ReceiveStream | SendStream]:
        return [*self.receive.values(), *self.send.values()]

    def _snapshot(self) -> list[StreamSnapshot]:
        return [StreamSnapshot(s.name, s.kind, s.state, s.stats()) for s in self._streams()]

    def _on_state(self, stream: ReceiveStream | SendStream) -> None:
        """Health follows stream state (called from any thread)."""
        loop = self._loop
        if loop is None or self._shutting_down:
            return
        status = SERVING if stream.state == "running" else NOT_SERVING
        asyncio.run_coroutine_threadsafe(self.health.set(health_name(stream), status), loop)

    # Start -------------------------------------------------------------------------------

    def _build_streams(self, loop: asyncio.AbstractEventLoop) -> None:
        fragment_bytes = self.config.subscribe.fragment_bytes
        for rc in self.config.receive:
            self.receive[rc.name] = ReceiveStream(
                rc, Hub(rc.name, loop), fragment_bytes, self._on_state
            )
        for sc in self.config.send:
            self.send[sc.name] = SendStream(sc, self._on_state)

    def _bind(self, server: grpc.aio.Server) -> None:
        listen = self.config.server.listen
        credentials = _credentials(self.config.server)
        try:
            if credentials is None:
                port = server.add_insecure_port(listen)
            else:
                port = server.add_secure_port(listen, credentials)
        except RuntimeError as exc:
            raise StartupError(f"cannot listen for gRPC on {listen}: {exc}") from None
        if port == 0:
            raise StartupError(f"cannot listen for gRPC on {listen} (address in use?)")
        host, _ = split_host_port(listen)
        self.grpc_address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _make_server(self) -> grpc.aio.Server:
        interceptors: list[grpc.aio.ServerInterceptor[Any, Any]] = [
            MetricsInterceptor(self.metrics.grpc)
        ]
        token = read_token(self.config.server)
        if token is not None:
            interceptors.append(TokenAuthInterceptor(token))
        server = grpc.aio.server(
            interceptors=interceptors, options=server_options(self.config.server)
        )
        streams = Streams(self.receive, self.send)
        self._servicer = GatewayServicer(
            streams, self.config.subscribe, self.config.server.grace_period
        )
        server.add_generic_rpc_handlers((generic_handler(self._servicer),))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        return server

    async def start(self) -> None:
        """Binds, opens every stream and starts serving; raises StartupError."""
        self._loop = asyncio.get_running_loop()
        warn_exposed_secrets(self.config.server)
        await self.health.set("", NOT_SERVING)
        self._build_streams(self._loop)
        self._server = self._make_server()
        self._bind(self._server)
        if self.config.metrics.listen is not None:
            try:
                address = self.metrics.serve(self.config.metrics.listen)
            except OSError as exc:
                raise StartupError(
                    f"cannot serve metrics on {self.config.metrics.listen}: {exc.strerror or exc}"
                ) from None
            logger.info("metrics on http://%s/metrics", address)
        for stream in self.receive.values():
            try:
                stream.start()
            except (OSError, ValueError, RuntimeError) as exc:
                raise StartupError(
                    f"receive stream {stream.name} ({stream.config.endpoint}): {exc}"
                ) from None
        for sender in self.send.values():
            try:
                await sender.start()
            except (OSError, ValueError, RuntimeError) as exc:
                raise StartupError(
                    f"send stream {sender.name} ({sender.config.endpoint}): {exc}"
                ) from None
        await self._server.start()
        await self.health.set(SERVICE_NAME, SERVING)
        for s in self._streams():
            await self.health.set(health_name(s), SERVING if s.state == "running" else NOT_SERVING)
        await self.health.set("", SERVING)
        logger.info(
            "gRPC on %s%s; streams: %s",
            self.grpc_address,
            " (TLS)" if self.config.server.tls else "",
            ", ".join(f"{s.name} ({s.config.endpoint})" for s in self._streams()),
        )
        if self.demo:
            self.demo_runner = demo_module.Demo(self)
            self.demo_runner.start()

    def request_stop(self) -> None:
        """Begins a graceful shutdown (safe to call more than once)."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT begin a graceful shutdown."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._signalled, sig)

    def _signalled(self, sig: signal.Signals) -> None:
        logger.info("%s: shutting down", sig.name)
        self.request_stop()

    async def wait(self, exit_after: float | None = None) -> None:
        """Until a stop is requested (or ``exit_after`` seconds pass)."""
        try:
            await asyncio.wait_for(self._stop.wait(), exit_after)
        except TimeoutError:
            logger.info("--exit-after %g s: shutting down", exit_after)

    # Shutdown ----------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Graceful shutdown within ``server.grace_period`` (plus the stream flush)."""
        self._shutting_down = True
        grace = self.config.server.grace_period
        if self._servicer is not None:
            self._servicer.closing.set()  # new calls get UNAVAILABLE from now on
        await self.health.enter_graceful_shutdown()
        if self.demo_runner is not None:
            await self.demo_runner.stop()
        for stream in self.receive.values():
            stream.stop()
        for stream in self.receive.values():
            if not await asyncio.to_thread(stream.join, grace):
                logger.warning("stream %s: reader thread did not stop in %g s", stream.name, grace)
        for stream in self.receive.values():
            stream.hub.close("the gateway is shutting down", shutdown=True)
        if self._server is not None:
            await self._server.stop(grace)
        for sender in self.send.values():
            await sender.flush(grace)
            sender.close()
        for stream in self.receive.values():
            stream.close()
        self.metrics.close()
        logger.info("stopped")

    async def abort_start(self) -> None:
        """Releases whatever :meth:`start` had set up before it failed."""
        self._shutting_down = True
        for stream in self.receive.values():
            stream.stop()
            await asyncio.to_thread(stream.join, 2.0)
            stream.close()
        for sender in self.send.values():
            sender.close()
        if self._server is not None:
            await self._server.stop(None)
        self.metrics.close()


def write_ready_file(path: Path, gateway: Gateway) -> None:
    """Announces the bound addresses (JSON), atomically, for scripts and tests."""
    info = {"pid": os.getpid(), "grpc": gateway.grpc_address, "metrics": gateway.metrics.address}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info) + "\n", encoding="utf-8")
    tmp.replace(path)


async def run(
    config: GatewayConfig,
    demo: bool = False,
    exit_after: float | None = None,
    ready_file: Path | None = None,
    on_ready: Callable[[Gateway], None] | None = None,
) -> int:
    """Runs the daemon until SIGTERM/SIGINT (or ``exit_after``); returns the exit status."""
    gateway = Gateway(config, demo=demo)
    gateway.install_signal_handlers()  # a signal during start-up stops right after it
    try:
        await gateway.start()
    except StartupError:
        await gateway.abort_start()
        raise
    # What exists now (grpcio, protobuf, numpy, the streams) lives as long as the daemon: keep
    # it out of the cyclic collector's generations, which otherwise walk all of it again and
    # again while heaps flow (about 5% of the Python threads' perf samples at 1,500 heaps/s).
    # Start-up garbage is collected first, so that none of it is kept for good.
    gc.collect()
    gc.freeze()
    if ready_file is not None:
        write_ready_file(ready_file, gateway)
    if on_ready is not None:
        on_ready(gateway)
    await gateway.wait(exit_after)
    await gateway.shutdown()
    runner = gateway.demo_runner
    if runner is not None:
        await runner.close()
        if not runner.ok():
            logger.error("demo: no heap came back through the gateway")
            return 1
    return 0
