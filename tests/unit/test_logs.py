"""Log set-up: JSON lines with stable event names, journald priorities, no secret printed."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import pytest
import structlog

from orchestrator.logs import (
    REDACTED,
    ConfiguredFormat,
    SecretRedactor,
    choose_format,
    configure_logging,
    detect_format,
    get_logger,
    stream_identity,
)

TOKEN = "tok_9f8e7d6c5b4a"


def test_redactor_scrubs_values_nested_and_in_exceptions() -> None:
    """Every occurrence of a secret becomes [REDACTED], however deep."""
    redactor = SecretRedactor([TOKEN])
    event = redactor(
        None,
        "info",
        {
            "event": "x.y",
            "url": f"https://u:{TOKEN}@host/",
            "nested": {"list": [TOKEN, 3, None]},
            "error": ValueError(f"bad {TOKEN}"),
        },
    )
    assert TOKEN not in repr(event)
    assert event["url"] == f"https://u:{REDACTED}@host/"
    assert event["nested"]["list"] == [REDACTED, 3, None]


def test_redactor_drops_secret_keys_and_swaps_secrets_on_replace() -> None:
    """Values under secret-named keys are dropped; replace() swaps the known secrets."""
    redactor = SecretRedactor(["old-secret-1"])
    assert redactor(None, "info", {"auth_token": "anything"})["auth_token"] == REDACTED
    redactor.replace(["new-secret-2"])
    assert redactor(None, "info", {"a": "old-secret-1 new-secret-2"})["a"] == (
        f"old-secret-1 {REDACTED}"
    )
    assert "new-secret-2" not in repr(redactor)


def test_json_lines_carry_event_name_and_no_secret() -> None:
    """Off a TTY each event is one JSON line with its dotted name; the token never appears."""
    out = io.StringIO()
    configure_logging(redactor=SecretRedactor([TOKEN]), stream=out)
    try:
        log = get_logger("test")
        log.info("job.submitted", job_sid="JS1", note=f"token={TOKEN}")
        try:
            raise RuntimeError(f"failed with {TOKEN}")
        except RuntimeError:
            log.exception("job.failed")
        log.debug("hidden.by_level")
    finally:
        structlog.reset_defaults()
    text = out.getvalue()
    assert TOKEN not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["event"] for line in lines] == ["job.submitted", "job.failed"]
    assert lines[0]["job_sid"] == "JS1" and lines[0]["level"] == "info"
    assert "RuntimeError" in lines[1]["exception"]


# sd-daemon(3): SD_CRIT, SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG.
EXPECTED_PRIORITIES = {"critical": 2, "error": 3, "warning": 4, "info": 6, "debug": 7}
PREFIXED = re.compile(r"^<(\d)>(\{.*\})$")


def test_journal_lines_carry_their_priority_and_the_rest_is_json() -> None:
    """format journal: each level gets its sd-daemon prefix; after it the line is a JSON event."""
    out = io.StringIO()
    configure_logging(redactor=SecretRedactor([TOKEN]), level="debug", journal=True, stream=out)
    try:
        log = get_logger("test")
        log.debug("x.debugged", n=1)
        log.info("x.informed", note=f"token={TOKEN}")
        log.warning("x.warned")
        log.error("x.failed", error="multi\nline")
        log.critical("x.critical")
        try:
            raise RuntimeError(f"failed with {TOKEN}")
        except RuntimeError:
            log.exception("x.raised")
    finally:
        structlog.reset_defaults()
    text = out.getvalue()
    assert TOKEN not in text
    seen = []
    for line in text.splitlines():
        match = PREFIXED.match(line)
        assert match is not None, line
        event = json.loads(match.group(2))
        assert int(match.group(1)) == EXPECTED_PRIORITIES[event["level"]], line
        seen.append((event["event"], int(match.group(1))))
    assert seen == [
        ("x.debugged", 7),
        ("x.informed", 6),
        ("x.warned", 4),
        ("x.failed", 3),
        ("x.critical", 2),
        ("x.raised", 3),
    ]
    assert "RuntimeError" in json.loads(text.splitlines()[-1][3:])["exception"]


def test_plain_json_lines_have_no_prefix() -> None:
    """format json: lines start with the JSON object itself, whatever the level."""
    out = io.StringIO()
    configure_logging(redactor=SecretRedactor(), level="debug", json=True, stream=out)
    try:
        get_logger("test").error("x.failed")
    finally:
        structlog.reset_defaults()
    assert json.loads(out.getvalue())["level"] == "error"


STREAM = (2049, 131)


@pytest.mark.parametrize(
    ("configured", "environ", "isatty", "stream_id", "expected"),
    [
        # Explicit formats are taken as they are, even under systemd or on a terminal.
        ("json", {"JOURNAL_STREAM": "2049:131"}, False, STREAM, "json"),
        ("console", {}, False, None, "console"),
        ("journal", {}, True, None, "journal"),
        ("journal", {}, False, None, "journal"),
        # auto: a terminal wins, even with a (leaked) JOURNAL_STREAM.
        ("auto", {}, True, STREAM, "console"),
        ("auto", {"JOURNAL_STREAM": "2049:131"}, True, STREAM, "console"),
        # auto off a terminal: journal only when JOURNAL_STREAM names this very stream.
        ("auto", {}, False, STREAM, "json"),
        ("auto", {"JOURNAL_STREAM": "2049:131"}, False, STREAM, "journal"),
        ("auto", {"JOURNAL_STREAM": "2049:132"}, False, STREAM, "json"),
        ("auto", {"JOURNAL_STREAM": "7:131"}, False, STREAM, "json"),
        ("auto", {"JOURNAL_STREAM": "2049:131"}, False, None, "json"),
        ("auto", {"JOURNAL_STREAM": ""}, False, STREAM, "json"),
        ("auto", {"JOURNAL_STREAM": "2049"}, False, STREAM, "json"),
        ("auto", {"JOURNAL_STREAM": "dev:ino"}, False, STREAM, "json"),
        ("auto", {"JOURNAL_STREAM": "2049:131:5"}, False, STREAM, "json"),
    ],
)
def test_choose_format(
    configured: ConfiguredFormat,
    environ: dict[str, str],
    isatty: bool,
    stream_id: tuple[int, int] | None,
    expected: str,
) -> None:
    """What each [logging] format becomes for a given environment and stream."""
    assert choose_format(configured, environ, isatty=isatty, stream_id=stream_id) == expected


def test_detect_format_compares_journal_stream_with_the_real_stream(tmp_path: Path) -> None:
    """auto: journal for the file JOURNAL_STREAM names; json for another file or a StringIO."""
    with (tmp_path / "ours").open("w") as ours, (tmp_path / "other").open("w") as other:
        st = os.fstat(ours.fileno())
        environ = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert stream_identity(ours) == (st.st_dev, st.st_ino)
        assert detect_format("auto", environ, ours) == "journal"
        assert detect_format("auto", environ, other) == "json"
        assert detect_format("auto", {}, ours) == "json"
    assert stream_identity(io.StringIO()) is None
    assert detect_format("auto", environ, io.StringIO()) == "json"
