"""Day files: deterministic gzip JSON lines shaped like Twilio records, streamed in chunks.

A file depends only on (seed, resource type, day) and the content settings, so a day exported
twice is the same file. Its exact size is learnt by one streaming pass and cached; nothing ever
holds a whole file in memory.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from orchestrator.domain.model import ResourceType
from orchestrator.simulator import seeds
from orchestrator.simulator.settings import SimulatorSettings

# wbits 16 + 15: a gzip wrapper whose header has mtime 0, so output is byte-for-byte repeatable.
_GZIP_WBITS = 31
_WORDS = (
    "hello",
    "order",
    "shipped",
    "your",
    "code",
    "is",
    "ready",
    "thanks",
    "see",
    "you",
    "at",
    "the",
    "meeting",
    "tomorrow",
    "reminder",
    "appointment",
    "confirmed",
    "delivery",
    "arriving",
    "today",
    "please",
    "reply",
    "stop",
    "to",
    "opt",
    "out",
    "verification",
    "balance",
    "payment",
    "received",
    "welcome",
    "back",
    "account",
    "update",
)
_MESSAGE_STATUSES = ("delivered", "sent", "undelivered", "failed", "received")
_CALL_STATUSES = ("completed", "busy", "no-answer", "failed", "canceled")
# Above this size a file's size pass runs in a worker thread instead of the event loop.
_THREAD_THRESHOLD_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FileSpec:
    """What one day file contains: either a fixed record count or a target gzip size."""

    seed: int
    account_sid: str
    resource_type: ResourceType
    day: dt.date
    records: int | None
    target_bytes: int | None
    compress_level: int
    chunk_bytes: int

    @property
    def is_empty(self) -> bool:
        return self.records == 0


@dataclass(frozen=True, slots=True)
class FileFacts:
    size: int
    sha256: str
    records: int


def file_spec(settings: SimulatorSettings, resource_type: ResourceType, day: dt.date) -> FileSpec:
    """The content of (resource type, day) under these settings."""
    seed = settings.seed
    empty = (resource_type, day) in settings.empty_days or (
        seeds.fraction(seed, "empty", resource_type, day) < settings.empty_day_fraction
    )
    records: int | None
    if empty:
        records = 0
    elif settings.day_target_bytes is not None:
        records = None
    else:
        low, high = settings.records_per_day
        records = max(1, seeds.rng(seed, "records", resource_type, day).randint(low, high))
    return FileSpec(
        seed=seed,
        account_sid=settings.account_sid,
        resource_type=resource_type,
        day=day,
        records=records,
        target_bytes=None if empty else settings.day_target_bytes,
        compress_level=_level(settings),
        chunk_bytes=settings.file_chunk_bytes,
    )


def _level(settings: SimulatorSettings) -> int:
    if settings.compress_level is not None:
        return settings.compress_level
    return 6 if settings.day_target_bytes is None else 0


def _sid(rand: random.Random, prefix: str) -> str:
    return prefix + rand.randbytes(16).hex()


def _phone(rand: random.Random) -> str:
    return f"+1{rand.randint(2002000000, 9899999999)}"


def _stamp(day: dt.date, rand: random.Random) -> dt.datetime:
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return start + dt.timedelta(seconds=rand.randrange(86400))


def _rfc2822(when: dt.datetime) -> str:
    return when.strftime("%a, %d %b %Y %H:%M:%S +0000")


def _record(spec: FileSpec, rand: random.Random, padded: bool) -> dict[str, object]:
    when = _stamp(spec.day, rand)
    account = spec.account_sid
    kind = spec.resource_type
    if kind is ResourceType.MESSAGES:
        words = rand.choices(_WORDS, k=rand.randint(3, 25))
        body = " ".join(words)
        if padded:
            # Incompressible-ish padding so a target size needs few records (fast to make).
            body += " " + rand.randbytes(rand.randint(600, 1200)).hex()
        segments = 1 + len(body) // 160
        return {
            "sid": _sid(rand, "SM"),
            "account_sid": account,
            "from": _phone(rand),
            "to": _phone(rand),
            "body": body,
            "status": rand.choice(_MESSAGE_STATUSES),
            "direction": rand.choice(("outbound-api", "inbound", "outbound-reply")),
            "date_created": _rfc2822(when),
            "date_sent": _rfc2822(when + dt.timedelta(seconds=1)),
            "date_updated": _rfc2822(when + dt.timedelta(seconds=3)),
            "num_segments": str(segments),
            "num_media": "0",
            "price": f"-{0.0079 * segments:.5f}",
            "price_unit": "USD",
            "error_code": None,
            "messaging_service_sid": None,
            "api_version": "2010-04-01",
        }
    if kind is ResourceType.CALLS:
        duration = rand.randint(0, 1800)
        record: dict[str, object] = {
            "sid": _sid(rand, "CA"),
            "account_sid": account,
            "from": _phone(rand),
            "to": _phone(rand),
            "status": rand.choice(_CALL_STATUSES),
            "direction": rand.choice(("outbound-api", "inbound", "outbound-dial")),
            "duration": str(duration),
            "start_time": _rfc2822(when),
            "end_time": _rfc2822(when + dt.timedelta(seconds=duration)),
            "price": f"-{0.014 * (1 + duration // 60):.5f}",
            "price_unit": "USD",
            "parent_call_sid": None,
            "api_version": "2010-04-01",
        }
    elif kind is ResourceType.CONFERENCES:
        record = {
            "sid": _sid(rand, "CF"),
            "account_sid": account,
            "friendly_name": f"room-{rand.randint(1, 9999)}",
            "status": "completed",
            "region": rand.choice(("us1", "ie1", "au1")),
            "date_created": _rfc2822(when),
            "date_updated": _rfc2822(when + dt.timedelta(seconds=rand.randint(60, 3600))),
        }
    else:
        duration = rand.randint(0, 3600)
        record = {
            "call_sid": _sid(rand, "CA"),
            "conference_sid": _sid(rand, "CF"),
            "account_sid": account,
            "label": None,
            "status": "completed",
            "start_time": _rfc2822(when),
            "end_time": _rfc2822(when + dt.timedelta(seconds=duration)),
            "duration": duration,
        }
    if padded:
        record["padding"] = rand.randbytes(rand.randint(600, 1200)).hex()
    return record


def iter_file(spec: FileSpec) -> Iterator[bytes]:
    """The gzip file as a stream of chunks; constant memory whatever the size."""
    return _generate(spec, [0])


def _generate(spec: FileSpec, made_out: list[int]) -> Iterator[bytes]:
    # ``made_out[0]`` ends holding the record count, so one pass can both size and count.
    rand = seeds.rng(spec.seed, "content", spec.resource_type, spec.day)
    compressor = zlib.compressobj(spec.compress_level, zlib.DEFLATED, _GZIP_WBITS)
    padded = spec.target_bytes is not None
    produced = 0
    made = 0
    while True:
        if spec.records is not None and made >= spec.records:
            break
        if spec.target_bytes is not None and produced >= spec.target_bytes:
            break
        lines: list[str] = []
        size = 0
        while size < spec.chunk_bytes:
            if spec.records is not None and made >= spec.records:
                break
            line = json.dumps(_record(spec, rand, padded), separators=(",", ":")) + "\n"
            lines.append(line)
            size += len(line)
            made += 1
            if spec.target_bytes is not None and produced + size // 2 >= spec.target_bytes:
                # Stop early enough that a small target is not overshot by a whole chunk.
                break
        out = compressor.compress("".join(lines).encode())
        produced += len(out)
        made_out[0] = made
        if out:
            yield out
        if not lines:
            break
    tail = compressor.flush()
    if tail:
        yield tail


def measure(spec: FileSpec) -> FileFacts:
    """Size, sha256 and record count of a file, by one streaming pass."""
    digest = hashlib.sha256()
    size = 0
    made = [0]
    for chunk in _generate(spec, made):
        digest.update(chunk)
        size += len(chunk)
    return FileFacts(size=size, sha256=digest.hexdigest(), records=made[0])


class FileCatalog:
    """Caches the facts of each file the simulator has measured."""

    def __init__(self) -> None:
        self._facts: dict[FileSpec, FileFacts] = {}
        self._locks: dict[FileSpec, asyncio.Lock] = {}
        self._warming: set[asyncio.Task[FileFacts]] = set()

    def warm(self, spec: FileSpec) -> None:
        """Start measuring a large file in the background so a later Days list need not wait."""
        if spec in self._facts or spec.target_bytes is None:
            return
        if spec.target_bytes <= _THREAD_THRESHOLD_BYTES:
            return
        task = asyncio.get_running_loop().create_task(self.facts(spec))
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)

    async def close(self) -> None:
        """Wait for background measurements (a worker thread cannot be interrupted)."""
        while self._warming:
            await asyncio.gather(*self._warming, return_exceptions=True)

    def cached(self, spec: FileSpec) -> FileFacts | None:
        return self._facts.get(spec)

    async def facts(self, spec: FileSpec) -> FileFacts:
        """The file's facts, measured once; large files are measured off the event loop."""
        known = self._facts.get(spec)
        if known is not None:
            return known
        lock = self._locks.setdefault(spec, asyncio.Lock())
        async with lock:
            known = self._facts.get(spec)
            if known is None:
                big = spec.target_bytes is not None and spec.target_bytes > _THREAD_THRESHOLD_BYTES
                known = await asyncio.to_thread(measure, spec) if big else measure(spec)
                self._facts[spec] = known
            return known
