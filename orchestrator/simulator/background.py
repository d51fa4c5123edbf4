"""What follows the model's progress: sizing new large files and calling webhooks.

It runs after every request and, unless the clock is a ManualClock, on a short real-time tick,
so a demo on a ScaledClock calls webhooks even when nobody polls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from orchestrator.clock import ManualClock
from orchestrator.simulator import keys
from orchestrator.simulator.files import file_spec

TICK_SECONDS = 0.25


def settle(app: web.Application) -> None:
    """Hand what the model produced since last time to the background workers."""
    engine = app[keys.ENGINE]
    settings = app[keys.SETTINGS]
    for done in engine.take_new_files():
        app[keys.CATALOG].warm(file_spec(settings, done.resource_type, done.day))
    for job in engine.take_finished_jobs():
        app[keys.WEBHOOKS].send(job)


async def _tick(app: web.Application) -> None:
    while True:
        await asyncio.sleep(TICK_SECONDS)
        app[keys.ENGINE].now()
        settle(app)


async def background(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the tick (not for a ManualClock), then closing webhooks and file sizing."""
    ticker = None
    if not isinstance(app[keys.SETTINGS].clock, ManualClock):
        ticker = asyncio.get_running_loop().create_task(_tick(app))
    yield
    if ticker is not None:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    await app[keys.WEBHOOKS].close()
    await app[keys.CATALOG].close()
