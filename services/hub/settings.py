"""Hub settings, from CASPIAN_HUB_* variables."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.limits import MAX_RISK_AVERSION
from services.common.server import ServerSettings
from services.common.settings import load_settings, non_negative, one_of, port, positive, setting
from services.optimizer.problem import Policy
from services.optimizer.validate import Limits

PREFIX = "CASPIAN_HUB_"

# The one table of policy names: the optimizer's own.
POLICIES = tuple(policy.value for policy in Policy)


def _at_least_one(value: int) -> None:
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")


def _slot(value: int) -> None:
    if not 60 <= value <= 86400:
        raise ValueError(f"expected 60-86400 seconds, got {value}")


def _fraction(value: float) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"expected a fraction in [0, 1), got {value}")


def _risk(value: float) -> None:
    if not 0 <= value <= MAX_RISK_AVERSION:
        raise ValueError(f"expected a number in [0, {MAX_RISK_AVERSION:g}], got {value}")


def _unit(value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"expected a number in [0, 1], got {value}")


def _hedge(value: float) -> None:
    if not 0 <= value <= 4:
        raise ValueError(f"expected a number in [0, 4], got {value}")


def _database_url(value: str) -> None:
    if value and not value.startswith(("postgresql://", "postgres://")):
        raise ValueError("expected empty (SQLite at db_path) or a postgresql:// URL")


def _namespaces(value: tuple[str, ...]) -> None:
    from services.hub.validation import DNS_LABEL

    for name in value:
        if not DNS_LABEL.match(name):
            raise ValueError(f"{name!r} is not a DNS-1123 label")


@dataclass(frozen=True)
class HubSettings(ServerSettings):
    port: int = setting(50050, port, "gRPC port; 0 picks a free one")

    # State
    db_path: str = setting("./var/hub.db", None, "SQLite database file; its directory is created if missing")
    db_synchronous: str = setting(
        "FULL",
        one_of("FULL", "NORMAL", "OFF"),
        "SQLite synchronous mode; FULL makes every acknowledged write survive power loss",
    )
    database_url: str = setting(
        "",
        _database_url,
        "PostgreSQL URL (postgresql://user:password@host/db) for several hub replicas; empty: the SQLite file "
        "at db_path (one hub)",
    )
    database_pool_size: int = setting(8, _at_least_one, "PostgreSQL connections each hub keeps")
    database_timeout_seconds: float = setting(
        5.0, positive, "how long a call waits for a PostgreSQL connection before it answers UNAVAILABLE"
    )
    leader_lease_seconds: float = setting(
        15.0,
        positive,
        "with a database URL: how long the leader's lease lasts without renewal (renewed every third of it); "
        "a replica takes over the scheduling loop this long after the leader stops",
    )
    replica_name: str = setting(
        "", None, "this hub's name in the leader lease; empty: the host name and process id"
    )
    watch_history: int = setting(
        100_000, _at_least_one, "changes kept for WatchAppWrappers resume; older revisions are compacted"
    )
    watch_queue_size: int = setting(
        10_000,
        _at_least_one,
        "changes kept for live watchers; a watcher further behind is ended and told where to resume",
    )
    watch_max_streams: int = setting(
        256, _at_least_one, "WatchAppWrappers streams open at once, in all; RESOURCE_EXHAUSTED past it"
    )
    watch_max_streams_per_tenant: int = setting(
        32, _at_least_one, "WatchAppWrappers streams one tenant may hold open at once"
    )
    watch_writer_grace_seconds: float = setting(
        0.5,
        non_negative,
        "longest watchers hold their sends while a submission or cancel is in flight, so writers go first",
    )

    # Other services
    carbon_address: str = setting("127.0.0.1:50051", None, "carbon service address")
    optimizer_address: str = setting("127.0.0.1:50052", None, "optimizer service address")
    dispatcher_address: str = setting("127.0.0.1:50053", None, "dispatcher service address")
    carbon_timeout_seconds: float = setting(5.0, positive, "deadline of each carbon call")
    optimizer_timeout_seconds: float = setting(
        60.0, positive, "deadline of a cycle's whole solve, its retry included (above the solve time limit)"
    )
    optimizer_max_jobs: int = setting(
        Limits().max_jobs,
        _at_least_one,
        "most jobs one Solve request carries: keep it at the optimizer's CASPIAN_OPTIMIZER_MAX_JOBS; a larger "
        "backlog is solved in windows, most urgent first",
    )
    dispatcher_timeout_seconds: float = setting(10.0, positive, "deadline of each dispatcher call")
    optimizer_round_robin: bool = setting(
        False, None, "spread Solve calls over every address the optimizer name resolves to"
    )
    dispatcher_watch_seconds: float = setting(
        3600.0,
        positive,
        "deadline of the dispatcher event stream; it is then re-opened with a fresh snapshot",
    )
    service_token_file: str = setting(
        "", None, "file holding the bearer token the hub presents to the other services"
    )

    # Scheduling loop
    scheduler_enabled: bool = setting(
        True, None, "run cycles on the period and after submissions; TriggerSchedule works either way"
    )
    schedule_period_seconds: float = setting(300.0, positive, "time between cycles, in clock seconds")
    debounce_seconds: float = setting(
        5.0, non_negative, "quiet time after a submission before a cycle runs; 0 disables the trigger"
    )
    debounce_max_seconds: float = setting(
        30.0, positive, "longest a burst of submissions can delay its cycle"
    )
    backoff_initial_seconds: float = setting(5.0, positive, "first retry delay after a failed cycle")
    backoff_max_seconds: float = setting(300.0, positive, "largest retry delay after failed cycles")
    slot_seconds: int = setting(900, _slot, "length of one optimizer time slot")
    horizon_slots: int = setting(96, _at_least_one, "slots in the planning horizon")
    policy: str = setting("caspian", one_of(*POLICIES), "optimizer policy")
    solve_time_limit_seconds: float = setting(30.0, positive, "wall-clock limit the optimizer gets per solve")
    migration_cost_gco2: float = setting(
        1.0, non_negative, "gCO2-equivalent cost of moving a planned job to another cluster"
    )
    lateness_gco2_per_slot: float = setting(
        0.001,
        non_negative,
        "tie-breaker cost per slot of delay (small: a small job emits about 1 g per slot)",
    )
    preferred_discount: float = setting(
        0.05, _fraction, "fractional emissions discount for a preferred cluster"
    )
    mip_gap: float = setting(
        0.0,
        _fraction,
        "relative gap at which the optimizer may stop; 0: the optimizer's own default (1%). 0.001 plans a little "
        "better (about +0.3 points of the oracle's saving in docs/evaluation.md) at several times the solve time",
    )
    finished_ttl_seconds: float = setting(
        7 * 86400.0,
        non_negative,
        "finished AppWrappers (Succeeded, Failed, Cancelled, Unschedulable) are deleted this long after their "
        "last change, once accounted; their carbon stays in GetStats. 0 keeps them forever",
    )
    risk_aversion: float = setting(
        0.0,
        _risk,
        "k in [0, 10]: plans weigh a slot at forecast x (1 + k x its relative error spread), so far, uncertain "
        "slots must look cleaner by a margin; 0 (default: no measured gain, docs/evaluation.md) trusts the "
        "forecast as it is",
    )
    plan_on_estimate: bool = setting(
        False,
        None,
        "plan on the carbon service's shrinkage estimate (GetForecastResponse.estimate) instead of its raw "
        "forecast where it serves one (the raw forecast where it does not); off by default: on the reported "
        "seeds it gained in most cells but lost 9 points of capture in one (docs/evaluation.md)",
    )
    hedge_far_slots: float = setting(
        0.0,
        _hedge,
        "k in [0, 4]: keep options open; plans value each slot at its expected intensity given the forecast, "
        "shrunk toward the horizon's mean by k x its relative error spread (scheduling/hedging.py), so a far, "
        "uncertain dip draws less work away from a good slot now; 0 (default: k = 0.5 gained on the tuning weeks and lost "
        "on the reported ones, docs/evaluation.md) plans on the forecast as it is",
    )
    forecast_skill: bool = setting(
        False,
        None,
        "measure each zone's forecast skill online (forecasts against the actuals that followed, by lead) and "
        "plan on only as much of the forecast's predicted change as came true at that lead, the rest at the "
        "intensity now (scheduling/forecast_skill.py); off by default (docs/evaluation.md)",
    )
    expected_arrivals: float = setting(
        0.0,
        _unit,
        "beta in [0, 1]: expected arrivals; plans price each clean slot by beta x what the work the hub expects to "
        "arrive (a demand forecast from its own history of arrivals by hour of day) would pay at the margin "
        "without it (scheduling/expected_arrivals.py), so jobs with room leave clean slots to work not arrived "
        "yet; a soft price only, never less capacity or a later deadline; 0 (default: beta = 0.5 lost on the tuning "
        "seed and in 5 of 6 reported cells, at 50% and 80% load, docs/evaluation.md) plans on the forecast alone",
    )
    max_clock_skew_seconds: float = setting(
        5.0,
        positive,
        "a carbon, optimizer or dispatcher clock further than this from the hub's is a cycle note (the skew of "
        "each is in caspian_hub_peer_clock_skew_seconds); real seconds, times the speed-up with a sim clock",
    )
    dispatch_concurrency: int = setting(16, _at_least_one, "DispatchJob calls in flight at once")
    max_dispatch_attempts: int = setting(5, _at_least_one, "failed dispatches before an AppWrapper fails")

    # Carbon data
    carbon_stale_seconds: float = setting(3600.0, positive, "forecasts older than this are flagged stale")
    carbon_blind_after_seconds: float = setting(
        21600.0, positive, "forecasts older than this are not used: cycles schedule carbon-blind"
    )

    # Job status from the dispatcher
    watch_backoff_initial_seconds: float = setting(
        0.5, positive, "first reconnect delay of the dispatcher event stream"
    )
    watch_backoff_max_seconds: float = setting(
        30.0, positive, "largest reconnect delay of the dispatcher event stream"
    )

    # Door checks
    allowed_namespaces: tuple[str, ...] = setting(
        (), _namespaces, "namespaces AppWrappers may name; empty allows any but kube-* system ones"
    )
    max_app_wrapper_bytes: int = setting(65536, _at_least_one, "largest serialized AppWrapper accepted")
    max_env_vars: int = setting(64, non_negative, "environment variables per AppWrapper")
    max_env_value_bytes: int = setting(32768, _at_least_one, "largest environment variable value")
    max_args: int = setting(256, non_negative, "command plus args entries per AppWrapper")
    max_labels: int = setting(64, non_negative, "labels per AppWrapper or cluster")
    max_horizon_seconds: float = setting(
        30 * 86400.0, positive, "how far ahead an earliest start or deadline may lie"
    )
    default_deadline_slack_seconds: float = setting(
        86400.0, positive, "deadline when none is given: earliest start + runtime + this"
    )
    default_page_size: int = setting(100, _at_least_one, "ListAppWrappers page size when none is asked")
    max_page_size: int = setting(1000, _at_least_one, "largest ListAppWrappers page")
    bulk_max_items: int = setting(
        1_000_000, _at_least_one, "AppWrappers one SubmitAppWrappers stream may carry"
    )
    bulk_max_messages: int = setting(
        100_000, _at_least_one, "messages one SubmitAppWrappers stream may carry, empty ones included"
    )
    bulk_max_bytes: int = setting(
        1 << 30, _at_least_one, "serialized bytes one SubmitAppWrappers stream may carry"
    )
    page_token_key_file: str = setting(
        "",
        None,
        "file holding the key that signs ListAppWrappers page tokens (so tokens outlive a restart and work on "
        "every replica); empty: a random key per process",
    )


def load(env=None) -> HubSettings:
    return load_settings(HubSettings, PREFIX, env)
