"""The simulator as an aiohttp application: Bulk Exports v1, day files and inspection routes."""

from __future__ import annotations

import hashlib

from aiohttp import web

from orchestrator.simulator import downloads, inspection, keys, middleware, routes
from orchestrator.simulator.background import background
from orchestrator.simulator.engine import Engine
from orchestrator.simulator.faults import FaultInjector
from orchestrator.simulator.files import FileCatalog
from orchestrator.simulator.recorder import Recorder
from orchestrator.simulator.settings import SimulatorSettings
from orchestrator.simulator.webhooks import WebhookSender


def build_app(settings: SimulatorSettings) -> web.Application:
    """A fresh simulated account: no jobs, no files, fault counters as the settings say."""
    app = web.Application(
        middlewares=[
            middleware.record_requests,
            middleware.settle_after_request,
            middleware.twilio_not_found,
            middleware.require_auth,
            middleware.inject_faults,
        ]
    )
    app[keys.SETTINGS] = settings
    app[keys.ENGINE] = Engine(settings)
    app[keys.FAULTS] = FaultInjector(settings.faults, settings.seed)
    app[keys.RECORDER] = Recorder(limit=settings.request_log_limit)
    app[keys.CATALOG] = FileCatalog()
    app[keys.URL_SECRET] = hashlib.sha256(
        f"{settings.seed}:{settings.auth_token}:urls".encode()
    ).digest()
    app[keys.CONFIGURATION] = {}
    app[keys.WEBHOOKS] = WebhookSender(settings.account_sid, settings.auth_token)
    # Jobs/{JobSid} first: /v1/Exports/Jobs/X must not be read as a resource type "Jobs".
    app.add_routes(routes.routes)
    app.add_routes(inspection.routes)
    app.router.add_get(downloads.FILE_ROUTE, downloads.serve_file)
    app.on_response_prepare.append(middleware.add_request_id)
    app.cleanup_ctx.append(background)
    return app
