"""The timing around `Scheduler.tick()`: period, debounced trigger, gates between cycles, backoff.

One task runs every cycle and every gate pass, so two cycles never overlap. It wakes at the earliest of:
- the next period (CASPIAN_HUB_SCHEDULE_PERIOD_SECONDS after the last cycle);
- the end of a submission burst: `debounce` seconds after the last submission, but never more than
  `debounce_max` after the first one of the burst;
- the next planned start, to open that job's gate without waiting for a cycle;
- a TriggerSchedule request, which runs a cycle now and returns its report.
While a cycle runs (it may wait on a slow or hung optimizer for its whole solve deadline), the same task
keeps opening gates at their planned starts: a solve never holds back jobs already planned. Gate passes are
serialized (scheduling/gates.py) and every write of the cycle is conditional on the revision it read, so a
gate opened meanwhile wins over the cycle's re-plan of that job.
A cycle that fails is retried after `backoff_initial`, doubling up to `backoff_max` (never later than the
period). All waiting is on the injected clock: with a ManualClock a test advances time and the loop follows.
What to do on waking is `next_wake(state, now)`, a pure function that the offline evaluation
(bench/evaluation/simulate.py) calls too, with the same `Debounce`: both follow one rule.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.common.clock import Clock
from services.common.tasks import cancel_and_wait
from services.hub.scheduling import CycleReport, Scheduler

log = logging.getLogger("caspian.hub.loop")


@dataclass
class Debounce:
    """The debounced trigger, in epoch seconds: a cycle `delay` after the last poke of a burst, but never more
    than `max_delay` after its first. Any cycle ends the burst (`clear`). The loop and the offline evaluation
    (bench/evaluation/simulate.py) both use it, so they follow one rule."""

    delay: float
    max_delay: float
    began: float | None = None
    due: float | None = None
    # Counts pokes, so a cycle can tell whether one came in while it ran.
    pokes: int = 0

    def poke(self, now_s: float) -> None:
        if self.delay <= 0:
            return
        if self.began is None:
            self.began = now_s
        self.due = min(now_s + self.delay, self.began + self.max_delay)
        self.pokes += 1

    def clear(self) -> None:
        self.began = self.due = None

    def end_burst(self, pokes_before_cycle: int) -> None:
        """A cycle has run: the burst is over, unless a poke came in while the cycle ran."""
        if self.pokes == pokes_before_cycle:
            self.clear()


class Step(enum.Enum):
    CYCLE = "cycle"
    GATES = "gates"
    SLEEP = "sleep"


@dataclass(frozen=True)
class LoopState:
    """What the loop waits for, in epoch seconds (None: nothing of that kind)."""

    next_cycle: float | None
    debounce_due: float | None
    next_gate: float | None
    requested: bool = False


@dataclass(frozen=True)
class Wake:
    """The step due at `now` (SLEEP: none), and the earliest time anything is due (None: until woken)."""

    step: Step
    at: float | None


def next_wake(state: LoopState, now: float) -> Wake:
    """A cycle if one was requested, the period is up or the debounce is due; else a gate pass if a planned
    start has come; else sleep until the earliest of them."""
    times = [t for t in (state.next_cycle, state.debounce_due, state.next_gate) if t is not None]
    at = min(times) if times else None
    if state.requested or _due(state.next_cycle, now) or _due(state.debounce_due, now):
        return Wake(Step.CYCLE, at)
    if _due(state.next_gate, now):
        return Wake(Step.GATES, at)
    return Wake(Step.SLEEP, at)


def _due(at: float | None, now: float) -> bool:
    return at is not None and at <= now


def _seconds(at: datetime | None) -> float | None:
    return None if at is None else at.timestamp()


class ScheduleLoop:
    def __init__(
        self,
        scheduler: Scheduler,
        clock: Clock,
        *,
        period: float = 300.0,
        debounce: float = 5.0,
        debounce_max: float = 30.0,
        backoff_initial: float = 5.0,
        backoff_max: float = 300.0,
        enabled: bool = True,
    ):
        self.scheduler = scheduler
        self.clock = clock
        self.period = period
        self.debounce = Debounce(debounce, debounce_max)
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.enabled = enabled
        self._wake = asyncio.Event()
        self._requests: list[asyncio.Future[CycleReport]] = []
        self._next_cycle_at: datetime | None = None
        self._next_gate_at: datetime | None = None
        self._failures = 0
        self._task: asyncio.Task | None = None
        # When the loop is idle: the clock time it sleeps until (None: until woken). For tests and status.
        self.idle_until: datetime | None = None
        self.idle = False

    def start(self) -> None:
        if self._task is None:
            self._next_cycle_at = self.clock.now() if self.enabled else None
            self._task = asyncio.create_task(self._run(), name="hub-schedule-loop")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        for future in self._requests:
            if not future.done():
                future.cancel()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def poke(self) -> None:
        """New work arrived (a submission, a requeue): run a cycle once the burst is over."""
        if not self.enabled or self.debounce.delay <= 0:
            return
        self.debounce.poke(self.clock.now().timestamp())
        self._wake.set()

    def state(self) -> LoopState:
        return LoopState(
            next_cycle=_seconds(self._next_cycle_at),
            debounce_due=self.debounce.due,
            next_gate=_seconds(self._next_gate_at),
            requested=bool(self._requests),
        )

    def gate_at(self, when: datetime) -> None:
        """A job is planned to start at `when`: wake then to open its gate."""
        if self._next_gate_at is None or when < self._next_gate_at:
            self._next_gate_at = when
            self._wake.set()

    async def run_now(self) -> CycleReport:
        """Run one cycle as soon as the current one (if any) is over and return its report."""
        if not self.running:
            raise RuntimeError("the schedule loop is not running")
        future: asyncio.Future[CycleReport] = asyncio.get_running_loop().create_future()
        self._requests.append(future)
        self._wake.set()
        return await future

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = self.clock.now()
            try:
                step = next_wake(self.state(), now.timestamp()).step
                if step is Step.CYCLE:
                    await self._cycle()
                    continue
                if step is Step.GATES:
                    self._next_gate_at = None
                    await self.scheduler.dispatch_due()
                    self._next_gate_at = await self.scheduler.next_gate_after(self.clock.now())
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep the loop alive; the next wake retries
                log.exception("schedule loop step failed", extra={"cycle": self.scheduler.cycle})
                self._failures += 1
                self._next_cycle_at = now + timedelta(seconds=self._backoff())
            await self._sleep_until_due()

    async def _cycle(self) -> None:
        requests, self._requests = self._requests, []
        pokes = self.debounce.pokes
        try:
            report = await self._tick_with_gates()
        except BaseException as exc:
            for future in requests:
                if not future.done():
                    future.set_exception(exc)
            raise
        for future in requests:
            if not future.done():
                future.set_result(report)
        self.debounce.end_burst(pokes)
        now = self.clock.now()
        if report.outcome == "error":
            self._failures += 1
            delay = self._backoff()
        else:
            self._failures = 0
            delay = self.period
        self._next_cycle_at = now + timedelta(seconds=delay) if self.enabled or self._failures else None
        self._next_gate_at = await self.scheduler.next_gate_after(now)

    async def _tick_with_gates(self) -> CycleReport:
        """One cycle, with the gates opened on time while it runs."""
        tick = asyncio.ensure_future(self.scheduler.tick())
        try:
            while True:
                self._wake.clear()
                waits: set[asyncio.Future] = {tick, asyncio.ensure_future(self._wake.wait())}
                if self._next_gate_at is not None:
                    waits.add(asyncio.ensure_future(self._sleep_until(self._next_gate_at)))
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waits - {tick}:
                        waiter.cancel()
                if tick.done():
                    return tick.result()
                if _due(_seconds(self._next_gate_at), self.clock.now().timestamp()):
                    self._next_gate_at = None
                    try:
                        await self.scheduler.dispatch_due()
                        self._next_gate_at = await self.scheduler.next_gate_after(self.clock.now())
                    except Exception:  # noqa: BLE001 - the cycle's own gate pass retries
                        log.exception(
                            "gate pass during a cycle failed", extra={"cycle": self.scheduler.cycle}
                        )
        except asyncio.CancelledError:
            tick.cancel()
            raise

    def _backoff(self) -> float:
        return min(self.backoff_max, self.period, self.backoff_initial * 2 ** max(0, self._failures - 1))

    async def _sleep_until(self, when: datetime) -> None:
        # The delay is taken when the sleep starts, so time that passed since the loop looked is not added.
        await self.clock.sleep(max(0.0, (when - self.clock.now()).total_seconds()))

    async def _sleep_until_due(self) -> None:
        at = next_wake(self.state(), self.clock.now().timestamp()).at
        until = None if at is None else datetime.fromtimestamp(at, UTC)
        waiter = asyncio.ensure_future(self._wake.wait())
        tasks: set[asyncio.Future] = {waiter}
        if until is not None:
            tasks.add(asyncio.ensure_future(self._sleep_until(until)))
        self.idle_until = until
        self.idle = True
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.idle = False
            for task in tasks:
                task.cancel()
