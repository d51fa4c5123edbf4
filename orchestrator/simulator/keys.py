"""Typed keys of the simulator's aiohttp application state."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from orchestrator.domain.model import ResourceType
from orchestrator.simulator.engine import Engine
from orchestrator.simulator.faults import FaultInjector
from orchestrator.simulator.files import FileCatalog
from orchestrator.simulator.recorder import Recorder
from orchestrator.simulator.settings import SimulatorSettings
from orchestrator.simulator.webhooks import WebhookSender

SETTINGS = web.AppKey("settings", SimulatorSettings)
ENGINE = web.AppKey("engine", Engine)
FAULTS = web.AppKey("faults", FaultInjector)
RECORDER = web.AppKey("recorder", Recorder)
CATALOG = web.AppKey("catalog", FileCatalog)
# Keys the pre-signed download URLs; derived from the seed and auth token.
WEBHOOKS = web.AppKey("webhooks", WebhookSender)
URL_SECRET = web.AppKey("url_secret", bytes)
# Per resource type: the (mostly cosmetic) Configuration resource.
CONFIGURATION = web.AppKey[dict[ResourceType, dict[str, Any]]]("configuration")

# Per request: which injected fault (if any) shaped the answer, and whether it was dropped.
FAULT = web.RequestKey("fault", str)
DROPPED = web.RequestKey("dropped", bool)
