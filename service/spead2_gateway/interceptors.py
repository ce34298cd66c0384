"""Server interceptors: bearer-token authentication and request metrics.

Both wrap the method handler the server found, keeping its kind (unary or streaming on
either side) and its (de)serialisers, so they work for the generic Gateway handlers as well
as for the health and reflection services.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import grpc
import grpc.aio

from spead2_gateway.config import ServerConfig
from spead2_gateway.errors import StartupError
from spead2_gateway.metrics import GrpcMetrics

__all__ = ["MetricsInterceptor", "TokenAuthInterceptor", "read_token"]

# Health checks (Kubernetes probes) and reflection (schema only) stay reachable without a token.
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

# The next handler lookup; it yields None for methods the server does not know.
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Any]]
Handler = grpc.RpcMethodHandler

if TYPE_CHECKING:
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:  # not subscriptable at run time
    _Interceptor = grpc.aio.ServerInterceptor


def _rebuild(handler: Handler[Any, Any], wrap: Callable[[Any, str], Any]) -> Handler[Any, Any]:
    """A handler of the same kind whose behaviour is ``wrap(behaviour, kind)``."""
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary, "unary"), **kwargs)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            wrap(handler.unary_stream, "server_stream"), **kwargs
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            wrap(handler.stream_unary, "client_stream"), **kwargs
        )
    assert handler.stream_stream is not None
    return grpc.stream_stream_rpc_method_handler(
        wrap(handler.stream_stream, "bidi_stream"), **kwargs
    )


def read_token(config: ServerConfig) -> str | None:
    """The bearer token from ``server.token_file`` or ``server.token_env``, if configured."""
    if config.token_file is not None:
        try:
            token = config.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise StartupError(
                f"cannot read server.token_file {config.token_file}: {exc}"
            ) from None
        if not token:
            raise StartupError(f"server.token_file {config.token_file} is empty")
        return token
    if config.token_env is not None:
        token = os.environ.get(config.token_env, "").strip()
        if not token:
            raise StartupError(
                f"server.token_env: environment variable {config.token_env} is not set"
            )
        return token
    return None


def _metadata_value(details: grpc.HandlerCallDetails, key: str) -> str | None:
    for entry in details.invocation_metadata or ():
        if entry[0] == key:
            value = entry[1]
            return value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return None


class TokenAuthInterceptor(_Interceptor):
    """Rejects calls without ``authorization: Bearer <token>`` with UNAUTHENTICATED."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    def _authorised(self, details: grpc.HandlerCallDetails) -> bool:
        value = _metadata_value(details, "authorization")
        if value is None:
            return False
        return hmac.compare_digest(value.encode("latin-1", "replace"), self._expected)

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler[Any, Any]:
        """Passes authorised (and open) calls on; others get a handler that aborts."""
        # None (for a method the server does not know) is passed on as it is.
        handler = cast("Handler[Any, Any]", await continuation(handler_call_details))
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_PREFIXES):
            return handler
        if self._authorised(handler_call_details):
            return handler
        return _rebuild(handler, _deny)


def _deny(behaviour: Any, kind: str) -> Any:
    message = "missing or invalid bearer token (metadata 'authorization: Bearer <token>')"

    if kind in ("server_stream", "bidi_stream"):

        async def deny_stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
            yield None  # pragma: no cover - abort raises

        return deny_stream

    async def deny(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return deny


class MetricsInterceptor(_Interceptor):
    """Counts started and finished calls (with status code) and their duration."""

    def __init__(self, metrics: GrpcMetrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler[Any, Any]:
        """Wraps the handler so its outcome is recorded."""
        handler = cast("Handler[Any, Any]", await continuation(handler_call_details))
        if handler is None:
            return handler
        method = handler_call_details.method
        return _rebuild(handler, lambda behaviour, kind: self._wrap(behaviour, kind, method))

    def _wrap(self, behaviour: Any, kind: str, method: str) -> Any:
        labels = self._metrics.labels(kind, method)
        metrics = self._metrics

        def finish(
            context: grpc.aio.ServicerContext[Any, Any], start: float, error: BaseException | None
        ) -> None:
            metrics.done(labels, _code_name(context, error), time.monotonic() - start)

        if inspect.isasyncgenfunction(behaviour):

            async def stream_wrapper(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                metrics.start(labels)
                start = time.monotonic()
                error: BaseException | None = None
                try:
                    async for response in behaviour(request, context):
                        yield response
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    finish(context, start, error)

            return stream_wrapper

        async def wrapper(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            metrics.start(labels)
            start = time.monotonic()
            error: BaseException | None = None
            try:
                return await behaviour(request, context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                finish(context, start, error)

        return wrapper


def _code_name(context: grpc.aio.ServicerContext[Any, Any], error: BaseException | None) -> str:
    """The status a call ended with, as the upper-case code name."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int) and code != 0:
        for candidate in grpc.StatusCode:
            if candidate.value[0] == code:
                return candidate.name
    if error is None:
        return "OK"
    if isinstance(error, GeneratorExit | asyncio.CancelledError):
        return "CANCELLED"
    return "UNKNOWN"
