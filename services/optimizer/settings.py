"""Optimizer settings, from CASPIAN_OPTIMIZER_* variables."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.server import ServerSettings
from services.common.settings import load_settings, port, setting

PREFIX = "CASPIAN_OPTIMIZER_"


@dataclass(frozen=True)
class OptimizerSettings(ServerSettings):
    port: int = setting(50052, port, "gRPC port; 0 picks a free one")


def load(env=None) -> OptimizerSettings:
    return load_settings(OptimizerSettings, PREFIX, env)
