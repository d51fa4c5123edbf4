"""``check-config --connect`` probes an object-storage archive: a good bucket passes, a
missing one is one line naming its URL, exit 69; nothing is left in the bucket."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

from orchestrator.config import load_settings
from orchestrator.connect import CONNECT_CHECKS, check_archive, run_checks
from tests.archive.s3_support import S3Bucket

ACCOUNT = "AC" + "7" * 32
TOKEN_ENV = "CONNECT_ARCHIVE_TOKEN"


def _config(tmp_path: Path, archive: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [twilio]
            account_sid = "{ACCOUNT}"
            auth_token_env = "{TOKEN_ENV}"

            [state]
            directory = "{tmp_path / "state"}"

            [[exports]]
            name = "calls"
            resource_type = "Calls"
            last_days = 3

            [archive]
            """
        )
        + archive
    )
    return path


async def test_a_reachable_bucket_takes_the_probe_and_keeps_nothing(tmp_path: Path) -> None:
    """The archive check names the bucket URL; the probe object is gone afterwards."""
    bucket = S3Bucket.create()
    settings = load_settings(
        _config(tmp_path, bucket.archive_toml(tmp_path / "creds")), environ={TOKEN_ENV: "t"}
    )
    out, err = io.StringIO(), io.StringIO()
    [archive] = [check for check in CONNECT_CHECKS if check.name == "archive"]
    assert archive.run is check_archive
    assert await run_checks(settings, out, err, checks=[archive]) == 0
    assert out.getvalue().startswith(f"archive: OK ({bucket.url} took a probe object")
    assert err.getvalue() == ""
    assert bucket.object_keys() == []


async def test_a_missing_bucket_is_one_line_and_exit_69(tmp_path: Path) -> None:
    """A bucket that does not exist fails the check with its URL, exit 69 (unavailable)."""
    real = S3Bucket.create()
    missing = S3Bucket("no-such-bucket-c0", real.prefix, real.endpoint)
    settings = load_settings(
        _config(tmp_path, missing.archive_toml(tmp_path / "creds")), environ={TOKEN_ENV: "t"}
    )
    out, err = io.StringIO(), io.StringIO()
    code = await run_checks(
        settings, out, err, checks=[c for c in CONNECT_CHECKS if c.name == "archive"]
    )
    assert code == 69
    [line] = err.getvalue().splitlines()
    assert line.startswith("orchestrator: check-config --connect: archive: ")
    assert missing.url in line
    assert "secret" not in line.lower()


async def test_a_local_archive_is_not_written_to(tmp_path: Path) -> None:
    """A local directory was checked at load; --connect writes nothing into it."""
    settings = load_settings(
        _config(tmp_path, f'directory = "{tmp_path / "archive"}"\n'), environ={TOKEN_ENV: "t"}
    )
    assert "a local directory" in await check_archive(settings)
    assert not (tmp_path / "archive").exists()
