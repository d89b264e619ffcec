"""Dispatcher settings, from CASPIAN_DISPATCHER_* variables."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.server import ServerSettings
from services.common.settings import load_settings, port, setting

PREFIX = "CASPIAN_DISPATCHER_"


@dataclass(frozen=True)
class DispatcherSettings(ServerSettings):
    port: int = setting(50053, port, "gRPC port; 0 picks a free one")


def load(env=None) -> DispatcherSettings:
    return load_settings(DispatcherSettings, PREFIX, env)
