"""Running the simulator on a local port, for tests, the demo and the benchmarks."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from orchestrator.clock import ManualClock
from orchestrator.logs import get_logger
from orchestrator.simulator import keys
from orchestrator.simulator.app import build_app
from orchestrator.simulator.engine import Engine
from orchestrator.simulator.faults import FaultInjector, FaultKind
from orchestrator.simulator.inspection import stats
from orchestrator.simulator.recorder import RecordedRequest, Recorder
from orchestrator.simulator.settings import SimulatorSettings

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RunningSimulator:
    """A simulator listening on ``base_url`` (no trailing slash), with handles for tests."""

    base_url: str
    settings: SimulatorSettings
    app: web.Application

    @property
    def engine(self) -> Engine:
        return self.app[keys.ENGINE]

    @property
    def faults(self) -> FaultInjector:
        return self.app[keys.FAULTS]

    @property
    def recorder(self) -> Recorder:
        return self.app[keys.RECORDER]

    def requests(
        self, route: str | None = None, method: str | None = None
    ) -> list[RecordedRequest]:
        """Recorded requests, optionally only those of one route template and/or method."""
        return [
            r
            for r in self.recorder.requests
            if (route is None or r.route == route) and (method is None or r.method == method)
        ]

    def stats(self) -> dict[str, Any]:
        """The same JSON as GET /_simulator/stats."""
        return stats(self.app)

    def inject(self, kind: FaultKind | str, count: int = 1) -> None:
        """Make the next ``count`` eligible requests meet the fault ``kind``."""
        self.faults.inject(FaultKind(kind), count)

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        """Move the simulator's ManualClock forward."""
        clock = self.settings.clock
        if not isinstance(clock, ManualClock):
            raise TypeError("advance() needs a simulator built with a ManualClock")
        return clock.advance(delta)


@asynccontextmanager
async def running_simulator(
    settings: SimulatorSettings, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSimulator]:
    """Serve a fresh simulator on ``host:port`` (port 0: an ephemeral one) for the block."""
    app = build_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        base_url = f"http://{host}:{bound[1]}"
        log.info("simulator.started", base_url=base_url, seed=settings.seed)
        yield RunningSimulator(base_url=base_url, settings=settings, app=app)
    finally:
        await runner.cleanup()
        log.info("simulator.stopped")
