"""A local twin of Twilio's Bulk Exports API v1, for tests, the demo and the benchmarks.

async with running_simulator(SimulatorSettings(clock=ManualClock(start))) as sim:
    sim.base_url  # http://127.0.0.1:PORT
"""

from __future__ import annotations

from orchestrator.simulator.app import build_app
from orchestrator.simulator.faults import FaultKind
from orchestrator.simulator.server import RunningSimulator, running_simulator
from orchestrator.simulator.settings import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_API_KEY_SECRET,
    DEFAULT_API_KEY_SID,
    DEFAULT_AUTH_TOKEN,
    FaultSettings,
    SimulatorSettings,
)

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_API_KEY_SECRET",
    "DEFAULT_API_KEY_SID",
    "DEFAULT_AUTH_TOKEN",
    "FaultKind",
    "FaultSettings",
    "RunningSimulator",
    "SimulatorSettings",
    "build_app",
    "running_simulator",
]
