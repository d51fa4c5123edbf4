"""The daemon's read-only HTTP endpoint: ``/metrics``, ``/livez``, ``/readyz``, ``/``.

``app`` (the aiohttp application and its handlers), ``page`` (the status page, pure HTML from
values), ``serve`` (``start_http`` / ``stop_http`` in the daemon's loop).
"""

from orchestrator.http.app import SOURCES, Sources, make_app
from orchestrator.http.serve import bound_port, start_http, stop_http

__all__ = ["SOURCES", "Sources", "bound_port", "make_app", "start_http", "stop_http"]
