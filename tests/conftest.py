"""Settings for the whole suite.

Hypothesis: no per-example deadline and no "too slow" health check. The suite runs on shared
2-core machines (CI, laptops running the engine) where wall-clock time per example says nothing
about the code; a decoder that hangs is caught by the tests' own bounds (socket timeouts,
``asyncio.wait_for``), not by these timers.
"""

import pytest
from hypothesis import HealthCheck, settings

from core import _native

settings.register_profile("chargeflow", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("chargeflow")

# Compiled modules shadow their sources: never test old code by mistake.
if _stale := _native.stale_in_use():
    pytest.exit(_native.stale_message(_stale), returncode=4)
