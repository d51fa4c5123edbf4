"""The operator commands against a real SQLite store, in process."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import gzip
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.cli import EX_CONFIG, EX_FAILURE, EX_OK, EX_SIGPIPE, EX_USAGE, main
from orchestrator.config import load_config_file
from orchestrator.domain.model import (
    ArchiveFacts,
    DayKey,
    DayStatus,
    JobRequest,
    ObservedBy,
    ResourceType,
    friendly_name,
)
from orchestrator.domain.policies import ResubmitPolicy
from orchestrator.domain.settlement import settle_report
from orchestrator.store import Store, create_engine, upgrade_to_head
from orchestrator.store.leadership import FileLock
from orchestrator.store.lockfile import lock_file_of

ACCOUNT = "AC" + "2" * 32
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
M = ResourceType.MESSAGES
D1, D2, D3 = dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)
SID = "JS" + "a" * 32


@pytest.fixture
def config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config whose database lives in tmp_path; no token is needed by these commands."""
    monkeypatch.delenv("CLI_TEST_TOKEN", raising=False)
    path = tmp_path / "config.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [twilio]
            account_sid = "{ACCOUNT}"
            auth_token_env = "CLI_TEST_TOKEN"

            [state]
            directory = "{tmp_path / "state"}"

            [jobs]
            name_prefix = "orch-cli"
            max_resubmits = 0

            [[exports]]
            name = "messages-jan"
            resource_type = "Messages"
            start_day = "2026-01-01"
            end_day = "2026-01-03"
            """
        )
    )
    return path


async def _seed(config_path: Path) -> None:
    """D1 completed, D2 gave up, D3 pending."""
    config = load_config_file(config_path)
    config.state.directory.mkdir(parents=True, exist_ok=True)
    engine = create_engine(config.state.database_url.get_secret_value())
    try:
        await upgrade_to_head(engine)
        store = Store(engine, ACCOUNT)
        await store.upsert_wanted_days([DayKey(M, d) for d in (D1, D2, D3)], NOW)
        name = friendly_name("orch-cli", M, D1, D2, 1)
        job = await store.claim_days(JobRequest(M, D1, D2, 1, name), NOW)
        await store.record_job_sid(job.id, SID, NOW, NOW)
        await store.settle_job(
            job.id,
            functools.partial(
                settle_report,
                reported={D1: DayStatus.COMPLETED, D2: DayStatus.FAILED},
                resubmit=ResubmitPolicy(0, dt.timedelta(0)),
                now=NOW,
                observed_by=ObservedBy.POLL,
            ),
        )
    finally:
        await engine.dispose()


def seed(config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(_seed(config_path))
    capsys.readouterr()  # the seeding's own log lines are not the command's output


def test_status_json_lists_days_and_jobs(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """status --json gives days[] and jobs[] with the documented keys, and nothing else."""
    seed(config_path, capsys)
    assert main(["status", "--config", str(config_path), "--json"]) == EX_OK
    document = json.loads(capsys.readouterr().out)
    days = {d["day"]: d for d in document["days"]}
    assert days["2026-01-01"] == {
        "resource_type": "Messages",
        "day": "2026-01-01",
        "status": "Completed",
        "job_sid": SID,
        "resubmits": 0,
        "archive_path": None,
    }
    assert days["2026-01-02"]["status"] == "GaveUp"
    assert days["2026-01-03"]["status"] == "Pending"
    [job] = document["jobs"]
    # D2 failed out of it and D1 completed: the job has nothing left to do.
    assert job["job_sid"] == SID and job["state"] == "finished"
    assert set(job) == {
        "job_sid",
        "friendly_name",
        "resource_type",
        "start_day",
        "end_day",
        "state",
    }


def test_status_table_counts_days_per_export(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The readable table has one row per export with its days counted by status."""
    seed(config_path, capsys)
    assert main(["status", "--config", str(config_path)]) == EX_OK
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("messages-jan"))
    assert row.split(None, 3)[2:] == ["3", "Pending 1, Completed 1, GaveUp 1"]


def test_status_names_the_leader_and_whether_it_runs(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """status ends with the leader's host, pid and since, and says when none holds the lock."""
    seed(config_path, capsys)
    assert main(["status", "--config", str(config_path)]) == EX_OK
    assert capsys.readouterr().out.splitlines()[-1] == (
        "leader: none yet (no daemon has run on this database)"
    )

    async def lead() -> None:
        config = load_config_file(config_path)
        engine = create_engine(config.state.database_url.get_secret_value())
        try:
            await Store(engine, ACCOUNT).claim_leadership("db-1", 4242, NOW)
        finally:
            await engine.dispose()

    asyncio.run(lead())
    capsys.readouterr()
    assert main(["status", "--config", str(config_path)]) == EX_OK
    assert capsys.readouterr().out.splitlines()[-1] == (
        "leader: none running (last: db-1 pid 4242 since 2026-03-01 12:00:00Z)"
    )
    database = load_config_file(config_path).state.directory / "orchestrator.sqlite"
    lock = FileLock(lock_file_of(database))
    assert asyncio.run(lock.try_acquire()).won
    try:
        assert main(["status", "--config", str(config_path)]) == EX_OK
        out = capsys.readouterr().out
        assert out.splitlines()[-1] == "leader: db-1 pid 4242 since 2026-03-01 12:00:00Z"
        assert main(["status", "--config", str(config_path), "--json"]) == EX_OK
        assert json.loads(capsys.readouterr().out)["leader"] == {
            "host": "db-1",
            "pid": 4242,
            "since": "2026-03-01T12:00:00+00:00",
            "epoch": 1,
            "running": True,
        }
    finally:
        asyncio.run(lock.close())


def test_status_into_a_closed_pipe_exits_quietly(config_path: Path) -> None:
    """A reader that goes away (``status | head -1``) ends status with 141, no traceback."""
    asyncio.run(_seed(config_path))
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte
    try:
        reader_gone = subprocess.run(
            [
                sys.executable,
                "-m",
                "orchestrator",
                "status",
                "--json",
                "--config",
                str(config_path),
            ],
            stdout=write_end,
            stderr=subprocess.PIPE,
            check=False,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert reader_gone.returncode == EX_SIGPIPE
    assert b"Traceback" not in reader_gone.stderr
    assert b"command.failed" not in reader_gone.stderr


def test_history_prints_every_transition(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """history shows a day's transitions oldest first; an unknown day exits non-zero."""
    seed(config_path, capsys)
    assert main(["history", "--config", str(config_path), "Messages", "2026-01-02"]) == EX_OK
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[3] for line in lines] == ["Pending", "Submitted", "Failed", "GaveUp"]
    assert main(["history", "--config", str(config_path), "Messages", "2025-06-01"]) == (EX_FAILURE)


@pytest.mark.parametrize(
    "selection",
    [
        ["--day", "2026-01-02"],
        ["--from", "2026-01-01", "--to", "2026-01-03", "--resource-type", "Messages"],
        ["--export", "messages-jan"],
    ],
)
def test_retry_returns_gave_up_days_to_pending(
    config_path: Path, capsys: pytest.CaptureFixture[str], selection: list[str]
) -> None:
    """retry by day, range or export returns GaveUp days to Pending and leaves others alone."""
    seed(config_path, capsys)
    assert main(["retry", "--config", str(config_path), *selection]) == EX_OK
    assert "Messages 2026-01-02: Pending" in capsys.readouterr().out
    main(["status", "--config", str(config_path), "--json"])
    days = {d["day"]: d["status"] for d in json.loads(capsys.readouterr().out)["days"]}
    assert days == {"2026-01-01": "Completed", "2026-01-02": "Pending", "2026-01-03": "Pending"}


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ([], "exactly one of"),
        (["--day", "2026-02-30"], "--day: '2026-02-30' is not a real calendar date"),
        (["--from", "2026-01-03", "--to", "2026-01-01"], "--to"),
        (["--from", "2026-01-03"], "--from and --to go together"),
        (["--export", "nope"], "no export named 'nope'"),
        (["--day", "2026-01-01", "--resource-type", "messages"], "--resource-type"),
    ],
)
def test_retry_rejects_bad_selections(
    config_path: Path,
    capsys: pytest.CaptureFixture[str],
    selection: list[str],
    message: str,
) -> None:
    """A bad retry selection is one clear line and a usage exit code; nothing changes."""
    assert main(["retry", "--config", str(config_path), *selection]) == EX_USAGE
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_migrate_creates_the_database(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """migrate creates the state directory and database and says so."""
    assert main(["migrate", "--config", str(config_path)]) == EX_OK
    assert "newest schema" in capsys.readouterr().out
    assert (config_path.parent / "state" / "orchestrator.sqlite").exists()


def test_check_config_prints_the_plan(
    config_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """check-config validates, names the secret's origin (not the secret) and prints each export."""
    monkeypatch.setenv("CLI_TEST_TOKEN", "tok-secret-value-42")
    assert main(["check-config", "--config", str(config_path)]) == EX_OK
    out = capsys.readouterr().out
    assert "environment variable CLI_TEST_TOKEN" in out
    assert "tok-secret-value-42" not in out
    assert "export messages-jan: Messages" in out
    assert "3 days wanted" in out


def test_check_config_without_the_token_is_a_config_error(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config resolves secrets: an unset token variable is exit 78 naming the key."""
    assert main(["check-config", "--config", str(config_path)]) == EX_CONFIG
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "twilio.auth_token_env" in err


async def _archive_d1(config_path: Path, body: bytes) -> Path:
    """Write D1's file and record it as archived, as the archive pass would."""
    config = load_config_file(config_path)
    path = config.state.directory / "Messages-2026-01-01.json.gz"
    path.write_bytes(body)
    engine = create_engine(config.state.database_url.get_secret_value())
    try:
        facts = ArchiveFacts(
            path=str(path),
            size=len(body),
            sha256=hashlib.sha256(body).hexdigest(),
            record_count=1,
            archived_at=NOW,
        )
        await Store(engine, ACCOUNT).record_archive(DayKey(M, D1), facts)
    finally:
        await engine.dispose()
    return path


def test_verify_archive_exits_0_when_files_match_and_1_when_changed(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A matching file passes; after one byte changes, the same command names it and exits 1."""
    seed(config_path, capsys)
    body = gzip.compress(b'{"sid": "SM1"}\n')
    path = asyncio.run(_archive_d1(config_path, body))
    capsys.readouterr()
    assert main(["verify-archive", "--config", str(config_path), "--deep"]) == EX_OK
    assert "checked 1 archived files: 1 ok, 0 missing, 0 changed" in capsys.readouterr().out

    path.write_bytes(body[:-1] + bytes([body[-1] ^ 0xFF]))
    assert main(["verify-archive", "--config", str(config_path)]) == EX_FAILURE
    out = capsys.readouterr().out
    assert "Messages 2026-01-01" in out and str(path) in out
    assert "0 ok, 0 missing, 1 changed" in out

    path.unlink()
    assert main(["verify-archive", "--config", str(config_path)]) == EX_FAILURE
    assert "0 ok, 1 missing, 0 changed" in capsys.readouterr().out
