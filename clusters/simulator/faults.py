"""The ways tests break a spoke on purpose through the admin API: an outage (hang or 503) and injected faults."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class Fault:
    status: int = 500
    count: int = 1
    verbs: tuple[str, ...] = ()
    resource: str = ""
    delay_seconds: float = 0.0
    after_commit: bool = False

    def applies(self, verb: str, resource: str) -> bool:
        return self.count > 0 and (not self.verbs or verb in self.verbs) and self.resource in ("", resource)


@dataclass
class Outage:
    """`hang` holds requests and watch streams until it ends; `unavailable` answers 503."""

    mode: str = ""
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    timer: asyncio.TimerHandle | None = None

    def __post_init__(self) -> None:
        self.ended.set()

    def start(self, mode: str, seconds: float | None) -> None:
        if mode not in ("hang", "unavailable"):
            raise ValueError(f"unknown outage mode {mode!r}")
        self.mode = mode
        self.ended.clear()
        if self.timer is not None:
            self.timer.cancel()
        if seconds:
            self.timer = asyncio.get_running_loop().call_later(seconds, self.end)

    def end(self) -> None:
        self.mode = ""
        self.ended.set()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
