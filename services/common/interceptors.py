"""The one server interceptor every service uses.

It maps domain ContractErrors to their gRPC status, maps unexpected exceptions to INTERNAL without leaking a
traceback to the client, and logs one structured JSON line per RPC (method, code, duration, request id). Given
the service's clock, it stamps every unary answer (errors included) with the service's now
(services/common/clockstamp.py), so callers can measure the skew between their clocks.
"""

from __future__ import annotations

import contextvars
import inspect
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable

import grpc

from services.common.clock import Clock
from services.common.clockstamp import stamp
from services.common.errors import REASON_KEY, ContractError, InvalidArgument
from services.common.metrics import RpcMetrics
from services.common.timefields import check_time_fields

log = logging.getLogger("caspian.rpc")

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
# Methods too frequent or too dull to log at INFO; their metrics are still recorded.
QUIET_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})
# Status messages are sent as metadata (16 KiB at most): a message echoing a long value is cut to this.
MAX_STATUS_MESSAGE_CHARS = 1024
# Maps an exception a servicer did not expect to a ContractError (say, a locked database to UNAVAILABLE), or
# returns None to leave it INTERNAL.
ErrorMapper = Callable[[BaseException], ContractError | None]


_PROCESS_TAG = os.urandom(4).hex()
_SEQUENCE = itertools.count(1)


def _request_id(context: grpc.aio.ServicerContext) -> str:
    """The caller's x-request-id, else one unique to this process (cheaper than a uuid per call)."""
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and value:
            return str(value)[:64]
    return f"{_PROCESS_TAG}-{next(_SEQUENCE):x}"


def _code_name(context: grpc.aio.ServicerContext, fallback: grpc.StatusCode) -> str:
    code = context.code() if hasattr(context, "code") else None
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        for candidate in grpc.StatusCode:
            if candidate.value[0] == code:
                return candidate.name
    return fallback.name


class RpcObserver:
    """Runs one RPC's behaviour with error mapping, logging and metrics."""

    def __init__(
        self,
        method: str,
        metrics: RpcMetrics | None,
        error_mapper: ErrorMapper | None = None,
        clock: Clock | None = None,
    ):
        self.method = method
        self.metrics = metrics
        self.error_mapper = error_mapper
        self.clock = clock

    def stamp(self, start: float) -> tuple[tuple[str, str], ...]:
        """This service's now for the answer's trailing metadata (nothing without a clock)."""
        return stamp(self.clock, time.perf_counter() - start) if self.clock is not None else ()

    async def fail(self, context: grpc.aio.ServicerContext, exc: BaseException, start: float) -> None:
        if not isinstance(exc, ContractError) and self.error_mapper is not None:
            exc = self.error_mapper(exc) or exc
        stamped = self.stamp(start)
        if isinstance(exc, ContractError):
            trailing = (((REASON_KEY, exc.reason),) if exc.reason else ()) + stamped
            await context.abort(
                getattr(grpc.StatusCode, exc.code), bounded_message(exc.message), trailing_metadata=trailing
            )
        if isinstance(exc, NotImplementedError):
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED, f"{self.method} is not implemented", trailing_metadata=stamped
            )
        log.error(
            "unhandled exception", exc_info=exc, extra={"method": self.method, "request_id": REQUEST_ID.get()}
        )
        await context.abort(
            grpc.StatusCode.INTERNAL,
            f"internal error (request id {REQUEST_ID.get()})",
            trailing_metadata=stamped,
        )

    def record(self, context: grpc.aio.ServicerContext, start: float, outcome: grpc.StatusCode) -> None:
        code = _code_name(context, outcome)
        elapsed = time.perf_counter() - start
        if self.metrics is not None:
            self.metrics.requests.labels(self.method, code).inc()
            self.metrics.duration.labels(self.method).observe(elapsed)
        level = logging.DEBUG if self.method in QUIET_METHODS and code == "OK" else logging.INFO
        if log.isEnabledFor(level):
            log.log(
                level,
                "rpc",
                extra={
                    "method": self.method,
                    "code": code,
                    "duration_ms": round(elapsed * 1000, 3),
                    "request_id": REQUEST_ID.get(),
                },
            )


def bounded_message(message: str) -> str:
    """A status message short enough for any transport, whatever value it echoes."""
    if len(message) <= MAX_STATUS_MESSAGE_CHARS:
        return message
    cut = len(message) - MAX_STATUS_MESSAGE_CHARS + 40
    return f"{message[: MAX_STATUS_MESSAGE_CHARS - 40]}... ({cut} characters cut)"


class Undecodable:
    """Stands in for a request whose bytes are not a valid message, so the call can answer INVALID_ARGUMENT
    (grpc would otherwise answer UNKNOWN and log a traceback from inside its deserializer)."""

    def __init__(self, type_name: str):
        self.type_name = type_name

    def error(self) -> InvalidArgument:
        return InvalidArgument(f"request body is not a valid {self.type_name}")


def _safe_deserializer(deserialize: Callable | None) -> Callable | None:
    if deserialize is None:
        return None
    owner = getattr(deserialize, "__self__", None)
    type_name = getattr(owner, "__name__", "message")

    def safe(data: bytes):
        try:
            return deserialize(data)
        except Exception:  # noqa: BLE001 - any decode failure is the caller's bad input
            return Undecodable(type_name)

    return safe


async def _checked_stream(requests):
    async for request in requests:
        if isinstance(request, Undecodable):
            raise request.error()
        check_time_fields(request)
        yield request


def _checked(request_or_iterator):
    """The request as the servicer may trust it: decodable, every Timestamp and Duration within protobuf's rules."""
    if isinstance(request_or_iterator, Undecodable):
        raise request_or_iterator.error()
    if hasattr(request_or_iterator, "__aiter__"):
        return _checked_stream(request_or_iterator)
    check_time_fields(request_or_iterator)
    return request_or_iterator


def _is_abort(exc: BaseException) -> bool:
    return isinstance(exc, grpc.aio.AbortError)


def _wrap_unary_response(observer: RpcObserver, behavior: Callable[..., Awaitable]):
    async def wrapper(request_or_iterator, context):
        REQUEST_ID.set(_request_id(context))
        start = time.perf_counter()
        outcome = grpc.StatusCode.OK
        try:
            response = await behavior(_checked(request_or_iterator), context)
            if observer.clock is not None:
                context.set_trailing_metadata(observer.stamp(start))
            return response
        except BaseException as exc:  # noqa: BLE001 - every path is mapped below
            outcome = (
                grpc.StatusCode.CANCELLED if not isinstance(exc, Exception) else grpc.StatusCode.INTERNAL
            )
            if _is_abort(exc) or not isinstance(exc, Exception):
                raise
            await observer.fail(context, exc, start)
        finally:
            observer.record(context, start, outcome)

    return wrapper


def _wrap_stream_response(observer: RpcObserver, behavior: Callable):
    async def wrapper(request_or_iterator, context):
        REQUEST_ID.set(_request_id(context))
        start = time.perf_counter()
        outcome = grpc.StatusCode.OK
        try:
            result = behavior(_checked(request_or_iterator), context)
            if inspect.isasyncgen(result):
                async for item in result:
                    yield item
            else:
                await result
        except BaseException as exc:  # noqa: BLE001
            outcome = (
                grpc.StatusCode.CANCELLED if not isinstance(exc, Exception) else grpc.StatusCode.INTERNAL
            )
            if _is_abort(exc) or not isinstance(exc, Exception):
                raise
            await observer.fail(context, exc, start)
        finally:
            observer.record(context, start, outcome)

    return wrapper


def rewrap(handler: grpc.RpcMethodHandler, unary_response: Callable, stream_response: Callable):
    """A copy of `handler` whose behaviour is wrapped: unary_response for unary-response methods, else stream_response."""
    kwargs = {
        "request_deserializer": _safe_deserializer(handler.request_deserializer),
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary_response(handler.unary_unary), **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary_response(handler.stream_unary), **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(stream_response(handler.unary_stream), **kwargs)
    return grpc.stream_stream_rpc_method_handler(stream_response(handler.stream_stream), **kwargs)


class ObservabilityInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        metrics: RpcMetrics | None = None,
        error_mapper: ErrorMapper | None = None,
        clock: Clock | None = None,
    ):
        self.metrics = metrics
        self.error_mapper = error_mapper
        self.clock = clock
        # A method's handler is usually the same object on every call, so it is wrapped once. The cache keeps
        # the handler itself and checks identity: an inner interceptor may build a handler per call (auth binds
        # the caller into it), and an id() alone could be reused by a later call's handler.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        observer = RpcObserver(method, self.metrics, self.error_mapper, self.clock)
        wrapped = rewrap(
            handler,
            lambda behavior: _wrap_unary_response(observer, behavior),
            lambda behavior: _wrap_stream_response(observer, behavior),
        )
        self._wrapped[method] = (handler, wrapped)
        return wrapped
