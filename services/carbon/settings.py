"""Carbon settings, from CASPIAN_CARBON_* variables."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.server import ServerSettings
from services.common.settings import load_settings, port, setting

PREFIX = "CASPIAN_CARBON_"


@dataclass(frozen=True)
class CarbonSettings(ServerSettings):
    port: int = setting(50051, port, "gRPC port; 0 picks a free one")


def load(env=None) -> CarbonSettings:
    return load_settings(CarbonSettings, PREFIX, env)
