"""One way for a test to wait: poll a condition against a deadline, never sleep a fixed time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def wait_for(
    predicate: Callable[[], Awaitable[bool] | bool],
    within: float = 10.0,
    what: str = "",
    interval: float = 0.02,
) -> None:
    """Poll `predicate` (plain or async) until it is true; fail after `within` seconds, naming `what`.

    The first polls come quickly (1 ms, doubling up to `interval`): most conditions hold after a few turns
    of the event loop, and a fixed first wait would cost every caller `interval` each time.
    """
    deadline = time.monotonic() + within
    pause = min(0.001, interval)
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what or predicate}")
        await asyncio.sleep(pause)
        pause = min(2 * pause, interval)


def wait_until(
    predicate: Callable[[], bool], within: float = 10.0, what: str = "", interval: float = 0.1
) -> None:
    """`wait_for` for synchronous tests (processes, files): blocks the thread while it polls."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what or predicate}")
        time.sleep(interval)
