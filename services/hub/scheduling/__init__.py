"""One scheduling cycle, one module per step (see cycle.py for the order); the loop around it is loop.py."""

from services.hub.scheduling.cycle import Scheduler
from services.hub.scheduling.report import CycleReport, Preview, SchedulerConfig

__all__ = ["CycleReport", "Preview", "Scheduler", "SchedulerConfig"]
