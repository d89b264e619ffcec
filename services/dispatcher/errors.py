"""How a spoke call failed: no answer (after retries, or an open circuit), or a 4xx answer; which failures are worth
another try, and their labels for metrics and messages."""

from __future__ import annotations

import json

import urllib3
from kubernetes import client as k8s


class SpokeUnavailable(Exception):
    """The spoke did not answer: timeouts, refused connections, 5xx after every retry, or an open circuit."""


class SpokeApiError(Exception):
    """The spoke answered with a client error (4xx); `status` is the HTTP code, `reason` the Status reason."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @classmethod
    def from_api_exception(cls, exc: k8s.ApiException) -> SpokeApiError:
        reason, message = exc.reason or "", ""
        try:
            body = json.loads(exc.body or "{}")
            reason, message = body.get("reason") or reason, body.get("message") or ""
        except (TypeError, ValueError):
            pass
        return cls(int(exc.status or 0), str(reason), str(message))


def is_transient(exc: BaseException) -> bool:
    """Worth another try: the spoke did not answer, or answered 5xx/429."""
    if isinstance(exc, k8s.ApiException):
        status = int(exc.status or 0)
        return status == 0 or status == 429 or status >= 500
    return isinstance(exc, urllib3.exceptions.HTTPError | OSError | TimeoutError)


def outcome_label(exc: BaseException) -> str:
    if isinstance(exc, k8s.ApiException):
        return "server_error" if int(exc.status or 0) >= 500 or exc.status == 429 else "client_error"
    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError):
        return "timeout"
    return "unreachable"


def describe(exc: BaseException | None) -> str:
    if exc is None:
        return "no attempt made"
    if isinstance(exc, k8s.ApiException):
        return f"HTTP {exc.status} {exc.reason}"
    return type(exc).__name__
