"""How far the clocks of the services the hub calls are from its own.

Every answer of carbon, optimizer and dispatcher carries the sender's now (services/common/clockstamp.py).
`SkewProbe`, a client interceptor on each of the hub's channels, times each unary call and hands the stamp to
`PeerClocks`, which estimates the peer's lead over the hub:

    skew = peer now - (hub now at the answer - one-way time)
    one-way time = (round trip - the peer's handling time) / 2, in real seconds times the hub clock's speed-up

(an answer whose one-way time is over half the limit is left out: it cannot tell skew from a slow network)
and keeps the latest figure per peer in `caspian_hub_peer_clock_skew_seconds{peer}` (positive: the peer is
ahead). When |skew| exceeds CASPIAN_HUB_MAX_CLOCK_SKEW_SECONDS, each cycle report carries a note such as
"clock skew: dispatcher is 312 s ahead of the hub". The setting is in real seconds: with a simulated clock it is
multiplied by the hub clock's speed-up, because network jitter is real time and a sim clock turns 10 ms of it
into 7.2 s at 720x. Skew matters because the hub's times cross the wire: a dispatcher ahead of the hub refuses
gates as "deadline has passed", one behind it sees jobs that start in its future.
"""

from __future__ import annotations

import logging
import time

import grpc
from prometheus_client import CollectorRegistry, Gauge

from services.common.clock import Clock
from services.common.clockstamp import Stamp, read_stamp

log = logging.getLogger("caspian.hub.clocks")


class PeerClocks:
    """The latest measured skew of each peer, its gauge, and the cycle notes for skews over the limit."""

    def __init__(self, clock: Clock, max_skew_seconds: float, registry: CollectorRegistry | None = None):
        self.clock = clock
        self.limit_seconds = max_skew_seconds * clock.speedup
        # The estimate is off by at most the one-way time (an asymmetric path); an answer whose one-way time is
        # over half the limit (a retried or stalled call) cannot tell a skew from a slow network, and is left out.
        self.max_one_way_seconds = max_skew_seconds / 2
        self.skews: dict[str, float] = {}
        self._gauge = (
            Gauge(
                "caspian_hub_peer_clock_skew_seconds",
                "The peer's clock minus the hub's at its latest answer, less half the network round trip "
                "(positive: the peer is ahead). In the clocks' own seconds (simulated seconds in sim mode).",
                ["peer"],
                registry=registry,
            )
            if registry is not None
            else None
        )

    def observe(self, peer: str, answer: Stamp, round_trip_seconds: float) -> float | None:
        """Record one answer that took `round_trip_seconds` of real time, received just now; its skew (None
        when the call took too long to tell)."""
        one_way = max(0.0, round_trip_seconds - answer.handled_seconds) / 2
        if one_way > self.max_one_way_seconds:
            return None
        hub_then = self.clock.now().timestamp() - one_way * self.clock.speedup
        skew = answer.now - hub_then
        self.record(peer, skew)
        return skew

    def record(self, peer: str, skew: float) -> None:
        was_over = self._over(self.skews.get(peer, 0.0))
        self.skews[peer] = skew
        if self._gauge is not None:
            self._gauge.labels(peer).set(skew)
        if self._over(skew) != was_over:
            level = logging.WARNING if self._over(skew) else logging.INFO
            log.log(level, describe(peer, skew), extra={"peer": peer, "skew_seconds": round(skew, 3)})

    def _over(self, skew: float) -> bool:
        return abs(skew) > self.limit_seconds

    def notes(self) -> list[str]:
        """One note per peer whose latest skew is over the limit, by peer name."""
        return [describe(peer, skew) for peer, skew in sorted(self.skews.items()) if self._over(skew)]

    def probe(self, peer: str) -> tuple[grpc.aio.ClientInterceptor, ...]:
        """The interceptors for the channel to `peer`."""
        return (SkewProbe(peer, self),)


def describe(peer: str, skew: float) -> str:
    side = "ahead of" if skew > 0 else "behind"
    return f"clock skew: {peer} is {abs(skew):.0f} s {side} the hub"


class SkewProbe(grpc.aio.UnaryUnaryClientInterceptor):
    """Times every unary call on a channel and hands the answer's clock stamp to PeerClocks. A call's own
    outcome (answer or error) is never changed."""

    def __init__(self, peer: str, clocks: PeerClocks):
        self.peer = peer
        self.clocks = clocks

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        began = time.perf_counter()
        call = await continuation(client_call_details, request)
        try:
            await call
        except grpc.aio.AioRpcError:
            pass  # a refusal carries the stamp too; the caller sees the error when it awaits the call
        round_trip = time.perf_counter() - began
        try:
            answer = read_stamp(await call.trailing_metadata())
        except grpc.aio.AioRpcError:
            answer = None
        if answer is not None:
            self.clocks.observe(self.peer, answer, round_trip)
        return call
