"""Providers of carbon intensity, one per zone, chosen by CASPIAN_CARBON_ZONES."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from services.carbon.forecast_error import load_error_model
from services.carbon.providers.base import Provider, ProviderError
from services.carbon.providers.electricitymaps import (
    ElectricityMapsClient,
    ElectricityMapsProvider,
    Secret,
)
from services.carbon.providers.replay import ReplayProvider
from services.carbon.providers.synthetic import SyntheticProvider
from services.carbon.replay import Trace
from services.carbon.settings import CarbonSettings, read_api_key
from services.carbon.zones import parse_zone_specs, resolve_data_path, synthetic_range
from services.common.clock import Clock, WallClock

__all__ = ["Provider", "ProviderError", "build_providers"]


def build_providers(
    settings: CarbonSettings,
    clock: Clock,
    *,
    em_clock: Clock | None = None,
    em_transport: httpx.AsyncBaseTransport | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Provider]:
    """One provider per configured zone, in configuration order.

    Replay and synthetic zones follow `clock` (wall or simulated); the live API follows `em_clock`, wall time
    unless a test says otherwise.
    """
    specs = parse_zone_specs(settings.zones)
    error_model = load_error_model(settings.error_model, settings.error_profile, settings.seed)
    traces: dict[str, Trace] = {}
    client: ElectricityMapsClient | None = None
    providers: dict[str, Provider] = {}
    for spec in specs:
        if spec.provider == "replay":
            key = str(resolve_data_path(spec.argument))
            if key not in traces:
                traces[key] = Trace.load(key, settings.emission_factor)
            providers[spec.zone] = ReplayProvider(spec.zone, traces[key], clock, error_model)
        elif spec.provider == "synthetic":
            low, high = synthetic_range(spec)
            providers[spec.zone] = SyntheticProvider(spec.zone, low, high, settings.seed, clock)
        else:
            if client is None:
                client = ElectricityMapsClient(
                    settings.em_base_url,
                    Secret(read_api_key(settings, env)),
                    emission_factor=settings.emission_factor,
                    timeout=settings.em_timeout_seconds,
                    retries=settings.em_retries,
                    backoff=settings.em_backoff_seconds,
                    backoff_max=settings.em_backoff_max_seconds,
                    max_retry_after=settings.em_max_retry_after_seconds,
                    transport=em_transport,
                )
            providers[spec.zone] = ElectricityMapsProvider(
                spec.zone,
                client,
                em_clock or WallClock(),
                em_zone=spec.argument,
                cache_seconds=settings.em_cache_seconds,
                past_range=settings.em_past_range,
                error_prior=load_error_model("dacf-empirical", settings.error_profile, settings.seed),
            )
    return providers
