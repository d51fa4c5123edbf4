"""Table tests of configuration loading: defaults, one-line errors naming file and key, secrets."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from orchestrator import config
from orchestrator.config import (
    Settings,
    default_name_prefix,
    load_settings,
    parse_duration,
    redaction_secrets,
)
from orchestrator.domain.leadership import HaPolicy
from orchestrator.domain.model import ResourceType
from orchestrator.domain.wanted import FixedRange, LastDays, OpenEnded
from orchestrator.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "f00dbabef00dbabef00dbabef00dbabe"
KEY_SECRET = "s3cr3t-api-key-secret-value"
ENV = {"TWILIO_AUTH_TOKEN": TOKEN}
SID = "AC0123456789abcdef0123456789abcdef"
KEY_SID = "SK0123456789abcdef0123456789abcdef"

TWILIO = f"""
[twilio]
account_sid = "{SID}"
auth_token_env = "TWILIO_AUTH_TOKEN"
"""
EXPORT = """
[[exports]]
name = "calls"
resource_type = "Calls"
last_days = 7
"""
MINIMAL = TWILIO + EXPORT


def _write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Settings:
    # The default directories (/var/lib/orchestrator) need not be writable by whoever runs the
    # tests: the directory checks have tests of their own (test_directories_*).
    return load_settings(
        _write(tmp_path, text), environ=ENV if environ is None else environ, check_paths=False
    )


def test_example_file_loads() -> None:
    """config.example.toml at the repository root loads with the token from its env var."""
    settings = load_settings(REPO_ROOT / "config.example.toml", environ=ENV, check_paths=False)
    assert settings.credentials.password.get_secret_value() == TOKEN
    assert settings.credentials.method == "auth_token"
    assert settings.archive is not None
    assert {e.resource_type for e in settings.exports} == {
        ResourceType.MESSAGES,
        ResourceType.CALLS,
        ResourceType.CONFERENCES,
    }
    assert [type(s.period) for s in settings.export_specs()] == [FixedRange, OpenEnded, LastDays]


def test_example_file_documents_every_key() -> None:
    """Every key of every section appears in config.example.toml (set or commented out)."""
    text = (REPO_ROOT / "config.example.toml").read_text()
    written = set(re.findall(r"^(?:# )?([a-z_]+) = ", text, flags=re.MULTILINE))
    sections: list[type[BaseModel]] = [
        config.TwilioSettings,
        config.StateSettings,
        config.JobsSettings,
        config.PollingSettings,
        config.CleanupSettings,
        config.ArchiveSettings,
        config.LoggingSettings,
        config.ExportSettings,
    ]
    for section in sections:
        missing = set(section.model_fields) - written
        assert not missing, (section.__name__, missing)


def test_defaults(tmp_path: Path) -> None:
    """A minimal file gets every documented default."""
    settings = _load(tmp_path, MINIMAL)
    assert settings.twilio.base_url == "https://bulkexports.twilio.com"
    assert settings.twilio.requests_per_second == 10
    assert settings.twilio.max_concurrent_requests == 4
    assert settings.twilio.request_timeout == dt.timedelta(seconds=30)
    assert settings.state.directory == Path("/var/lib/orchestrator")
    assert (
        settings.state.database_url.get_secret_value()
        == "sqlite+aiosqlite:////var/lib/orchestrator/orchestrator.sqlite"
    )
    assert settings.jobs.name_prefix == default_name_prefix(SID, "/var/lib/orchestrator")
    assert (settings.jobs.max_days_per_job, settings.jobs.max_live_jobs) == (31, 10)
    assert (settings.jobs.max_resubmits, settings.jobs.daily_day_budget) == (3, 366)
    assert settings.jobs.resubmit_delay == dt.timedelta(minutes=15)
    assert settings.jobs.stale_after == dt.timedelta(hours=24)
    assert settings.polling.initial_delay == dt.timedelta(seconds=30)
    assert settings.polling.max_delay == dt.timedelta(minutes=30)
    assert (settings.polling.multiplier, settings.polling.jitter) == (2.0, 0.1)
    assert settings.cleanup.interval == dt.timedelta(minutes=10)
    assert settings.cleanup.delete_finished_jobs and settings.cleanup.delete_orphans
    assert settings.archive is None
    assert (settings.logging.level, settings.logging.format) == ("info", "auto")


def test_state_directory_from_systemd(tmp_path: Path) -> None:
    """$STATE_DIRECTORY (its first entry) is the default state directory; derived keys follow."""
    env = {**ENV, "STATE_DIRECTORY": "/var/lib/orch-a:/var/lib/other"}
    settings = _load(tmp_path, MINIMAL, env)
    assert settings.state.directory == Path("/var/lib/orch-a")
    assert settings.state.database_url.get_secret_value().endswith(
        "/var/lib/orch-a/orchestrator.sqlite"
    )
    assert settings.jobs.name_prefix == default_name_prefix(SID, "/var/lib/orch-a")
    assert settings.jobs.name_prefix != default_name_prefix(SID, "/var/lib/orchestrator")


def test_default_prefix_is_stable_and_valid() -> None:
    """The derived prefix is deterministic, 'orch-' + 8 hex digits."""
    prefix = default_name_prefix(SID, "/var/lib/orchestrator")
    assert prefix == default_name_prefix(SID, "/var/lib/orchestrator")
    assert prefix.startswith("orch-") and len(prefix) == 13
    int(prefix[5:], 16)


def test_relative_paths_follow_the_config_file(tmp_path: Path) -> None:
    """Relative state and archive directories are relative to the configuration file."""
    text = MINIMAL + '[state]\ndirectory = "state"\n[archive]\ndirectory = "files"\n'
    settings = _load(tmp_path, text)
    assert settings.state.directory == tmp_path / "state"
    assert settings.archive is not None and settings.archive.directory == tmp_path / "files"


def test_explicit_values_and_conversions(tmp_path: Path) -> None:
    """Explicit values are kept and convert to the domain's policies."""
    text = (
        MINIMAL
        + """
[jobs]
name_prefix = "acme.prod"
max_days_per_job = 7
max_live_jobs = 2
daily_day_budget = 100
stale_after = "1h30m"
[polling]
initial_delay = "10s"
max_delay = "5m"
multiplier = 3
jitter = 0
[cleanup]
delete_orphans = false
[logging]
level = "DEBUG"
format = "json"
"""
    )
    settings = _load(tmp_path, text)
    limits = settings.plan_limits()
    assert (limits.max_days_per_job, limits.max_live_jobs, limits.daily_day_budget) == (7, 2, 100)
    policy = settings.poll_policy()
    assert (policy.initial, policy.max, policy.multiplier, policy.jitter) == (
        dt.timedelta(seconds=10),
        dt.timedelta(minutes=5),
        3.0,
        0.0,
    )
    cleanup = settings.cleanup_policy()
    assert cleanup.stale_after == dt.timedelta(hours=1, minutes=30)
    assert cleanup.delete_finished and not cleanup.delete_orphans and not cleanup.archive_enabled
    assert settings.jobs.name_prefix == "acme.prod"
    assert settings.logging.level == "debug"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'start_day = "2024-01-01"\nend_day = "2024-01-31"',
            FixedRange(dt.date(2024, 1, 1), dt.date(2024, 1, 31)),
        ),
        (
            "start_day = 2024-01-01\nend_day = 2024-01-01",
            FixedRange(dt.date(2024, 1, 1), dt.date(2024, 1, 1)),
        ),
        ("start_day = 2024-01-01", OpenEnded(dt.date(2024, 1, 1))),
        ("last_days = 1", LastDays(1)),
    ],
)
def test_export_periods(tmp_path: Path, text: str, expected: object) -> None:
    """String and TOML dates both work; each of the three period forms maps to its spec."""
    config = TWILIO + f'[[exports]]\nname = "x"\nresource_type = "Messages"\n{text}\n'
    (spec,) = _load(tmp_path, config).export_specs()
    assert spec.period == expected and spec.resource_type is ResourceType.MESSAGES


def _export(body: str, name: str = "x") -> str:
    return f'\n[[exports]]\nname = "{name}"\nresource_type = "Calls"\n{body}\n'


BAD_CONFIGS = [
    # (id, file text, environ, key, fragment of the message)
    ("bad-toml", MINIMAL + "[jobs\n", ENV, "", "invalid TOML"),
    ("no-twilio", EXPORT, ENV, "twilio", "is required"),
    (
        "missing-account-sid",
        '[twilio]\nauth_token_env = "T"\n' + EXPORT,
        ENV,
        "twilio.account_sid",
        "is required",
    ),
    ("bad-account-sid", MINIMAL.replace(SID, "AC123"), ENV, "twilio.account_sid", "32 hex digits"),
    ("no-exports", TWILIO, ENV, "exports", "at least one [[exports]]"),
    ("empty-exports", "exports = []\n" + TWILIO, ENV, "exports", "at least one [[exports]]"),
    (
        "bad-date",
        TWILIO
        + _export("last_days = 3", "a")
        + _export('start_day = "2024-02-01"\nend_day = "2024-02-30"', "b"),
        ENV,
        "exports[1].end_day",
        "'2024-02-30' is not a real calendar date",
    ),
    (
        "bad-day-format",
        TWILIO + _export('start_day = "2024/01/01"'),
        ENV,
        "exports[0].start_day",
        "yyyy-mm-dd",
    ),
    (
        "date-time",
        TWILIO + _export("start_day = 2024-01-01T00:00:00Z"),
        ENV,
        "exports[0].start_day",
        "date-time",
    ),
    (
        "end-before-start",
        TWILIO + _export('start_day = "2024-02-01"\nend_day = "2024-01-31"'),
        ENV,
        "exports[0].end_day",
        "2024-01-31 is before start_day 2024-02-01",
    ),
    (
        "end-without-start",
        TWILIO + _export('end_day = "2024-01-31"'),
        ENV,
        "exports[0].start_day",
        "needs a start_day",
    ),
    ("no-period", TWILIO + _export(""), ENV, "exports[0].start_day", "last_days"),
    (
        "fixed-and-last-days",
        TWILIO + _export('start_day = "2024-01-01"\nend_day = "2024-01-31"\nlast_days = 3'),
        ENV,
        "exports[0].last_days",
        "not both",
    ),
    (
        "last-days-zero",
        TWILIO + _export("last_days = 0"),
        ENV,
        "exports[0].last_days",
        "greater than or equal to 1",
    ),
    (
        "unknown-resource-type",
        TWILIO + '[[exports]]\nname = "x"\nresource_type = "messages"\nlast_days = 1\n',
        ENV,
        "exports[0].resource_type",
        "'messages' is not one of Messages, Calls, Conferences, Participants",
    ),
    (
        "duplicate-names",
        TWILIO
        + _export("last_days = 3", "calls")
        + _export("last_days = 9", "msgs")
        + _export("last_days = 5", "calls"),
        ENV,
        "exports[2].name",
        "'calls' is already the name of exports[0]",
    ),
    (
        "duplicate-names-differing-in-case",
        TWILIO + _export("last_days = 3", "calls") + _export("last_days = 5", "Calls"),
        ENV,
        "exports[1].name",
        "already the name of exports[0] ('calls')",
    ),
    (
        "bad-export-name",
        TWILIO + _export("last_days = 3", "has space"),
        ENV,
        "exports[0].name",
        "1-64 characters",
    ),
    ("unknown-section", MINIMAL + "[jobz]\nmax_live_jobs = 3\n", ENV, "jobz", "unknown key"),
    (
        "unknown-key",
        MINIMAL + '[polling]\nintial_delay = "10s"\n',
        ENV,
        "polling.intial_delay",
        "unknown key; did you mean 'initial_delay'?",
    ),
    (
        "unknown-export-key",
        TWILIO + _export("last_days = 3\nday = 4"),
        ENV,
        "exports[0].day",
        "unknown key",
    ),
    (
        "bad-duration",
        MINIMAL + '[polling]\ninitial_delay = "30 seconds"\n',
        ENV,
        "polling.initial_delay",
        "not a duration",
    ),
    (
        "duration-without-unit",
        MINIMAL + "[polling]\nmax_delay = 30\n",
        ENV,
        "polling.max_delay",
        "not a duration",
    ),
    (
        "zero-duration",
        MINIMAL + '[jobs]\nstale_after = "0s"\n',
        ENV,
        "jobs.stale_after",
        "longer than zero",
    ),
    (
        "initial-after-max",
        MINIMAL + '[polling]\ninitial_delay = "1h"\nmax_delay = "30m"\n',
        ENV,
        "polling.max_delay",
        "initial_delay",
    ),
    ("jitter-one", MINIMAL + "[polling]\njitter = 1.0\n", ENV, "polling.jitter", "less than 1"),
    (
        "multiplier-below-one",
        MINIMAL + "[polling]\nmultiplier = 0.5\n",
        ENV,
        "polling.multiplier",
        "greater than or equal to 1",
    ),
    (
        "int-as-string",
        MINIMAL + '[jobs]\nmax_days_per_job = "31"\n',
        ENV,
        "jobs.max_days_per_job",
        "valid integer",
    ),
    (
        "bool-as-int",
        MINIMAL + "[jobs]\nmax_live_jobs = true\n",
        ENV,
        "jobs.max_live_jobs",
        "valid integer",
    ),
    (
        "prefix-ending-in-dash",
        MINIMAL + '[jobs]\nname_prefix = "orch-"\n',
        ENV,
        "jobs.name_prefix",
        "not ending with '-'",
    ),
    (
        "prefix-too-long",
        MINIMAL + f'[jobs]\nname_prefix = "{"p" * 33}"\n',
        ENV,
        "jobs.name_prefix",
        "1-32",
    ),
    (
        "archive-without-directory",
        MINIMAL + "[archive]\nmax_concurrent_downloads = 2\n",
        ENV,
        "archive.directory",
        "is required",
    ),
    (
        "archive-template-field",
        MINIMAL + '[archive]\ndirectory = "/a"\npath_template = "{resource_type}/{date}.gz"\n',
        ENV,
        "archive.path_template",
        "unknown field {date}",
    ),
    (
        "archive-template-escapes",
        MINIMAL + '[archive]\ndirectory = "/a"\npath_template = "../{resource_type}/{day}.gz"\n',
        ENV,
        "archive.path_template",
        "relative path",
    ),
    ("log-format", MINIMAL + '[logging]\nformat = "yaml"\n', ENV, "logging.format", "'json'"),
    (
        "database-url",
        MINIMAL + '[state]\ndatabase_url = "mysql://u:p@h/db"\n',
        ENV,
        "state.database_url",
        "sqlite+aiosqlite://",
    ),
    ("duplicate-table", MINIMAL + "[twilio]\n", ENV, "", "invalid TOML"),
    (
        "base-url",
        MINIMAL.replace("auth_token_env", 'base_url = "ftp://x"\nauth_token_env'),
        ENV,
        "twilio.base_url",
        "http(s) URL",
    ),
    (
        "base-url-with-credentials",
        MINIMAL.replace("auth_token_env", 'base_url = "https://u:pw@x"\nauth_token_env'),
        ENV,
        "twilio.base_url",
        "must not contain credentials",
    ),
    (
        "env-var-unset",
        MINIMAL,
        {},
        "twilio.auth_token_env",
        "environment variable TWILIO_AUTH_TOKEN is not set",
    ),
    ("env-var-empty", MINIMAL, {"TWILIO_AUTH_TOKEN": "  "}, "twilio.auth_token_env", "is empty"),
    (
        "token-file-unreadable",
        f'[twilio]\naccount_sid = "{SID}"\nauth_token_file = "/nonexistent/twilio-token"\n'
        + EXPORT,
        ENV,
        "twilio.auth_token_file",
        "cannot read /nonexistent/twilio-token",
    ),
    (
        "env-and-file",
        TWILIO + 'auth_token_file = "/x"\n' + EXPORT,
        ENV,
        "twilio.auth_token_file",
        "not both",
    ),
    (
        "no-credentials",
        f'[twilio]\naccount_sid = "{SID}"\n' + EXPORT,
        ENV,
        "twilio.auth_token_env",
        "no credentials",
    ),
    (
        "token-and-api-key",
        TWILIO + f'api_key_sid = "{KEY_SID}"\napi_key_secret_env = "K"\n' + EXPORT,
        ENV,
        "twilio.api_key_sid",
        "one auth method",
    ),
    (
        "api-key-without-secret",
        f'[twilio]\naccount_sid = "{SID}"\napi_key_sid = "{KEY_SID}"\n' + EXPORT,
        ENV,
        "twilio.api_key_secret_env",
        "needs",
    ),
    (
        "bad-env-name",
        MINIMAL.replace('"TWILIO_AUTH_TOKEN"', '"TWILIO-TOKEN"'),
        ENV,
        "twilio.auth_token_env",
        "environment variable name",
    ),
]


@pytest.mark.parametrize(
    ("text", "environ", "key", "fragment"),
    [case[1:] for case in BAD_CONFIGS],
    ids=[case[0] for case in BAD_CONFIGS],
)
def test_bad_config_is_one_line_naming_file_and_key(
    tmp_path: Path, text: str, environ: dict[str, str], key: str, fragment: str
) -> None:
    """Each bad configuration raises one ConfigError line naming the file and the dotted key."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ=environ)
    message = str(info.value)
    assert "\n" not in message
    assert info.value.source == str(path)
    assert info.value.key == key
    assert message.startswith(f"{path}:{key}: " if key else f"{path}: ")
    assert fragment in message


def test_unreadable_config_file(tmp_path: Path) -> None:
    """A missing configuration file is one line naming the file."""
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match=r"absent\.toml: cannot read the file"):
        load_settings(path, environ=ENV)


@pytest.mark.parametrize(
    ("configured", "credentials_dir", "file_at"),
    [
        # Relative name with $CREDENTIALS_DIRECTORY: read from there (systemd LoadCredential).
        ("twilio-token", "creds", "creds/twilio-token"),
        # Relative name without it: read next to the configuration file.
        ("twilio-token", None, "twilio-token"),
        # Absolute path: read as is, whatever $CREDENTIALS_DIRECTORY says.
        ("ABS/elsewhere/token", "creds", "elsewhere/token"),
    ],
)
def test_secret_file_lookup(
    tmp_path: Path, configured: str, credentials_dir: str | None, file_at: str
) -> None:
    """Secret files are found by the documented rule; trailing newlines are stripped."""
    secret_path = tmp_path / file_at
    secret_path.parent.mkdir(parents=True, exist_ok=True)
    secret_path.write_text(TOKEN + "\n")
    configured = configured.replace("ABS", str(tmp_path))
    environ = (
        {}
        if credentials_dir is None
        else {"CREDENTIALS_DIRECTORY": str(tmp_path / credentials_dir)}
    )
    text = f'[twilio]\naccount_sid = "{SID}"\nauth_token_file = "{configured}"\n' + EXPORT
    settings = _load(tmp_path, text, environ)
    assert settings.credentials.password.get_secret_value() == TOKEN
    assert settings.credentials.origin == f"file {secret_path}"


def test_credentials_directory_has_no_fallback(tmp_path: Path) -> None:
    """With $CREDENTIALS_DIRECTORY set, a file beside the config never replaces a missing one."""
    (tmp_path / "twilio-token").write_text(TOKEN)
    (tmp_path / "creds").mkdir()
    text = f'[twilio]\naccount_sid = "{SID}"\nauth_token_file = "twilio-token"\n' + EXPORT
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text, {"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")})
    assert info.value.key == "twilio.auth_token_file"
    assert str(tmp_path / "creds" / "twilio-token") in str(info.value)


def test_api_key_from_file(tmp_path: Path) -> None:
    """An API key SID with its secret from a file is the basic-auth pair."""
    (tmp_path / "key").write_text(KEY_SECRET)
    text = (
        f'[twilio]\naccount_sid = "{SID}"\napi_key_sid = "{KEY_SID}"\napi_key_secret_file = "key"\n'
    )
    settings = _load(tmp_path, text + EXPORT, {})
    assert settings.credentials.method == "api_key"
    assert settings.credentials.username == KEY_SID
    assert redaction_secrets(settings) == [KEY_SECRET]


def test_secrets_absent_from_repr_and_str(tmp_path: Path) -> None:
    """Neither the token nor a database password shows in repr() or str() of the settings."""
    text = MINIMAL + '[state]\ndatabase_url = "postgresql+asyncpg://orch:dbpassw0rd@db/orch"\n'
    settings = _load(tmp_path, text)
    for rendered in (
        repr(settings),
        str(settings),
        repr(settings.credentials),
        str(settings.state),
    ):
        assert TOKEN not in rendered
        assert "dbpassw0rd" not in rendered
    assert redaction_secrets(settings) == [TOKEN, "dbpassw0rd"]


@pytest.mark.parametrize(
    "text",
    [
        # The token written where a secret must never be.
        MINIMAL.replace("[twilio]", f'[twilio]\nauth_token = "{TOKEN}"'),
        # The token pasted where the variable's name belongs.
        MINIMAL.replace('"TWILIO_AUTH_TOKEN"', f'"{TOKEN}"'),
        # The token pasted as the account SID.
        MINIMAL.replace(SID, TOKEN),
        # The token as the name of a file that does not exist.
        f'[twilio]\naccount_sid = "{SID}"\nauth_token_file = "/{TOKEN}"\n' + EXPORT,
    ],
    ids=["auth-token-key", "token-as-env-name", "token-as-sid", "token-as-file-name"],
)
def test_secret_absent_from_errors(tmp_path: Path, text: str) -> None:
    """A token misplaced in the file is never echoed in the error (unless as a path it names)."""
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    message = str(info.value)
    if "cannot read" not in message:
        assert TOKEN not in message
    assert "\n" not in message


def test_secret_from_environment_absent_from_errors(tmp_path: Path) -> None:
    """A later error in the file never includes the already-read token."""
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, MINIMAL + '[polling]\njitter = "x"\n')
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("30s", dt.timedelta(seconds=30)),
        ("15m", dt.timedelta(minutes=15)),
        ("24h", dt.timedelta(hours=24)),
        ("7d", dt.timedelta(days=7)),
        ("1h30m", dt.timedelta(hours=1, minutes=30)),
        ("1d2h3m4s", dt.timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("0s", dt.timedelta(0)),
    ],
)
def test_parse_duration(raw: str, expected: dt.timedelta) -> None:
    """Durations with units d, h, m, s (in that order) parse to timedelta."""
    assert parse_duration(raw) == expected


@pytest.mark.parametrize("raw", ["", "30", "30 s", "1m1h", "1.5h", "-1s", "s", 30, None, True])
def test_parse_duration_rejects(raw: object) -> None:
    """Anything else is a ValueError saying what a duration looks like."""
    with pytest.raises(ValueError, match="is not a duration like"):
        parse_duration(raw)


# ---------------------------------------------------------------------------------- issue 11:
# check-config says OK only to what run can use; no input gives a traceback.

ARCHIVE = '[archive]\ndirectory = "{directory}"\n'


@pytest.mark.parametrize(
    ("section", "line", "key", "fragment"),
    [
        ("twilio", "requests_per_second = inf", "twilio.requests_per_second", "finite"),
        ("twilio", "requests_per_second = nan", "twilio.requests_per_second", "finite"),
        ("twilio", "requests_per_second = 1e9", "twilio.requests_per_second", "1000"),
        ("polling", "multiplier = inf", "polling.multiplier", "finite"),
        ("polling", "multiplier = 1e300", "polling.multiplier", "10"),
        ("polling", "jitter = nan", "polling.jitter", "finite"),
        ("twilio", 'request_timeout = "1000000000d"', "twilio.request_timeout", "far too long"),
        ("twilio", 'request_timeout = "2h"', "twilio.request_timeout", "maximum, 1h"),
        ("twilio", f'request_timeout = "{"9" * 5000}s"', "twilio.request_timeout", "too long"),
        ("polling", 'initial_delay = "99999999d"', "polling.initial_delay", "maximum, 30d"),
        ("polling", 'max_delay = "99999999d"', "polling.max_delay", "maximum, 30d"),
        ("polling", 'max_eta_wait = "99999999d"', "polling.max_eta_wait", "maximum, 30d"),
        ("jobs", 'stale_after = "31d"', "jobs.stale_after", "maximum, 30d"),
        ("jobs", 'resubmit_delay = "99999999d"', "jobs.resubmit_delay", "maximum, 30d"),
        ("cleanup", 'interval = "1000000000d"', "cleanup.interval", "far too long"),
        ("cleanup", 'orphan_interval = "99999999d"', "cleanup.orphan_interval", "maximum"),
    ],
)
def test_numbers_are_finite_and_durations_bounded(
    tmp_path: Path, section: str, line: str, key: str, fragment: str
) -> None:
    """inf/nan, huge rates and durations past their bound are one ConfigError naming the key."""
    text = (
        TWILIO + line + "\n" + EXPORT if section == "twilio" else MINIMAL + f"[{section}]\n{line}\n"
    )
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert info.value.key == key
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_durations_at_their_bounds_load(tmp_path: Path) -> None:
    """The documented maxima themselves are accepted."""
    settings = _load(
        tmp_path,
        TWILIO
        + 'request_timeout = "1h"\n'
        + EXPORT
        + '[polling]\nmax_delay = "30d"\nmax_eta_wait = "30d"\n'
        + '[jobs]\nstale_after = "30d"\n',
    )
    assert settings.twilio.request_timeout == dt.timedelta(hours=1)
    assert settings.polling.max_delay == dt.timedelta(days=30)
    assert settings.jobs.stale_after == dt.timedelta(days=30)


@pytest.mark.parametrize(
    "template",
    [
        "{resource_type}/{day!r}.gz",
        "{resource_type}/{day:>12}.gz",
        "{resource_type}/.{day}.gz",
        "{resource_type}//{day}.gz",
        "{resource_type}/{day}\\\\x.gz",
    ],
)
def test_path_template_is_rendered_by_the_archive_function(tmp_path: Path, template: str) -> None:
    """A template archive_path would refuse (conversion, format spec, hidden or empty part,
    backslash) is refused at load, naming archive.path_template."""
    text = MINIMAL + ARCHIVE.format(directory=tmp_path / "a") + f"path_template = '{template}'\n"
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert info.value.key == "archive.path_template", str(info.value)


def test_config_file_size_is_capped(tmp_path: Path) -> None:
    """A file over 1 MiB (or /dev/zero) is refused unread, one line naming the file."""
    big = _write(tmp_path, MINIMAL + "#" * (config.MAX_CONFIG_BYTES + 1) + "\n")
    with pytest.raises(ConfigError, match="larger than 1 MiB") as info:
        load_settings(big, environ=ENV)
    assert info.value.source == str(big)
    with pytest.raises(ConfigError, match="larger than 1 MiB"):
        load_settings(Path("/dev/zero"), environ=ENV)


@pytest.mark.parametrize(
    "value", ["[" * 5000 + "]" * 5000, "{a = " * 3000 + "1" + "}" * 3000], ids=["array", "table"]
)
def test_deeply_nested_toml_is_one_line(tmp_path: Path, value: str) -> None:
    """A value nested thousands deep is a ConfigError, not a RecursionError."""
    with pytest.raises(ConfigError, match="nested too deeply"):
        _load(tmp_path, f"x = {value}\n" + MINIMAL)


def test_directories_writable_or_creatable_load(tmp_path: Path) -> None:
    """Directories that do not exist yet under a writable one load, and nothing is created."""
    text = MINIMAL.replace(
        "[twilio]", f'[state]\ndirectory = "{tmp_path / "s" / "t"}"\n[twilio]'
    ) + ARCHIVE.format(directory=tmp_path / "arch" / "ive")
    load_settings(_write(tmp_path, text), environ=ENV)
    assert not (tmp_path / "s").exists() and not (tmp_path / "arch").exists()


@pytest.mark.parametrize(
    ("state", "archive", "key", "fragment"),
    [
        ("file/state", None, "state.directory", "cannot be created: {tmp}/file is not a directory"),
        ("file", None, "state.directory", "{tmp}/file is not a directory"),
        ("ok", "file", "archive.directory", "{tmp}/file is not a directory"),
        ("ok", "file/archive", "archive.directory", "cannot be created"),
    ],
)
def test_directories_that_cannot_be_used_are_config_errors(
    tmp_path: Path, state: str, archive: str | None, key: str, fragment: str
) -> None:
    """A state or archive directory that is (or lies under) a regular file: a ConfigError."""
    (tmp_path / "file").write_text("not a directory")
    text = MINIMAL.replace("[twilio]", f'[state]\ndirectory = "{tmp_path / state}"\n[twilio]')
    if archive is not None:
        text += ARCHIVE.format(directory=tmp_path / archive)
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, text), environ=ENV)
    assert info.value.key == key
    assert fragment.format(tmp=tmp_path) in str(info.value)


def test_database_directory_is_checked_too(tmp_path: Path) -> None:
    """A SQLite database_url outside the state directory: its own directory is checked."""
    (tmp_path / "file").write_text("")
    url = f"sqlite+aiosqlite:///{tmp_path / 'file' / 'db.sqlite'}"
    text = MINIMAL.replace(
        "[twilio]",
        f'[state]\ndirectory = "{tmp_path / "s"}"\ndatabase_url = "{url}"\n[twilio]',
    )
    with pytest.raises(ConfigError) as info:
        load_settings(_write(tmp_path, text), environ=ENV)
    assert info.value.key == "state.database_url"


def test_ambiguous_create_keys_map_onto_their_policy(tmp_path: Path) -> None:
    """The [jobs] ambiguous keys become Policies.ambiguous; a bad one names its key."""
    body = MINIMAL + (
        '\n[jobs]\nambiguous_lookups = 5\nambiguous_first_lookup = "2m"\n'
        'ambiguous_max_lookup = "30m"\nmax_ambiguous_creates_per_day = 2\n'
    )
    policy = _load(tmp_path, body).policies.ambiguous
    assert (policy.lookups, policy.max_creates_per_day) == (5, 2)
    assert (policy.first_lookup_after, policy.max_lookup_after) == (
        dt.timedelta(minutes=2),
        dt.timedelta(minutes=30),
    )
    bad = body.replace('ambiguous_max_lookup = "30m"', 'ambiguous_max_lookup = "1m"')
    with pytest.raises(ConfigError, match=r"jobs\.ambiguous_max_lookup: must not be below"):
        _load(tmp_path, bad)


def test_ha_keys_map_onto_their_policy(tmp_path: Path) -> None:
    """[ha] takeover_interval and lease become the HaPolicy; defaults when the section is absent."""
    assert _load(tmp_path, MINIMAL).ha.ha_policy() == HaPolicy()
    policy = _load(
        tmp_path, MINIMAL + '\n[ha]\ntakeover_interval = "2s"\nlease = "30s"\n'
    ).ha.ha_policy()
    assert (policy.takeover_seconds, policy.lease_seconds) == (2, 30)


@pytest.mark.parametrize(
    ("body", "key", "fragment"),
    [
        ('takeover_interval = "0s"', "ha.takeover_interval", "longer than zero"),
        ('takeover_interval = "2h"', "ha.takeover_interval", "between 1 s and 3600 s"),
        ('lease = "1s"', "ha.lease", "between 3 s and 600 s"),
        ('lease = "ten"', "ha.lease", "duration"),
        ("takeover = 5", "ha.takeover", "takeover_interval"),
    ],
)
def test_bad_ha_keys_are_one_line_naming_the_key(
    tmp_path: Path, body: str, key: str, fragment: str
) -> None:
    """A bad [ha] value is one ConfigError naming its key."""
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, MINIMAL + f"\n[ha]\n{body}\n")
    assert info.value.key == key
    assert fragment in str(info.value)
