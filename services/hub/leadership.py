"""Which hub replica runs the scheduling loop: the holder of the `hub-scheduler` lease in the store.

Every replica serves the whole API. One at a time, the lease holder, runs the scheduling loop, opens gates
and follows the dispatcher's job-event stream (`LeaderWork`). Its writes carry the lease's epoch
(`store.FencedStore`): once another replica has taken the lease, a deposed leader that still runs (paused
past its TTL, cut off from the others) has every write refused. Job names are deterministic, so a dispatch
it still sends finds the new leader's Job instead of creating a second one.

Why a lease row in the store rather than a PostgreSQL advisory lock or a Kubernetes Lease:
- an advisory lock belongs to a connection, so a leader that is paused (SIGSTOP) keeps it for as long as the
  server keeps its connection, and no other replica can take over; a lease expires after its TTL whatever
  the holder's connections do;
- a lock has no epoch to fence writes with; the lease's epoch grows at every change of holder and the store
  checks it in the same transaction as each write, so safety does not depend on timing, only liveness does;
- it works wherever the hub's database works (compose, Kubernetes, behind a connection pooler), with no
  RBAC, and the same code runs on SQLite.
Times are the lease clock's (wall time in production, injected in tests): replicas' clocks must agree to
well within the TTL for a takeover to happen on time; a skewed clock cannot make two leaders write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter

from services.common.clock import Clock
from services.common.errors import FailedPrecondition
from services.common.tasks import cancel_and_wait
from services.hub.store import Fence, Lease, LeaseStore, StoreUnavailable

log = logging.getLogger("caspian.hub.leadership")

LEASE_NAME = "hub-scheduler"
# Outcomes of the loop's fenced writes: `accepted_late` is a write accepted although it began after this
# replica's lease had run out by its own clock (harmless while no other replica has taken the lease).
WRITE_OUTCOMES = ("accepted", "refused", "accepted_late")


def default_replica_name() -> str:
    """The pod name in Kubernetes (the hostname), made unique per process for several hubs on one host."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Leadership:
    """Takes and renews the lease every `renew_every` seconds; runs `on_elected` / `on_deposed` on changes."""

    def __init__(
        self,
        leases: LeaseStore,
        holder: str,
        *,
        clock: Clock,
        ttl: float,
        on_elected: Callable[[], Awaitable[None]],
        on_deposed: Callable[[], Awaitable[None]],
        renew_every: float | None = None,
        on_change: Callable[[bool], None] | None = None,
    ):
        if ttl <= 0:
            raise ValueError(f"lease ttl must be positive, got {ttl}")
        self.leases = leases
        self.holder = holder
        self.clock = clock
        self.ttl = ttl
        self.renew_every = renew_every if renew_every is not None else ttl / 3
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self._on_change = on_change
        self.lease: Lease | None = None
        self.is_leader = False
        self._task: asyncio.Task | None = None
        self.write_outcomes: Callable[[str], None] | None = None

    @property
    def leader(self) -> str:
        """Who holds the lease, as this replica last saw it ('' if nobody)."""
        if self.lease is None or self.clock.now().timestamp() >= self.lease.expires:
            return ""
        return self.lease.holder

    def fence(self) -> Fence:
        """The fence this replica's loop writes carry: its epoch while it leads; otherwise one that the store
        refuses (epoch 0 is never current)."""
        if self.is_leader and self.lease is not None:
            return self.lease.fence
        return Fence(LEASE_NAME, 0)

    def require_leader(self, action: str) -> None:
        """Refuse what only the leader can do (it runs the loop), naming the replica to ask instead."""
        if self.is_leader:
            return
        leader = self.leader
        where = f"the leader is {leader!r}" if leader else "no replica holds the scheduler lease yet"
        raise FailedPrecondition(
            f"{action}: this hub replica ({self.holder!r}) does not run the scheduling loop; {where}"
        )

    def on_write(self, fence: Fence) -> Callable[[bool], None]:
        """Called as a fenced write begins; the result is called with whether the store accepted it."""
        late = fence.epoch != 0 and (
            self.lease is None
            or self.lease.epoch != fence.epoch
            or self.clock.now().timestamp() >= self.lease.expires
        )

        def answered(accepted: bool) -> None:
            outcome = ("accepted_late" if late else "accepted") if accepted else "refused"
            if not accepted:
                log.warning("fenced write refused", extra={"holder": self.holder, "epoch": fence.epoch})
            if self.write_outcomes is not None:
                self.write_outcomes(outcome)

        return answered

    async def step(self) -> bool:
        """Ask for the lease once; start or stop the leader's work if that changed. Returns is_leader."""
        now = self.clock.now().timestamp()
        try:
            lease = await self.leases.acquire_or_renew(LEASE_NAME, self.holder, now, self.ttl)
        except StoreUnavailable as exc:
            # Cannot renew: keep leading until the lease runs out by our clock, then step down.
            if self.is_leader and self.lease is not None and now >= self.lease.expires:
                log.warning("lease expired while the database is unavailable", extra={"error": str(exc)})
                await self._set_leader(False)
            return self.is_leader
        previous, self.lease = self.is_leader and self.lease, lease
        leading = lease.held_by(self.holder, now)
        if leading and previous and previous.epoch != lease.epoch:
            # Lost and re-taken between two steps: what the loop had in memory may be stale. Start afresh.
            await self._set_leader(False)
        await self._set_leader(leading)
        return self.is_leader

    async def _set_leader(self, leading: bool) -> None:
        if leading == self.is_leader:
            return
        self.is_leader = leading
        log.info(
            "elected leader" if leading else "no longer leader",
            extra={"holder": self.holder, "epoch": self.lease.epoch if self.lease else 0},
        )
        if self._on_change is not None:
            self._on_change(leading)
        await (self._on_elected() if leading else self._on_deposed())

    def next_step_in(self) -> float:
        """A follower asks again as soon as the leader's lease runs out, so a takeover comes within the TTL
        of the leader's last renewal, not up to a renewal period later."""
        if self.is_leader or self.lease is None or not self.lease.holder:
            return self.renew_every
        left = self.lease.expires - self.clock.now().timestamp()
        return min(self.renew_every, max(0.05, left + 0.05))

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep campaigning; the next step retries
                log.exception("leader election step failed")
            await self.clock.sleep(self.next_step_in())

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="hub-leadership")

    async def stop(self) -> None:
        """Stop campaigning; a leader stops its work and gives the lease up so another takes over at once."""
        await cancel_and_wait(self._task)
        self._task = None
        if self.is_leader and self.lease is not None:
            await self._set_leader(False)
            with contextlib.suppress(StoreUnavailable):
                await self.leases.release(self.lease)


class SoleReplica:
    """One hub on SQLite: nobody else can run the loop, so it names itself as the leader."""

    def __init__(self, holder: str):
        self.holder = holder
        self.is_leader = True

    @property
    def leader(self) -> str:
        return self.holder

    def require_leader(self, action: str) -> None:
        """The sole hub always leads."""


def count_fenced_writes(leadership: Leadership, registry: CollectorRegistry) -> Counter:
    counter = Counter(
        "caspian_hub_fenced_writes",
        "Writes of the scheduling loop that carried the leader lease's epoch, by the store's answer.",
        ["outcome"],
        registry=registry,
    )
    for outcome in WRITE_OUTCOMES:
        counter.labels(outcome)
    leadership.write_outcomes = lambda outcome: counter.labels(outcome).inc()
    return counter


class LeaderWork:
    """What only the leader runs: the hub's scheduling loop (with its gates) and its job-event follower."""

    def __init__(self, hub, *, follow_events: bool = True):
        self.hub = hub
        self.follow_events = follow_events
        self._follower: asyncio.Task | None = None

    async def start(self) -> None:
        self.hub.loop.start()
        if self.follow_events and self._follower is None:
            self._follower = asyncio.create_task(self.hub.follower.run(), name="hub-job-events")

    async def stop(self) -> None:
        await self.hub.loop.stop()
        if self._follower is not None:
            self._follower.cancel()
            await asyncio.gather(self._follower, return_exceptions=True)
            self._follower = None
