from __future__ import annotations

from hypothesis import HealthCheck
from hypothesis import settings


pytest_plugins = ["tests.support.fixtures"]

# Hypothesis' deadline and too_slow health check time the machine, not the code: on
# a loaded 2-core CI machine they fail tests whose property holds. No timing asserts.
settings.register_profile(
    "suite", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("suite")
