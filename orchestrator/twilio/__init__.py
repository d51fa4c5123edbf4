"""The Twilio Bulk Exports API client (aiohttp): HTTP in, domain values out.

Build one ``BulkExportsClient`` per process over the process's one ``aiohttp.ClientSession``
(``new_http_session``)::

    session = new_http_session(settings)
    client = BulkExportsClient(credentials, session=session, settings=settings, clock=clock)
    job = await client.create_job(ResourceType.MESSAGES, start, end, name)
"""

from orchestrator.twilio.client import (
    ROUTE_DAY,
    ROUTE_DAYS,
    ROUTE_JOB,
    ROUTE_JOBS,
    BulkExportsClient,
    DeleteOutcome,
    new_http_session,
)
from orchestrator.twilio.credentials import Credentials
from orchestrator.twilio.download import Download
from orchestrator.twilio.retry import RequestNotSent, RetryDecision
from orchestrator.twilio.settings import DEFAULT_BASE_URL, ClientSettings

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
