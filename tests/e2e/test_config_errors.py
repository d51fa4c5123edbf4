"""Bad configuration: one line on stderr naming the file and the key, exit 78 (EX_CONFIG)."""

from __future__ import annotations

import json
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


# ------------------------------------------------------------------------------ issue 11:
# check-config says OK only to what run can use, and nothing gives a traceback.


def _state(tmp_path: Path) -> str:
    return f'\n[state]\ndirectory = "{tmp_path / "state"}"\n'


def _edge_cases(tmp_path: Path) -> list[tuple[str, str, str]]:
    """(case id, config text, what the one line must contain) of configs run cannot use."""
    afile = tmp_path / "afile"
    polling = TWILIO + _state(tmp_path) + "\n[polling]\n{}\n" + EXPORT
    twilio = TWILIO + "{}\n" + _state(tmp_path) + EXPORT
    archive = TWILIO + _state(tmp_path) + "\n[archive]\n{}\n" + EXPORT
    return [
        ("rps-inf", twilio.format("requests_per_second = inf"), "twilio.requests_per_second: "),
        ("rps-nan", twilio.format("requests_per_second = nan"), "twilio.requests_per_second: "),
        (
            "timeout-overflow",
            twilio.format('request_timeout = "1000000000d"'),
            "twilio.request_timeout: ",
        ),
        ("initial-delay", polling.format('initial_delay = "99999999d"'), "polling.initial_delay: "),
        ("max-delay", polling.format('max_delay = "99999999d"'), "polling.max_delay: "),
        ("max-eta-wait", polling.format('max_eta_wait = "99999999d"'), "polling.max_eta_wait: "),
        (
            "template-conversion",
            archive.format(
                f'directory = "{tmp_path / "archive"}"\n'
                'path_template = "{resource_type}/{day!r}.gz"'
            ),
            "archive.path_template: ",
        ),
        (
            "state-under-a-file",
            TWILIO + f'\n[state]\ndirectory = "{afile / "state"}"\n' + EXPORT,
            "state.directory: ",
        ),
        ("archive-is-a-file", archive.format(f'directory = "{afile}"'), "archive.directory: "),
        (
            "archive-under-a-file",
            archive.format(f'directory = "{afile / "archive"}"'),
            "archive.directory: ",
        ),
        ("deep-array", "x = " + "[" * 5000 + "]" * 5000 + "\n" + TWILIO + EXPORT, "nested"),
        ("huge-file", TWILIO + EXPORT + ("#" * 100 + "\n") * 11000, "larger than 1 MiB"),
    ]


EDGE_IDS = [case[0] for case in _edge_cases(Path("/x"))]


@pytest.mark.parametrize("command", ["run", "check-config"])
@pytest.mark.parametrize("case", EDGE_IDS)
def test_config_run_cannot_use_is_one_line_and_78_before_any_migration(
    command: str, case: str, tmp_path: Path
) -> None:
    """Both commands, as processes: exit 78, one stderr line naming the file (and key), no
    stdout, and no database (nor state directory) was made."""
    (tmp_path / "afile").write_text("a regular file")
    text, fragment = next((t, f) for c, t, f in _edge_cases(tmp_path) if c == case)
    path = tmp_path / "bad.toml"
    path.write_text(text)

    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", command, "--config", str(path)],
        capture_output=True,
        text=True,
        env=child_environ({TOKEN_ENV: TOKEN}),
        timeout=120,
        check=False,
    )

    assert done.returncode == EX_CONFIG, done.stderr[-2000:]
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr[-2000:]
    assert done.stderr.startswith(f"orchestrator: config error: {path}:"), done.stderr
    assert fragment in done.stderr
    assert not (tmp_path / "state").exists()


def test_dev_zero_as_config_is_one_line_at_once() -> None:
    """--config /dev/zero: one line and exit 78, without reading gigabytes first."""
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "check-config", "--config", "/dev/zero"],
        capture_output=True,
        text=True,
        env=child_environ({TOKEN_ENV: TOKEN}),
        timeout=120,
        check=False,
    )
    assert done.returncode == EX_CONFIG
    assert done.stderr == (
        "orchestrator: config error: /dev/zero: the file is larger than 1 MiB: "
        "not a configuration file\n"
    )


CRASH = """
import sys
import orchestrator.config, orchestrator.daemon
from orchestrator.cli import main

def broken(*args, **kwargs):
    raise RuntimeError("an unexpected bug")

orchestrator.config.load_settings = broken
orchestrator.daemon.load_settings = broken
sys.exit(main([{command!r}, "--config", {config!r}]))
"""


@pytest.mark.parametrize(
    ("command", "event", "stream"),
    [("run", "daemon.crashed", "stdout"), ("check-config", "command.failed", "stderr")],
)
def test_an_unexpected_exception_is_one_json_line_with_its_traceback(
    command: str, event: str, stream: str, tmp_path: Path
) -> None:
    """A bug anywhere is exit 70 and ONE JSON log line with a ``traceback`` field: no
    plain-text traceback in the stream (journalctl -o cat | jq keeps working)."""
    path = write(tmp_path, TWILIO + EXPORT)
    script = CRASH.format(command=command, config=str(path))

    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=child_environ({TOKEN_ENV: TOKEN}),
        timeout=120,
        check=False,
    )

    assert done.returncode == 70, done.stderr[-2000:]
    output = done.stdout if stream == "stdout" else done.stderr
    other = done.stderr if stream == "stdout" else done.stdout
    assert other == ""
    [line] = output.splitlines()
    record = json.loads(line)
    assert record["event"] == event and record["level"] == "critical"
    assert "RuntimeError: an unexpected bug" in record["traceback"]
    assert "Traceback (most recent call last)" in record["traceback"]
