"""Completion webhooks: when a job with a WebhookUrl finishes, call it like Twilio would.

Twilio does not document the payload, so this sends a small, plausible set of parameters and
signs it the documented way (X-Twilio-Signature: base64 HMAC-SHA1 keyed with the Auth Token
over the URL followed by each POST parameter name and value, sorted by name). A daemon must
not depend on more than "this job may have finished: poll it".
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

from orchestrator.domain.model import DayStatus
from orchestrator.logs import get_logger
from orchestrator.simulator.engine import SimJob

log = get_logger(__name__)


def signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's X-Twilio-Signature of a request to ``url`` with POST ``params``."""
    payload = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def payload(job: SimJob, account_sid: str) -> dict[str, str]:
    failed = any(d.status is DayStatus.FAILED for d in job.days)
    return {
        "AccountSid": account_sid,
        "JobSid": job.job_sid,
        "FriendlyName": job.friendly_name,
        "ResourceType": job.resource_type.value,
        "StartDay": job.start_day.isoformat(),
        "EndDay": job.end_day.isoformat(),
        "Status": "Failed" if failed else "Completed",
    }


@dataclass(frozen=True, slots=True)
class Delivery:
    job_sid: str
    url: str
    method: str
    status: int | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "job_sid": self.job_sid,
            "url": self.url,
            "method": self.method,
            "status": self.status,
            "error": self.error,
        }


class WebhookSender:
    """Calls webhooks in background tasks; owns its own client session."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self._account_sid = account_sid
        self._auth_token = auth_token
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.deliveries: list[Delivery] = []

    def send(self, job: SimJob) -> None:
        if job.webhook_url is None:
            return
        task = asyncio.get_running_loop().create_task(self._deliver(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, job: SimJob) -> None:
        assert job.webhook_url is not None
        method = (job.webhook_method or "POST").upper()
        params = payload(job, self._account_sid)
        if method == "GET":
            separator = "&" if "?" in job.webhook_url else "?"
            url, form = job.webhook_url + separator + urlencode(params), {}
        else:
            url, form = job.webhook_url, params
        headers = {"X-Twilio-Signature": signature(self._auth_token, url, form)}
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        status: int | None = None
        error: str | None = None
        try:
            async with self._session.request(
                method, url, data=form or None, headers=headers
            ) as resp:
                status = resp.status
                await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = type(exc).__name__
        self.deliveries.append(Delivery(job.job_sid, url, method, status, error))
        log.info(
            "simulator.webhook_called",
            job_sid=job.job_sid,
            method=method,
            status=status,
            error=error,
        )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
