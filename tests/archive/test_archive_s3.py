"""The archive pass to S3 (a moto server on loopback) against the simulator, end to end."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import sys

import structlog

from orchestrator.clock import ManualClock
from orchestrator.domain.model import DayKey, JobState
from orchestrator.simulator import running_simulator
from orchestrator.simulator.files import file_spec, measure
from orchestrator.wiring import all_secrets, run_cycle
from orchestrator.workflows.archive import archive_due_days
from orchestrator.workflows.verify_archive import Problem, verify_archive
from tests.archive.conftest import START, MakeEnv, gzip_lines
from tests.archive.s3_support import SECRET_ACCESS_KEY, S3Bucket
from tests.archive.test_archive_simulator import (
    BACKFILL,
    DAYS,
    EMPTY,
    C,
    complete_on_simulator,
    sim_settings,
)


def key_of(day: dt.date) -> str:
    return f"Calls/{day:%Y}/{day:%m}/{day.isoformat()}.json.gz"


async def test_days_are_archived_to_s3_at_the_layout_key_with_matching_facts(
    make_env: MakeEnv,
) -> None:
    """Each object is at {prefix}/{type}/{yyyy}/{mm}/{day}.json.gz with the simulator's bytes."""
    bucket = S3Bucket.create()
    clock = ManualClock(START)
    async with running_simulator(sim_settings(clock)) as sim:
        env = await make_env(sim.base_url, clock, s3=bucket)
        await complete_on_simulator(env, clock)
        with structlog.testing.capture_logs() as logs:
            report = await archive_due_days(env.ctx)
    assert sorted(report.stored, key=lambda k: k.day) == [DayKey(C, d) for d in DAYS]
    assert bucket.object_keys() == sorted(bucket.full_key(key_of(d)) for d in DAYS)
    for day in DAYS:
        stored = await env.store.get_day(DayKey(C, day))
        assert stored is not None and stored.archive is not None
        assert stored.archive.path == f"{bucket.url}/{key_of(day)}"
        truth = measure(file_spec(sim.settings, C, day))
        assert (stored.archive.size, stored.archive.sha256) == (truth.size, truth.sha256)
        assert bucket.sha256(key_of(day)) == truth.sha256
        head = bucket.head(key_of(day))
        assert head is not None and head["Metadata"]["sha256"] == truth.sha256
        assert head["Metadata"]["archived-by"] == "orchestrator"
    assert bucket.incomplete_uploads() == []
    events = [e for e in logs if e["event"] == "archive.stored"]
    assert len(events) == 3 and all(e["path"].startswith("s3://") for e in events)
    # No secret in any event (the redactor's list holds the key read from its file).
    assert env.settings is not None and SECRET_ACCESS_KEY in all_secrets(env.settings)
    assert not [e for e in logs if SECRET_ACCESS_KEY in repr(e)]
    for deep in (False, True):
        verified = await verify_archive(env.store, deep=deep, target=env.target)
        assert (verified.checked, verified.ok, verified.exit_code) == (3, 3, 0), verified


async def test_verify_archive_catches_a_deleted_and_an_overwritten_object(
    make_env: MakeEnv,
) -> None:
    """One object deleted, one overwritten with other bytes of the same size: both caught."""
    bucket = S3Bucket.create()
    clock = ManualClock(START)
    async with running_simulator(sim_settings(clock)) as sim:
        env = await make_env(sim.base_url, clock, s3=bucket)
        await complete_on_simulator(env, clock)
        await archive_due_days(env.ctx)
    client = bucket.client()
    client.delete_object(Bucket=bucket.name, Key=bucket.full_key(key_of(DAYS[0])))
    size = len(bucket.body(key_of(DAYS[2])))
    client.put_object(
        Bucket=bucket.name, Key=bucket.full_key(key_of(DAYS[2])), Body=os.urandom(size)
    )
    for deep in (False, True):
        report = await verify_archive(env.store, deep=deep, target=env.target)
        assert (report.checked, report.ok, report.missing, report.changed) == (3, 1, 1, 1)
        assert report.exit_code == 1
        problems = {p.day: p for p in report.problems}
        assert problems[DAYS[0]].problem is Problem.MISSING
        assert problems[DAYS[2]].problem is Problem.CHANGED
        assert problems[DAYS[2]].path == f"{bucket.url}/{key_of(DAYS[2])}"


async def test_an_overwrite_that_keeps_our_metadata_is_caught_by_its_sha256(
    make_env: MakeEnv,
) -> None:
    """Other bytes under a copy of our metadata: the sha256 in the metadata gives it away."""
    bucket = S3Bucket.create()
    clock = ManualClock(START)
    async with running_simulator(sim_settings(clock)) as sim:
        env = await make_env(sim.base_url, clock, s3=bucket)
        await complete_on_simulator(env, clock)
        await archive_due_days(env.ctx)
    key = bucket.full_key(key_of(DAYS[0]))
    head = bucket.head(key_of(DAYS[0]))
    assert head is not None
    other = gzip_lines({"sid": "forged"})
    bucket.client().put_object(
        Bucket=bucket.name,
        Key=key,
        Body=other,
        Metadata={**head["Metadata"], "sha256": "0" * 64},
    )
    report = await verify_archive(env.store, target=env.target)
    (problem,) = report.problems
    assert problem.problem is Problem.CHANGED and problem.day == DAYS[0]


async def test_a_record_outside_the_configured_archive_is_unreadable(make_env: MakeEnv) -> None:
    """Objects verified without a target (or another bucket's) are reported, not skipped."""
    bucket = S3Bucket.create()
    clock = ManualClock(START)
    async with running_simulator(sim_settings(clock)) as sim:
        env = await make_env(sim.base_url, clock, s3=bucket)
        await complete_on_simulator(env, clock)
        await archive_due_days(env.ctx)
    for target in (None, S3Bucket.create().target()):
        report = await verify_archive(env.store, target=target)
        assert (report.checked, report.ok) == (3, 0)
        assert {p.problem for p in report.problems} == {Problem.UNREADABLE}


async def test_a_backfill_to_s3_ends_archived_and_tidy(make_env: MakeEnv) -> None:
    """The daemon's passes (run_cycle) with an S3 archive: ten days, each object the file."""
    bucket = S3Bucket.create()
    clock = ManualClock(START)
    async with running_simulator(sim_settings(clock)) as sim:
        env = await make_env(sim.base_url, clock, exports=BACKFILL, s3=bucket)
        for _ in range(400):
            await run_cycle(env.ctx)
            await archive_due_days(env.ctx)
            await run_cycle(env.ctx)
            if await env.store.all_wanted_final(require_archived=True) and not [
                j for j in await env.store.list_jobs() if j.state is not JobState.DELETED
            ]:
                break
            clock.advance(dt.timedelta(minutes=1))
        else:
            raise AssertionError("the backfill never ended archived and tidy")
    days = await env.store.list_days()
    assert len(days) == 10 and all(d.archive is not None for d in days)
    for day in days:
        assert day.archive is not None
        truth = measure(file_spec(sim.settings, C, day.day))
        assert (day.archive.size, day.archive.sha256) == (truth.size, truth.sha256)
        assert bucket.sha256(key_of(day.day)) == truth.sha256
    assert len(bucket.object_keys()) == 10
    report = await verify_archive(env.store, deep=True, target=env.target)
    assert (report.checked, report.ok) == (10, 10)


async def test_big_days_stream_as_multipart_uploads_and_verify(make_env: MakeEnv) -> None:
    """Days past one part: multipart objects (no sha256 metadata), verified by size and --deep."""
    bucket = S3Bucket.create()
    clock = ManualClock(START)
    settings = dataclasses.replace(sim_settings(clock), day_target_bytes=6 * 1024 * 1024)
    async with running_simulator(settings) as sim:
        env = await make_env(sim.base_url, clock, s3=bucket)
        await complete_on_simulator(env, clock)
        report = await archive_due_days(env.ctx)
    assert len(report.stored) == 3
    for day in DAYS:
        truth = measure(file_spec(sim.settings, C, day))
        head = bucket.head(key_of(day))
        assert head is not None and head["ContentLength"] == truth.size
        assert bucket.sha256(key_of(day)) == truth.sha256
        if day != EMPTY:
            assert truth.size > 5 * 1024 * 1024
            assert "-" in head["ETag"]  # a multipart upload's ETag
            assert "sha256" not in head["Metadata"]
            assert head["Metadata"]["archived-by"] == "orchestrator"
    assert bucket.incomplete_uploads() == []
    for deep in (False, True):
        verified = await verify_archive(env.store, deep=deep, target=env.target)
        assert (verified.checked, verified.ok) == (3, 3)


async def test_the_verify_archive_command_checks_the_bucket(make_env: MakeEnv) -> None:
    """`orchestrator verify-archive [--deep]` on an S3 config: 0 when whole, 1 once deleted."""
    bucket = S3Bucket.create()
    clock = ManualClock(START)
    async with running_simulator(sim_settings(clock)) as sim:
        env = await make_env(sim.base_url, clock, s3=bucket)
        await complete_on_simulator(env, clock)
        await archive_due_days(env.ctx)
    assert env.settings is not None
    config = env.settings.source

    async def command(*extra: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "orchestrator",
            "verify-archive",
            "--config",
            config,
            *extra,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        )
        out, _ = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode is not None
        return process.returncode, out.decode()

    for extra in ((), ("--deep",)):
        code, out = await command(*extra)
        assert code == 0, out
        assert "checked 3 archived files: 3 ok" in out
    bucket.client().delete_object(Bucket=bucket.name, Key=bucket.full_key(key_of(DAYS[1])))
    code, out = await command()
    assert code == 1, out
    assert f"missing: Calls {DAYS[1].isoformat()} {bucket.url}/{key_of(DAYS[1])}" in out
    assert SECRET_ACCESS_KEY not in out
