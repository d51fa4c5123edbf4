"""The Twilio Bulk Exports API client (aiohttp): HTTP in, domain values out.

Build one ``BulkExportsClient`` per process over the process's one ``aiohttp.ClientSession``
(``new_http_session``)::

    session = new_http_session(settings)
    client = BulkExportsClient(credentials, session=session, settings=settings, clock=clock)
    job = await client.create_job(ResourceType.MESSAGES, start, end, name)

``Credentials``, ``ClientSettings`` and ``DEFAULT_BASE_URL`` are plain standard-library values;
the names that need aiohttp are imported on first use, so the configuration (and an operator
command that never calls Twilio) can use the former without loading the HTTP stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.lazy import lazy_attributes
from orchestrator.twilio.credentials import Credentials
from orchestrator.twilio.settings import DEFAULT_BASE_URL, ClientSettings

if TYPE_CHECKING:
    from orchestrator.twilio.client import (
        ROUTE_DAY,
        ROUTE_DAYS,
        ROUTE_JOB,
        ROUTE_JOBS,
        BulkExportsClient,
        DeleteOutcome,
        new_http_session,
    )
    from orchestrator.twilio.download import Download
    from orchestrator.twilio.retry import RequestNotSent, RetryDecision

_LAZY = {
    "ROUTE_DAY": "orchestrator.twilio.client",
    "ROUTE_DAYS": "orchestrator.twilio.client",
    "ROUTE_JOB": "orchestrator.twilio.client",
    "ROUTE_JOBS": "orchestrator.twilio.client",
    "BulkExportsClient": "orchestrator.twilio.client",
    "DeleteOutcome": "orchestrator.twilio.client",
    "new_http_session": "orchestrator.twilio.client",
    "Download": "orchestrator.twilio.download",
    "RequestNotSent": "orchestrator.twilio.retry",
    "RetryDecision": "orchestrator.twilio.retry",
}


__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = [
    "DEFAULT_BASE_URL",
    "ROUTE_DAY",
    "ROUTE_DAYS",
    "ROUTE_JOB",
    "ROUTE_JOBS",
    "BulkExportsClient",
    "ClientSettings",
    "Credentials",
    "DeleteOutcome",
    "Download",
    "RequestNotSent",
    "RetryDecision",
    "new_http_session",
]
