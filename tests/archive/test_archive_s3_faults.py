"""S3 that fails: 500s, slow answers, connections dropped mid-upload (a proxy in front of moto).

Whatever the service does, each day ends archived exactly once, with the simulator's bytes
at its final key, and nothing partial (no object, no incomplete multipart upload) left behind.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt

import structlog

from orchestrator.clock import ManualClock
from orchestrator.domain.model import DayKey
from orchestrator.simulator import running_simulator
from orchestrator.simulator.files import file_spec, measure
from orchestrator.workflows.archive import archive_due_days
from orchestrator.workflows.verify_archive import verify_archive
from tests.archive.conftest import START, Env, MakeEnv
from tests.archive.s3_support import (
    FaultProxy,
    S3Bucket,
    is_complete,
    is_head,
    is_part_upload,
    is_single_put,
    running_proxy,
)
from tests.archive.test_archive_simulator import DAYS, C, complete_on_simulator, sim_settings

# Two parts per non-empty day: every day but the empty one is a multipart upload.
DAY_BYTES = 6 * 1024 * 1024


def key_of(day: dt.date) -> str:
    return f"Calls/{day:%Y}/{day:%m}/{day.isoformat()}.json.gz"


async def archive_until_done(env: Env, clock: ManualClock, passes: int = 10) -> list[dict]:  # type: ignore[type-arg]
    """Archive passes (the backoff waited out between them) until every day is archived."""
    with structlog.testing.capture_logs() as logs:
        for _ in range(passes):
            await archive_due_days(env.ctx)
            if await env.store.all_wanted_final(require_archived=True) and all(
                d.archive is not None for d in await env.store.list_days()
            ):
                return logs
            clock.advance(dt.timedelta(hours=2))
    raise AssertionError(f"not archived after {passes} passes")


async def check_archived_once(env: Env, bucket: S3Bucket, logs: list[dict], sim: object) -> None:  # type: ignore[type-arg]
    stored = collections.Counter(e["day"] for e in logs if e["event"] == "archive.stored")
    assert stored == {d.isoformat(): 1 for d in DAYS}, stored
    for day in DAYS:
        truth = measure(file_spec(sim.settings, C, day))  # type: ignore[attr-defined]
        record = await env.store.get_day(DayKey(C, day))
        assert record is not None and record.archive is not None
        assert (record.archive.size, record.archive.sha256) == (truth.size, truth.sha256)
        assert bucket.sha256(key_of(day)) == truth.sha256
    assert bucket.object_keys() == sorted(bucket.full_key(key_of(d)) for d in DAYS)
    assert bucket.incomplete_uploads() == []
    report = await verify_archive(env.store, deep=True, target=env.target)
    assert (report.checked, report.ok) == (3, 3)


def quick_retries(env: Env, bucket: S3Bucket, max_retries: int) -> None:
    """The context's target with obstore retrying at most ``max_retries`` times."""
    assert env.ctx.archive is not None
    target = bucket.target(max_retries=max_retries, retry_timeout=dt.timedelta(seconds=20))
    env.ctx = dataclasses.replace(
        env.ctx, archive=dataclasses.replace(env.ctx.archive, target=target)
    )


async def run_with(
    make_env: MakeEnv, arrange: object, *, max_retries: int = 3
) -> tuple[FaultProxy, Env, S3Bucket, list[dict]]:  # type: ignore[type-arg]
    bucket = S3Bucket.create()
    clock = ManualClock(START)
    settings = dataclasses.replace(sim_settings(clock), day_target_bytes=DAY_BYTES)
    async with running_simulator(settings) as sim, running_proxy() as proxy:
        via = bucket.via(proxy.base_url)
        env = await make_env(sim.base_url, clock, s3=via, max_concurrent=1)
        quick_retries(env, via, max_retries)
        await complete_on_simulator(env, clock)
        arrange(proxy)  # type: ignore[operator]
        logs = await archive_until_done(env, clock)
        await check_archived_once(env, bucket, logs, sim)
    return proxy, env, bucket, logs


async def test_500s_on_parts_puts_and_completion_are_retried(make_env: MakeEnv) -> None:
    """500 on two part uploads, a one-PUT file and a completion: archived once each."""

    def arrange(proxy: FaultProxy) -> None:
        proxy.add("error", is_part_upload, times=2)
        proxy.add("error", is_single_put, times=1)
        proxy.add("error", is_complete, times=1)

    proxy, _env, _bucket, _logs = await run_with(make_env, arrange)
    assert proxy.injected("error") == 4


async def test_slow_answers_only_slow_the_pass(make_env: MakeEnv) -> None:
    """Late answers to parts, a completion and a HEAD: stored in the first pass, once each."""

    def arrange(proxy: FaultProxy) -> None:
        proxy.add("slow", is_part_upload, times=2, delay=1.0)
        proxy.add("slow", is_complete, times=1, delay=1.0)
        proxy.add("slow", is_head, times=1, delay=1.0)

    proxy, _env, _bucket, logs = await run_with(make_env, arrange)
    assert proxy.injected("slow") == 4
    assert not [e for e in logs if e["event"] in ("archive.failed", "archive.write_failed")]


async def test_a_connection_dropped_mid_upload_is_retried(make_env: MakeEnv) -> None:
    """A part upload and a one-PUT file cut off half-way through their bodies: archived once."""

    def arrange(proxy: FaultProxy) -> None:
        proxy.add("drop", is_part_upload, times=1)
        proxy.add("drop", is_single_put, times=1)

    proxy, _env, _bucket, _logs = await run_with(make_env, arrange)
    assert proxy.injected("drop") == 2


async def test_a_service_failing_past_its_retries_fails_the_day_cleanly(
    make_env: MakeEnv,
) -> None:
    """Every part upload refused past obstore's retries: write_failed, no object, no upload
    left; once the service recovers the day is archived (once)."""

    def arrange(proxy: FaultProxy) -> None:
        proxy.add("error", is_part_upload, times=12)

    proxy, _env, _bucket, logs = await run_with(make_env, arrange, max_retries=1)
    failed = [e for e in logs if e["event"] == "archive.write_failed"]
    assert failed and all(e["destination"].startswith("s3://") for e in failed)
    assert all("500" in e["error"] for e in failed)
    assert proxy.injected("error") == 12
