"""Carbon settings, from CASPIAN_CARBON_* variables.

The shared clock is not here: it comes from CASPIAN_CLOCK_* via `services.common.clock.load_clock_settings()`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from services.carbon.forecast_error import load_error_model
from services.carbon.replay import Trace
from services.carbon.zones import DEFAULT_ZONES, parse_zone_specs, resolve_data_path
from services.common.server import ServerSettings
from services.common.settings import (
    SettingsError,
    load_settings,
    non_negative,
    one_of,
    port,
    positive,
    setting,
)

PREFIX = "CASPIAN_CARBON_"
ERROR_MODELS = ("perfect", "dacf-empirical", "dacf-empirical:CISO", "dacf-empirical:DE")
DEFAULT_ERROR_PROFILE = "data/carbon/forecasts/dacf_error_profile.json"


def _zones(value: str) -> None:
    parse_zone_specs(value)


def _positive_int(value: int) -> None:
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")


@dataclass(frozen=True)
class CarbonSettings(ServerSettings):
    port: int = setting(50051, port, "gRPC port; 0 picks a free one")
    zones: str = setting(
        DEFAULT_ZONES,
        _zones,
        "zone map ZONE=PROVIDER[:ARG],...; providers replay:CSV, synthetic[:LO-HI], "
        "electricitymaps[:EM_ZONE]",
    )
    emission_factor: str = setting(
        "direct", one_of("direct", "lifecycle"), "which intensity to serve: direct or lifecycle (LCA)"
    )
    stale_after_seconds: float = setting(
        7200.0, positive, "data older than this (clock seconds) is flagged stale"
    )
    refresh_seconds: float = setting(
        30.0, positive, "real seconds between background refreshes of every zone's latest value"
    )
    fetch_timeout_seconds: float = setting(30.0, positive, "bound on one provider call, retries included")
    max_forecast_slots: int = setting(2016, _positive_int, "most slots one GetForecast may ask for")
    max_horizon_hours: float = setting(
        8784.0, positive, "longest span (slots x slot) of one GetForecast, and of one GetHistory"
    )
    watch_interval_seconds: float = setting(
        5.0, positive, "WatchIntensities update interval when the request sets none (real seconds)"
    )
    watch_min_interval_seconds: float = setting(0.05, positive, "shortest interval a subscriber may ask for")
    watch_queue_size: int = setting(
        32, _positive_int, "updates buffered per subscriber; beyond it the oldest are dropped"
    )
    watch_max_subscribers: int = setting(1000, _positive_int, "concurrent WatchIntensities streams allowed")
    error_model: str = setting(
        "perfect", one_of(*ERROR_MODELS), "replay forecast error: perfect, or dacf-empirical[:CISO|:DE]"
    )
    error_profile: str = setting(DEFAULT_ERROR_PROFILE, None, "forecast-error profile (JSON)")
    seed: int = setting(0, None, "seed of the synthetic shapes and of the forecast-error draws")
    em_base_url: str = setting("https://api.electricitymap.org/v3", None, "Electricity Maps API base URL")
    em_api_key_env: str = setting(
        "ELECTRICITYMAPS_API_KEY", None, "name of the environment variable holding the API key"
    )
    em_api_key_file: str = setting("", None, "file holding the API key; wins over the variable")
    em_timeout_seconds: float = setting(10.0, positive, "timeout of one HTTP request to the API")
    em_retries: int = setting(3, non_negative, "retries after a timeout, 429 or 5xx")
    em_backoff_seconds: float = setting(0.5, positive, "first retry delay; doubles each retry, with jitter")
    em_backoff_max_seconds: float = setting(8.0, positive, "largest retry delay")
    em_max_retry_after_seconds: float = setting(
        30.0, non_negative, "a 429 asking to wait longer than this is not retried in the call"
    )
    em_cache_seconds: float = setting(
        300.0, non_negative, "real seconds an API answer is reused before asking again"
    )
    em_past_range: bool = setting(
        False, None, "use /past-range (commercial plans) for history older than 24 h"
    )


def read_api_key(settings: CarbonSettings, env: Mapping[str, str] | None = None) -> str:
    """The Electricity Maps key from the secret file or the variable; empty if neither is set."""
    env = os.environ if env is None else env
    if settings.em_api_key_file:
        try:
            with open(resolve_data_path(settings.em_api_key_file), encoding="utf-8") as fh:
                return fh.read().strip()
        except OSError as exc:
            raise SettingsError(
                f"{PREFIX}EM_API_KEY_FILE", f"cannot read the key file: {exc.strerror}"
            ) from None
    return env.get(settings.em_api_key_env, "").strip()


def _check(settings: CarbonSettings, env: Mapping[str, str] | None) -> None:
    specs = parse_zone_specs(settings.zones)
    for spec in specs:
        if spec.provider != "replay":
            continue
        if not resolve_data_path(spec.argument).is_file():
            raise SettingsError(f"{PREFIX}ZONES", f"zone {spec.zone}: no such trace file {spec.argument!r}")
        try:
            Trace.load(spec.argument, settings.emission_factor)
        except (ValueError, OSError) as exc:
            raise SettingsError(f"{PREFIX}ZONES", f"zone {spec.zone}: {exc}") from None
    if any(spec.provider == "electricitymaps" for spec in specs) and not read_api_key(settings, env):
        raise SettingsError(
            f"{PREFIX}EM_API_KEY_FILE",
            f"an electricitymaps zone needs an API key in the file or in ${settings.em_api_key_env}",
        )
    try:
        load_error_model(settings.error_model, settings.error_profile, settings.seed)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SettingsError(
            f"{PREFIX}ERROR_PROFILE", f"cannot load {settings.error_profile!r}: {exc}"
        ) from None
    if settings.watch_min_interval_seconds > settings.watch_interval_seconds:
        raise SettingsError(
            f"{PREFIX}WATCH_MIN_INTERVAL_SECONDS", "must not exceed CASPIAN_CARBON_WATCH_INTERVAL_SECONDS"
        )


def load(env: Mapping[str, str] | None = None) -> CarbonSettings:
    settings = load_settings(CarbonSettings, PREFIX, env)
    _check(settings, env)
    return settings
