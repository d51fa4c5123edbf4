"""The shipped unit file: what it promises the daemon, and what systemd's own tools say of it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from orchestrator.config import ConfigFile

UNIT_DIR = Path(__file__).resolve().parents[2] / "systemd"
UNIT = UNIT_DIR / "orchestrator.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")
# Plain, untranslated, uncoloured output that does not wait on a pager.
TOOL_ENV = {**os.environ, "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0", "LC_ALL": "C.UTF-8"}
EXPOSURE_LINE = re.compile(r"Overall exposure level for (\S+): (\d+\.\d+) (\w+)")
GOOD_LABELS = {"PERFECT", "SAFE", "OK"}
README = UNIT_DIR / "README.md"
# `[section] key` as the docs name a config key, and any bare `snake_case` word in backticks.
SECTION_KEY = re.compile(r"`\[(\w+)\] (\w+)")
SNAKE_WORD = re.compile(r"`([a-z][a-z0-9]*(?:_[a-z0-9]+)+)`")


def _settings(text: str) -> dict[str, list[str]]:
    """Key -> values of a unit file, in order, keeping repeated keys (no section handling)."""
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def _config_keys() -> set[tuple[str, str]]:
    """(section, key) for every key of the config file's tables, from the model itself."""
    keys: set[tuple[str, str]] = set()
    for section, field in ConfigFile.model_fields.items():
        pending: list[object] = [field.annotation]
        while pending:
            kind = pending.pop()
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                keys |= {(section, key) for key in kind.model_fields}
            else:  # X | None, tuple[X, ...], Annotated[...]
                pending.extend(getattr(kind, "__args__", ()))
    return keys


def _runnable_copy(tmp_path: Path) -> Path:
    """The unit copied to tmp_path with ExecStart's program swapped for one that exists here.

    verify insists that the program exists; everything else, including ExecStart's arguments,
    is kept as shipped.
    """
    text = UNIT.read_text(encoding="utf-8")
    rewritten, count = re.subn(
        r"^ExecStart=\S+", lambda _: f"ExecStart={sys.executable}", text, flags=re.MULTILINE
    )
    assert count == 1
    copy = tmp_path / UNIT.name
    copy.write_text(rewritten, encoding="utf-8")
    return copy


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        env=TOOL_ENV,
        timeout=120,
        check=False,
    )


def test_unit_keeps_the_daemon_contract() -> None:
    """The settings the daemon relies on (notify, watchdog, exit 78, credential) are present."""
    settings = _settings(UNIT.read_text(encoding="utf-8"))
    assert settings["Type"] == ["notify"]
    assert settings["NotifyAccess"] == ["main"]
    assert settings["ExecStart"][0].endswith(" run --config /etc/orchestrator/config.toml")
    assert settings["Restart"] == ["on-failure"]
    assert settings["RestartPreventExitStatus"] == ["78"]
    assert settings["LoadCredential"] == ["twilio-auth-token:/etc/orchestrator/twilio-auth-token"]
    assert settings["StateDirectory"] == ["orchestrator"]
    assert settings["ConfigurationDirectory"] == ["orchestrator"]
    # Above the daemon's 10 s drain deadline, so SIGKILL never cuts a clean shutdown short.
    assert int(settings["TimeoutStopSec"][0]) > 10
    assert int(settings["WatchdogSec"][0]) >= 10
    assert settings["ProtectSystem"] == ["strict"]
    assert settings["CapabilityBoundingSet"] == [""]


def test_journald_stores_the_daemons_priorities() -> None:
    """stdout goes to the journal (so $JOURNAL_STREAM is set) and the <N> prefix is honoured."""
    settings = _settings(UNIT.read_text(encoding="utf-8"))
    assert settings["SyslogLevelPrefix"] == ["yes"]
    # The default (journal) or an explicit journal output: anything else sets no JOURNAL_STREAM.
    assert settings.get("StandardOutput", ["journal"])[-1] in ("journal", "journal+console")
    assert settings["SyslogIdentifier"] == ["orchestrator"]


def test_config_keys_named_by_the_unit_and_its_readme_exist() -> None:
    """Every `[section] key` and every `snake_case` word in the unit's comments and the systemd
    README is a key of the config file (no `archive_dir`)."""
    keys = _config_keys()
    assert ("archive", "directory") in keys and ("logging", "format") in keys
    for doc in (UNIT, README):
        text = doc.read_text(encoding="utf-8")
        for section, key in SECTION_KEY.findall(text):
            assert (section, key) in keys, f"{doc.name}: [{section}] {key}"
        for word in SNAKE_WORD.findall(text):
            assert any(key == word for _, key in keys), f"{doc.name}: {word}"


def test_archive_dir_is_created_and_writable() -> None:
    """Every ReadWritePaths= entry is created by the shipped tmpfiles.d snippet."""
    settings = _settings(UNIT.read_text(encoding="utf-8"))
    tmpfiles = (UNIT_DIR / "orchestrator.tmpfiles").read_text(encoding="utf-8")
    created = {line.split()[1] for line in tmpfiles.splitlines() if line.startswith("d ")}
    for entry in settings["ReadWritePaths"]:
        for path in entry.split():
            assert path.lstrip("-") in created


@needs_analyze
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit: exit 0 and no complaint about any line of it."""
    copy = _runnable_copy(tmp_path)
    result = _analyze("verify", str(copy))
    # verify also loads the host's units and may grumble about those; only ours matter here.
    ours = [line for line in result.stderr.splitlines() if copy.name in line]
    assert ours == [], result.stderr
    assert result.returncode == 0, result.stderr


@needs_analyze
def test_systemd_analyze_security(tmp_path: Path) -> None:
    """`systemd-analyze security --offline=yes` rates the unit's exposure OK or better."""
    if "--offline" not in _analyze("security", "--help").stdout:
        pytest.skip("systemd-analyze security has no --offline (needs systemd >= 250)")
    result = _analyze("security", "--offline=yes", "--no-pager", str(_runnable_copy(tmp_path)))
    assert result.returncode == 0, result.stderr
    found = EXPOSURE_LINE.search(result.stdout)
    assert found is not None, result.stdout
    unit, exposure, label = found.groups()
    assert unit == UNIT.name
    assert label in GOOD_LABELS, result.stdout
    assert float(exposure) < 5.0


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers missing")
@pytest.mark.skipif(shutil.which("systemd-tmpfiles") is None, reason="systemd-tmpfiles missing")
@pytest.mark.skipif(os.geteuid() != 0, reason="tmpfiles needs root to chown in --root")
def test_sysusers_and_tmpfiles_apply(tmp_path: Path) -> None:
    """The sysusers and tmpfiles snippets apply cleanly to an empty root and make the archive."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for tool, snippet in [
        ("systemd-sysusers", "orchestrator.sysusers"),
        ("systemd-tmpfiles", "orchestrator.tmpfiles"),
    ]:
        args = [tool, f"--root={root}"]
        if tool == "systemd-tmpfiles":
            args.append("--create")
        result = subprocess.run(
            [*args, str(UNIT_DIR / snippet)],
            capture_output=True,
            text=True,
            env=TOOL_ENV,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    assert "orchestrator:" in (root / "etc" / "passwd").read_text(encoding="utf-8")
    archive = root / "srv" / "orchestrator" / "archive"
    assert archive.is_dir()
    assert archive.stat().st_mode & 0o777 == 0o700
