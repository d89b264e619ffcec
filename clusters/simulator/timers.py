"""The simulator's timers: one per (kind, namespace, name), due on the shared clock.

Arming a key again replaces its timer and disarming cancels it; the heap keeps stale entries and skips them,
so both cost O(log n).
"""

from __future__ import annotations

import heapq
import itertools
from datetime import datetime

TimerKey = tuple[str, str, str]


class Timers:
    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, str, str, str]] = []
        self._tokens: dict[TimerKey, int] = {}
        self._seq = itertools.count()

    def arm(self, due: datetime, kind: str, namespace: str, name: str) -> None:
        token = next(self._seq)
        self._tokens[(kind, namespace, name)] = token
        heapq.heappush(self._heap, (due, token, kind, namespace, name))

    def disarm(self, kind: str, namespace: str, name: str) -> None:
        self._tokens.pop((kind, namespace, name), None)

    def next_due(self) -> datetime | None:
        while self._heap:
            due, token, kind, ns, name = self._heap[0]
            if self._tokens.get((kind, ns, name)) == token:
                return due
            heapq.heappop(self._heap)
        return None

    def pop_due(self, now: datetime) -> tuple[datetime, str, str, str] | None:
        """The earliest timer due by `now`, removed: (due, kind, namespace, name); None when none is due."""
        due = self.next_due()
        if due is None or due > now:
            return None
        _, _, kind, ns, name = heapq.heappop(self._heap)
        del self._tokens[(kind, ns, name)]
        return due, kind, ns, name
