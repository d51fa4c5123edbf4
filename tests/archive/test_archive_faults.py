"""The archive pass against a scriptable file host: every failure leaves nothing half-done."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import errno
from pathlib import Path
from typing import Any

import structlog

from orchestrator.archive.writer import PartFile
from orchestrator.clock import ManualClock
from orchestrator.domain.archiving import ArchiveAttempts, RetryPolicy, after_failure
from orchestrator.domain.model import DayKey, DayStatus, ObservedBy, ResourceType
from orchestrator.store.repository import Store
from orchestrator.workflows.archive import Outcome, archive_due_days
from tests.archive.conftest import START, MakeEnv, gzip_lines
from tests.archive.fake_twilio import FakeTwilio, FileReply, running_fake

M = ResourceType.MESSAGES
DAY = dt.date(2026, 2, 1)
KEY = DayKey(M, DAY)
GOOD = gzip_lines({"sid": "SM1"}, {"sid": "SM2"}, {"sid": "SM3"})


def part_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".part-" in p.name]


def files_named(root: Path, part: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and part in str(p)]


def target(root: Path, day: dt.date = DAY, rtype: str = "Messages") -> Path:
    return root / rtype / f"{day:%Y}" / f"{day:%m}" / f"{day.isoformat()}.json.gz"


def entry(day: dt.date, size: int, rtype: str = "Messages") -> dict[str, object]:
    return {"day": day.isoformat(), "size": size, "resource_type": rtype, "create_date": None}


async def test_a_non_json_line_is_retried_then_backed_off_never_recorded(
    make_env: MakeEnv,
) -> None:
    """A file with a non-JSON line fails every attempt of the pass, then waits with backoff."""
    async with running_fake() as fake:
        fake.add_file("Messages", DAY, FileReply(body=gzip_lines({"a": 1}, raw=b"oops\n")))
        env = await make_env(fake.base_url, ManualClock(START))
        await env.succeed(M, [DAY])
        with structlog.testing.capture_logs() as logs:
            report = await archive_due_days(env.ctx, policy=RetryPolicy(attempts_per_pass=3))
    assert report.outcomes == {KEY: Outcome.FAILED}
    assert fake.file_requests == 3
    failed = [e for e in logs if e["event"] == "archive.failed"]
    assert len(failed) == 1 and failed[0]["reason"] == "corrupt"
    assert "line 2 is not JSON" in failed[0]["error"]
    assert not target(env.archive_dir).exists() and part_files(env.archive_dir) == []
    day = await env.store.get_day(KEY)
    assert day is not None and day.archive is None
    attempts = await env.store.archive_attempts(KEY)
    assert attempts is not None and attempts.attempts == 1
    assert attempts.next_attempt_at is not None and attempts.next_attempt_at > START
    # Backing off: not due until its next attempt time.
    assert await env.store.days_due_for_archiving(10, now=START) == []
    later = attempts.next_attempt_at
    assert [d.key for d in await env.store.days_due_for_archiving(10, now=later)] == [KEY]


class SecondWriter:
    """The real store, where another daemon counts a failure of the day right after our read."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.raced = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def archive_attempts(self, key: DayKey) -> ArchiveAttempts | None:
        read = await self._store.archive_attempts(key)
        if read is not None and not self.raced:
            self.raced = True
            theirs = after_failure(read, START, RetryPolicy(), 0.0, "transport: other daemon")
            assert await self._store.record_archive_failure(key, read, theirs)
        return read


async def test_a_failure_counted_meanwhile_by_another_writer_is_not_lost(
    make_env: MakeEnv,
) -> None:
    """Another writer counts between our read and our write: we count again from its number."""
    async with running_fake() as fake:
        fake.add_file("Messages", DAY, FileReply(body=gzip_lines({"a": 1}, raw=b"oops\n")))
        env = await make_env(fake.base_url, ManualClock(START))
        await env.succeed(M, [DAY])
        racing = SecondWriter(env.store)
        ctx = dataclasses.replace(env.ctx, store=racing)
        with structlog.testing.capture_logs() as logs:
            report = await archive_due_days(ctx, policy=RetryPolicy(attempts_per_pass=1))
    assert racing.raced
    assert report.outcomes == {KEY: Outcome.FAILED}
    (failed,) = [e for e in logs if e["event"] == "archive.failed"]
    assert failed["failures"] == 2
    attempts = await env.store.archive_attempts(KEY)
    assert attempts is not None and attempts.attempts == 2
    assert attempts.error is not None and attempts.error.startswith("corrupt:")


async def test_size_mismatch_with_the_days_list_is_corrupt(make_env: MakeEnv) -> None:
    """A file whose size differs from the Day resource's ``size`` is never archived."""
    async with running_fake() as fake:
        fake.add_file("Messages", DAY, FileReply(body=GOOD))
        fake.day_entries["Messages"] = [entry(DAY, len(GOOD) + 1)]
        env = await make_env(fake.base_url, ManualClock(START))
        await env.succeed(M, [DAY])
        with structlog.testing.capture_logs() as logs:
            report = await archive_due_days(env.ctx, policy=RetryPolicy(attempts_per_pass=1))
    assert report.failed == [KEY]
    (failed,) = [e for e in logs if e["event"] == "archive.failed"]
    assert "Days list says" in failed["error"]
    assert not target(env.archive_dir).exists() and part_files(env.archive_dir) == []


async def test_an_expired_redirect_is_resolved_again_without_credentials(
    make_env: MakeEnv,
) -> None:
    """A refused pre-signed URL leads to a fresh one; the file host never sees credentials."""
    async with running_fake() as fake:
        fake.add_file("Messages", DAY, FileReply(status=403), FileReply(body=GOOD))
        fake.day_entries["Messages"] = [entry(DAY, len(GOOD))]
        env = await make_env(fake.base_url, ManualClock(START))
        await env.succeed(M, [DAY])
        with structlog.testing.capture_logs() as logs:
            report = await archive_due_days(env.ctx)
    assert report.stored == [KEY]
    assert fake.resolves == 2
    assert fake.file_authorization == [None, None]
    (stored,) = [e for e in logs if e["event"] == "archive.stored"]
    assert stored["url_resolutions"] == 2 and stored["records"] == 3
    assert target(env.archive_dir).read_bytes() == GOOD


async def test_a_path_traversal_day_from_the_api_never_reaches_a_path(
    make_env: MakeEnv, tmp_path: Path
) -> None:
    """A Days list naming '../../..' is refused as a whole; the real day is still archived."""
    async with running_fake() as fake:
        fake.add_file("Messages", DAY, FileReply(body=GOOD))
        fake.day_entries["Messages"] = [
            entry(DAY, len(GOOD)),
            {"day": "../../../escaped", "size": 1, "resource_type": "Messages"},
        ]
        env = await make_env(fake.base_url, ManualClock(START))
        await env.succeed(M, [DAY])
        with structlog.testing.capture_logs() as logs:
            report = await archive_due_days(env.ctx)
    assert report.stored == [KEY]
    assert [e["event"] for e in logs if e["event"] == "archive.days_list_failed"] == [
        "archive.days_list_failed"
    ]
    assert files_named(tmp_path, "escaped") == []
    assert target(env.archive_dir).exists()


async def test_a_file_twilio_no_longer_has_sends_the_day_back_to_pending(
    make_env: MakeEnv,
) -> None:
    """404 from the day resource: the day goes back to Pending, out of its job, logged loudly."""
    async with running_fake() as fake:
        fake.add_file("Messages", DAY, FileReply(body=GOOD))
        fake.gone.add(("Messages", DAY.isoformat()))
        env = await make_env(fake.base_url, ManualClock(START))
        await env.succeed(M, [DAY])
        with structlog.testing.capture_logs() as logs:
            report = await archive_due_days(env.ctx)
    assert report.gone == [KEY]
    assert fake.file_requests == 0
    (gone,) = [e for e in logs if e["event"] == "archive.file_gone"]
    assert gone["log_level"] == "error"
    day = await env.store.get_day(KEY)
    assert day is not None
    assert day.status is DayStatus.PENDING and day.job_id is None and day.archive is None
    last = (await env.store.day_history(KEY))[-1]
    assert last.observed_by is ObservedBy.ARCHIVE and last.to_status is DayStatus.PENDING
    assert [d.key for d in await env.store.pending_days(START)] == [KEY]


async def _wait_for(fake: FakeTwilio, streaming: int) -> None:
    for _ in range(500):
        if fake.streaming >= streaming:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never {streaming} downloads at once (saw {fake.streaming})")


async def test_downloads_hold_the_limit_and_go_soonest_removal_first(make_env: MakeEnv) -> None:
    """Five days, limit two: never more than two streams, and the oldest completions first."""
    release = asyncio.Event()
    days = [dt.date(2026, 2, d) for d in range(1, 6)]
    async with running_fake() as fake:
        for day in days:
            fake.add_file("Messages", day, FileReply(body=GOOD, hold=release))
        clock = ManualClock(START)
        env = await make_env(fake.base_url, clock, max_concurrent=2)
        # Completed newest day first: the oldest completion is the last day.
        for n, day in enumerate(reversed(days)):
            await env.succeed(M, [day], job_sid="JS" + f"{n:x}" * 32)
            clock.advance(dt.timedelta(hours=1))
        running = asyncio.create_task(archive_due_days(env.ctx))
        await _wait_for(fake, 2)
        await asyncio.sleep(0.05)
        assert fake.streaming == 2
        first_two = list(fake.file_order)
        release.set()
        report = await running
    assert sorted(first_two) == [days[3].isoformat(), days[4].isoformat()]
    assert fake.max_streaming == 2
    assert sorted(report.stored, key=lambda k: k.day) == [DayKey(M, d) for d in days]
    requested = await env.store.list_days()
    assert all(d.archive is not None for d in requested)


async def test_a_crash_mid_download_leaves_no_part_and_archives_once(make_env: MakeEnv) -> None:
    """Cancelled half-way: no temporary file, nothing recorded; the next pass archives once."""
    hold = asyncio.Event()
    async with running_fake() as fake:
        fake.add_file("Messages", DAY, FileReply(body=GOOD, hold=hold), FileReply(body=GOOD))
        env = await make_env(fake.base_url, ManualClock(START))
        await env.succeed(M, [DAY])
        running = asyncio.create_task(archive_due_days(env.ctx))
        await _wait_for(fake, 1)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        assert part_files(env.archive_dir) == []
        assert not target(env.archive_dir).exists()
        day = await env.store.get_day(KEY)
        assert day is not None and day.archive is None
        hold.set()
        first = await archive_due_days(env.ctx)
        again = await archive_due_days(env.ctx)
    assert first.stored == [KEY]
    assert again.outcomes == {}
    assert fake.file_requests == 2
    day = await env.store.get_day(KEY)
    assert day is not None and day.archive is not None
    assert day.archive.path == str(target(env.archive_dir))
    assert part_files(env.archive_dir) == []


class FullDisk:
    """Opens real temporary files that fail with ENOSPC once ``room`` bytes are written."""

    def __init__(self, room: int, only: str) -> None:
        self.room = room
        self.only = only

    def __call__(self, path: Path) -> PartFile:
        handle = path.open("xb")
        if self.only not in path.name:
            return handle
        return _FillingFile(handle, self.room)


class _FillingFile:
    def __init__(self, handle: PartFile, room: int) -> None:
        self._handle = handle
        self._room = room

    def write(self, data: bytes, /) -> int:
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(data)
        return self._handle.write(data)

    def flush(self) -> None:
        self._handle.flush()

    def fileno(self) -> int:
        return self._handle.fileno()

    def close(self) -> None:
        self._handle.close()


async def test_a_full_disk_fails_that_day_loudly_and_the_others_carry_on(
    make_env: MakeEnv,
) -> None:
    """ENOSPC: error event, no part file, day unarchived and retried later; others stored."""
    other = dt.date(2026, 2, 2)
    big = gzip_lines(*({"sid": f"SM{i}", "pad": "x" * 200} for i in range(2000)))
    async with running_fake() as fake:
        fake.add_file("Messages", DAY, FileReply(body=big))
        fake.add_file("Messages", other, FileReply(body=GOOD))
        clock = ManualClock(START)
        env = await make_env(fake.base_url, clock)
        await env.succeed(M, [DAY, other])
        full = FullDisk(room=100, only=DAY.isoformat())
        with structlog.testing.capture_logs() as logs:
            report = await archive_due_days(env.ctx, opener=full)
        assert report.outcomes == {KEY: Outcome.FAILED, DayKey(M, other): Outcome.STORED}
        (event,) = [e for e in logs if e["event"] == "archive.write_failed"]
        assert event["log_level"] == "error" and "ENOSPC" in event["error"]
        assert part_files(env.archive_dir) == [] and not target(env.archive_dir).exists()
        assert fake.file_requests == 2  # one each: a full disk is not retried in the pass
        # Space freed; once the backoff has passed the day is archived.
        clock.advance(dt.timedelta(hours=2))
        retried = await archive_due_days(env.ctx)
    assert retried.stored == [KEY]
    assert target(env.archive_dir).read_bytes() == big


async def test_an_unwritable_directory_is_a_write_failure(make_env: MakeEnv) -> None:
    """A file where a directory must go: write_failed, no download, nothing left behind."""
    async with running_fake() as fake:
        fake.add_file("Messages", DAY, FileReply(body=GOOD))
        env = await make_env(fake.base_url, ManualClock(START))
        (env.archive_dir / "Messages").write_text("in the way")
        await env.succeed(M, [DAY])
        with structlog.testing.capture_logs() as logs:
            report = await archive_due_days(env.ctx)
    assert report.failed == [KEY]
    (event,) = [e for e in logs if e["event"] == "archive.write_failed"]
    assert "ENOTDIR" in event["error"]
    assert fake.file_requests == 0
    assert part_files(env.archive_dir) == []
