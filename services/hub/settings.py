"""Hub settings, from CASPIAN_HUB_* variables."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.server import ServerSettings
from services.common.settings import load_settings, port, setting

PREFIX = "CASPIAN_HUB_"


@dataclass(frozen=True)
class HubSettings(ServerSettings):
    port: int = setting(50050, port, "gRPC port; 0 picks a free one")


def load(env=None) -> HubSettings:
    return load_settings(HubSettings, PREFIX, env)
