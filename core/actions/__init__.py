"""Actions, action plans (scheduler) and action triggers (CGRateS engine/action*.go)."""

from .executor import SUPPORTED_ACTIONS, action_filter, action_units
from .service import ActionService, CdrSink, next_run

__all__ = [
    "SUPPORTED_ACTIONS",
    "ActionService",
    "CdrSink",
    "action_filter",
    "action_units",
    "next_run",
]
