"""Bad configuration: one line on stderr naming the file and the key, exit 78 (EX_CONFIG)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.cli import EX_CONFIG, main
from tests.e2e.process_support import ACCOUNT, TOKEN, TOKEN_ENV, child_environ

TWILIO = f"""
[twilio]
account_sid = "{ACCOUNT}"
auth_token_env = "{TOKEN_ENV}"
base_url = "http://127.0.0.1:9"
"""
EXPORT = """
[[exports]]
name = "messages"
resource_type = "Messages"
start_day = "2024-01-01"
end_day = "2024-01-31"
"""

# (case id, config text, the key the error must name)
CASES = [
    (
        "missing-key",
        TWILIO.replace(f'account_sid = "{ACCOUNT}"', "") + EXPORT,
        "twilio.account_sid",
    ),
    ("bad-date", TWILIO + EXPORT.replace("2024-01-31", "2024-02-30"), "exports[0].end_day"),
    (
        "end-before-start",
        TWILIO + EXPORT.replace('end_day = "2024-01-31"', 'end_day = "2023-12-31"'),
        "exports[0].end_day",
    ),
    (
        "unknown-resource-type",
        TWILIO + EXPORT.replace("Messages", "Faxes"),
        "exports[0].resource_type",
    ),
    (
        "unreadable-token-file",
        TWILIO.replace(f'auth_token_env = "{TOKEN_ENV}"', 'auth_token_file = "no-such-token"')
        + EXPORT,
        "twilio.auth_token_file",
    ),
    ("token-env-unset", TWILIO + EXPORT, "twilio.auth_token_env"),
    ("duplicate-export-name", TWILIO + EXPORT + EXPORT, "exports[1].name"),
    (
        "unknown-key",
        TWILIO + "\n[jobs]\nmax_days_per_jobb = 3\n" + EXPORT,
        "jobs.max_days_per_jobb",
    ),
]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("command", ["run", "check-config"])
@pytest.mark.parametrize(("text", "key"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_config_is_one_line_naming_file_and_key(
    command: str,
    text: str,
    key: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each bad config: exit 78 and exactly one stderr line ``<file>:<key>: ...``, no stdout."""
    if key == "twilio.auth_token_env":
        monkeypatch.delenv(TOKEN_ENV, raising=False)
    else:
        monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    path = write(tmp_path, text)

    code = main([command, "--config", str(path)])

    out, err = capsys.readouterr()
    assert code == EX_CONFIG
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"orchestrator: config error: {path}:{key}: "), lines[0]
    assert TOKEN not in err
    # Nothing was started: no state directory appeared next to the config.
    assert not (tmp_path / "state").exists()


def test_toml_syntax_error_names_the_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TOML syntax error is one line naming the file and where the parser stopped."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    path = write(tmp_path, TWILIO + EXPORT + "\n[jobs\n")

    code = main(["run", "--config", str(path)])

    _, err = capsys.readouterr()
    assert code == EX_CONFIG
    assert err.count("\n") == 1
    assert err.startswith(f"orchestrator: config error: {path}: invalid TOML: ")
    assert "line" in err


@pytest.mark.parametrize(("text", "key"), [CASES[1][1:], CASES[5][1:]], ids=["bad-date", "env"])
def test_run_process_exits_78_with_one_line(text: str, key: str, tmp_path: Path) -> None:
    """The real ``orchestrator run`` process exits 78 with one stderr line naming the key."""
    path = write(tmp_path, text)
    env = child_environ({} if key == "twilio.auth_token_env" else {TOKEN_ENV: TOKEN})

    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )

    assert done.returncode == EX_CONFIG
    assert done.stdout == ""
    assert done.stderr.splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(f"orchestrator: config error: {path}:{key}: ")
