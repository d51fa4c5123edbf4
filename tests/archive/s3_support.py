"""A real S3 protocol server on loopback for the archive tests, and a fault proxy in front of it.

- ``moto_endpoint()``: one moto server (``ThreadedMotoServer``, S3 API) on a free loopback port
  for the test session; moto accepts any credentials and keeps objects in memory.
- ``S3Bucket``: a fresh bucket on it, with a boto3 client to look at (and tamper with) what the
  archive wrote, and the ``[archive]`` TOML that points the daemon at it (secret files written).
- ``FaultProxy``: an aiohttp reverse proxy on port 0 that forwards to moto and, by rule,
  answers 500, answers late, drops the connection half-way through a request body, or holds
  a request until released (for a SIGKILL mid-upload).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import io
import secrets
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import boto3
from aiohttp import web
from moto.server import ThreadedMotoServer

from orchestrator.archive.layout import parse_archive_url
from orchestrator.archive.object import ObjectStoreConfig, ObjectTarget

ACCESS_KEY_ID = "AKIAARCHIVETEST00001"
SECRET_ACCESS_KEY = "archive-test-secret-4f1b9a77c2"
REGION = "us-east-1"

_lock = threading.Lock()
_server: ThreadedMotoServer | None = None
_endpoint: str | None = None


def moto_endpoint() -> str:
    """The session's moto server (started on first use; a daemon thread, gone at exit)."""
    global _server, _endpoint
    with _lock:
        if _endpoint is None:
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            _server, _endpoint = server, f"http://{host}:{port}"
        return _endpoint


@dataclasses.dataclass
class S3Bucket:
    """A bucket of its own on the moto server; ``endpoint`` may be a proxy in front of it."""

    name: str
    prefix: str
    endpoint: str

    @classmethod
    def create(cls, prefix: str = "twilio/archive") -> S3Bucket:
        bucket = cls(f"archive-{secrets.token_hex(6)}", prefix, moto_endpoint())
        bucket.client().create_bucket(Bucket=bucket.name)
        return bucket

    @property
    def url(self) -> str:
        return f"s3://{self.name}/{self.prefix}"

    def via(self, endpoint: str) -> S3Bucket:
        """The same bucket reached through another endpoint (a proxy)."""
        return dataclasses.replace(self, endpoint=endpoint)

    def client(self) -> Any:
        """boto3 against moto directly (never through a proxy)."""
        return boto3.client(
            "s3",
            endpoint_url=moto_endpoint(),
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            region_name=REGION,
        )

    def full_key(self, key: str) -> str:
        return f"{self.prefix}/{key}"

    def object_keys(self) -> list[str]:
        """Every object key in the bucket (prefix included)."""
        found = self.client().list_objects_v2(Bucket=self.name).get("Contents", [])
        return sorted(item["Key"] for item in found)

    def body(self, key: str) -> bytes:
        data: bytes = (
            self.client().get_object(Bucket=self.name, Key=self.full_key(key))["Body"].read()
        )
        return data

    def sha256(self, key: str) -> str:
        return hashlib.sha256(self.body(key)).hexdigest()

    def head(self, key: str) -> dict[str, Any] | None:
        client = self.client()
        try:
            answer: dict[str, Any] = client.head_object(Bucket=self.name, Key=self.full_key(key))
        except client.exceptions.ClientError:
            return None
        return answer

    def incomplete_uploads(self) -> list[dict[str, Any]]:
        uploads: list[dict[str, Any]] = (
            self.client().list_multipart_uploads(Bucket=self.name).get("Uploads", [])
        )
        return uploads

    def target(self, **overrides: Any) -> ObjectTarget:
        """An ObjectTarget on this bucket with the test credentials and quick retries."""
        values: dict[str, Any] = {
            "url": parse_archive_url(self.url),
            "endpoint": self.endpoint,
            "region": REGION,
            "allow_http": True,
            "options": {"access_key_id": ACCESS_KEY_ID, "secret_access_key": SECRET_ACCESS_KEY},
            "max_retries": 3,
        }
        values.update(overrides)
        return ObjectTarget(ObjectStoreConfig(**values))

    def archive_toml(self, directory: Path) -> str:
        """``[archive]`` keys for this bucket; the credentials go to files in ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "s3-access-key-id").write_text(ACCESS_KEY_ID + "\n")
        (directory / "s3-secret-access-key").write_text(SECRET_ACCESS_KEY + "\n")
        return (
            f'url = "{self.url}"\n'
            f'endpoint = "{self.endpoint}"\n'
            f'region = "{REGION}"\n'
            "allow_http = true\n"
            f'access_key_id_file = "{directory / "s3-access-key-id"}"\n'
            f'secret_access_key_file = "{directory / "s3-secret-access-key"}"\n'
        )


# ------------------------------------------------------------------------------ fault proxy

Match = Callable[[web.Request], bool]


def is_part_upload(request: web.Request) -> bool:
    return request.method == "PUT" and "partNumber" in request.query


def is_complete(request: web.Request) -> bool:
    return request.method == "POST" and "uploadId" in request.query


def is_single_put(request: web.Request) -> bool:
    return request.method == "PUT" and "partNumber" not in request.query


def is_head(request: web.Request) -> bool:
    return request.method == "HEAD"


@dataclasses.dataclass
class Rule:
    """Do ``kind`` to the next ``times`` requests that ``match``."""

    kind: str  # "error" | "slow" | "drop" | "hold"
    match: Match
    times: int
    delay: float = 0.0
    hits: int = 0


_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host", "trailer"}
_INTERNAL_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
    b"<Message>injected by the fault proxy</Message></Error>"
)


class FaultProxy:
    """A reverse proxy to moto that injects faults by rule (see the module docstring)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.rules: list[Rule] = []
        self.log: list[tuple[str, str, str]] = []  # (method, path_qs, what happened)
        self.held = asyncio.Event()
        self.release = asyncio.Event()
        self.base_url = ""
        self._session: aiohttp.ClientSession | None = None

    def add(self, kind: str, match: Match, times: int = 1, *, delay: float = 0.0) -> Rule:
        rule = Rule(kind, match, times, delay)
        self.rules.append(rule)
        return rule

    def injected(self, kind: str) -> int:
        return sum(rule.hits for rule in self.rules if rule.kind == kind)

    def _rule_for(self, request: web.Request) -> Rule | None:
        for rule in self.rules:
            if rule.hits < rule.times and rule.match(request):
                rule.hits += 1
                return rule
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        rule = self._rule_for(request)
        what = rule.kind if rule else "forwarded"
        self.log.append((request.method, request.path_qs, what))
        if rule is not None and rule.kind == "error":
            await request.read()
            return web.Response(status=500, body=_INTERNAL_ERROR, content_type="application/xml")
        if rule is not None and rule.kind == "drop":
            # Half the body (at most 64 KiB), then the connection is gone.
            wanted = min(64 * 1024, max(1, (request.content_length or 2) // 2))
            with contextlib.suppress(Exception):
                await request.content.readexactly(wanted)
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError  # aiohttp drops the handler's answer
        if rule is not None and rule.kind == "hold":
            await request.read()
            self.held.set()
            await self.release.wait()
        body = await request.read()
        if rule is not None and rule.kind == "slow":
            await asyncio.sleep(rule.delay)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        assert self._session is not None
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=io.BytesIO(body) if body else None,
            allow_redirects=False,
            skip_auto_headers=("Content-Type", "Accept-Encoding", "User-Agent"),
        ) as upstream:
            payload = await upstream.read()
            out_headers = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in _HOP and k.lower() not in ("content-length", "content-encoding")
            }
            if request.method == "HEAD":
                response = web.StreamResponse(status=upstream.status, headers=out_headers)
                length = upstream.headers.get("Content-Length")
                if length is not None:
                    response.content_length = int(length)
                await response.prepare(request)
                return response
            return web.Response(status=upstream.status, body=payload, headers=out_headers)


@contextlib.asynccontextmanager
async def running_proxy(upstream: str | None = None) -> AsyncIterator[FaultProxy]:
    """A FaultProxy on a loopback port 0, in front of moto (or ``upstream``)."""
    proxy = FaultProxy(upstream or moto_endpoint())
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", proxy._handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    proxy.base_url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        proxy._session = session
        try:
            yield proxy
        finally:
            proxy.release.set()
            await runner.cleanup()
