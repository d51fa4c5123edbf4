"""The /_simulator routes: what happened (for client contract tests) and runtime controls.

They sit outside /v1 and need no auth; the daemon never calls them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web

from orchestrator.clock import ManualClock
from orchestrator.simulator import keys
from orchestrator.simulator.faults import FaultKind

routes = web.RouteTableDef()


def stats(app: web.Application) -> dict[str, Any]:
    """Request counts by route and status, every job ever created, and the request log."""
    engine = app[keys.ENGINE]
    recorder = app[keys.RECORDER]
    jobs = [
        {
            "job_sid": job.job_sid,
            "friendly_name": job.friendly_name,
            "resource_type": job.resource_type.value,
            "start_day": job.start_day.isoformat(),
            "end_day": job.end_day.isoformat(),
            "deleted": job.deleted_at is not None,
            "stuck": job.stuck,
        }
        for job in engine.ledger.jobs
    ]
    return {
        "now": engine.settings.clock.now().isoformat(),
        "requests": recorder.counts_json(),
        "jobs_created": len(jobs),
        "jobs": jobs,
        "faults_fired": {kind.value: n for kind, n in app[keys.FAULTS].fired.items()},
        "request_log": [entry.to_json() for entry in recorder.requests],
        "webhooks": [d.to_json() for d in app[keys.WEBHOOKS].deliveries],
    }


@routes.get("/_simulator/stats")
async def get_stats(request: web.Request) -> web.Response:
    return web.json_response(stats(request.app))


@routes.post("/_simulator/reset_log")
async def reset_log(request: web.Request) -> web.Response:
    request.app[keys.RECORDER].clear()
    return web.Response(status=204)


@routes.post("/_simulator/advance")
async def advance(request: web.Request) -> web.Response:
    """Move a ManualClock forward: JSON {"seconds": N}."""
    clock = request.app[keys.SETTINGS].clock
    if not isinstance(clock, ManualClock):
        return web.json_response({"error": "the clock is not a ManualClock"}, status=409)
    body = await request.json()
    seconds = float(body.get("seconds", 0))
    now = clock.advance(dt.timedelta(seconds=seconds))
    return web.json_response({"now": now.isoformat()})


@routes.post("/_simulator/faults")
async def inject(request: web.Request) -> web.Response:
    """Queue faults for the next requests: JSON {"rate_limit": 2, "drop": 1, ...}."""
    body = await request.json()
    faults = request.app[keys.FAULTS]
    try:
        wanted = {FaultKind(name): int(count) for name, count in body.items()}
    except (ValueError, TypeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    if any(count < 0 for count in wanted.values()):
        return web.json_response({"error": "counts must not be negative"}, status=400)
    for kind, count in wanted.items():
        faults.inject(kind, count)
    return web.json_response({kind.value: n for kind, n in faults.pending.items()})
