"""Command-line flags of ``orchestrator simulator`` and serving from them.

Default credentials (a local twin, not secrets):

- Account SID ``AC00000000000000000000000000000000`` with Auth Token ``simulator-auth-token``
- API key ``SK00000000000000000000000000000000`` with secret ``simulator-api-key-secret``

``--api-key SID:SECRET`` adds keys; ``--account-sid`` / ``--auth-token`` replace the account's.
Every flag's value lands under a ``simulator_`` destination so it cannot clash with the
other subcommands' options.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys

from orchestrator.clock import Clock, ScaledClock, SystemClock
from orchestrator.domain.model import ResourceType, parse_day
from orchestrator.errors import InvalidInput
from orchestrator.simulator.server import running_simulator
from orchestrator.simulator.settings import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_API_KEY_SECRET,
    DEFAULT_API_KEY_SID,
    DEFAULT_AUTH_TOKEN,
    DayRef,
    FaultSettings,
    SimulatorSettings,
)

DEFAULT_PORT = 8765


def _fraction(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{raw} is not within [0, 1]")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{raw} is negative")
    return value


def _range(raw: str) -> tuple[float, float]:
    low, sep, high = raw.partition(",")
    try:
        pair = (float(low), float(high if sep else low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not LOW,HIGH") from None
    return pair


def _day_ref(raw: str) -> DayRef:
    kind, sep, day = raw.partition(":")
    try:
        if not sep:
            raise InvalidInput("day", "expected TYPE:YYYY-MM-DD")
        return ResourceType.parse(kind), parse_day(day)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(f"{raw!r}: {exc}") from None


def _api_key(raw: str) -> tuple[str, str]:
    sid, sep, secret = raw.partition(":")
    if not sep or not sid.startswith("SK") or not secret:
        raise argparse.ArgumentTypeError("expected SK...:SECRET")
    return sid, secret


def _retry_after(raw: str) -> float | None:
    return None if raw.lower() == "none" else float(raw)


# Each fault fraction flag: name, what a hit does. Every one defaults to 0 (off).
_FAULT_FRACTIONS = (
    ("failed-day", "share of days that end Failed after their ErrorDuringRun retries"),
    ("error-during-run", "share of days that pass through ErrorDuringRun once, then complete"),
    ("stuck-job", "share of jobs that stay Submitted forever (holding no running slot)"),
    ("rate-limit", "share of API requests answered 429 (code 20429), never processed"),
    (
        "server-error",
        "share of API requests answered 500/503 before processing, a seeded half as proxy HTML",
    ),
    ("slow", "share of API answers held back --slow-seconds after the request was processed"),
    ("drop", "share of API requests whose connection is closed before processing"),
    (
        "drop-after",
        "share of API requests processed (a job may be created), then closed unanswered",
    ),
    ("malformed-json", "share of 2xx JSON answers whose body is cut short"),
    ("truncated-file", "share of day-file downloads served as a truncated gzip"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's flags to ``parser`` (destinations are prefixed ``simulator_``).

    Every flag has a help text that names its default.
    """
    serve = parser.add_argument_group("serving")
    serve.add_argument(
        "--host",
        dest="simulator_host",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="address to listen on (default: %(default)s)",
    )
    serve.add_argument(
        "--port",
        dest="simulator_port",
        type=int,
        default=DEFAULT_PORT,
        metavar="PORT",
        help="port to listen on; 0 picks a free one (default: %(default)s)",
    )
    serve.add_argument(
        "--speed",
        dest="simulator_speed",
        type=float,
        default=1.0,
        metavar="FACTOR",
        help="simulated seconds per real second; 1 is the wall clock (default: %(default)s)",
    )
    serve.add_argument(
        "--clock-start",
        dest="simulator_clock_start",
        type=dt.datetime.fromisoformat,
        default=None,
        metavar="WHEN",
        help=(
            "simulated time at start (ISO 8601, UTC if naive); share it with the daemon's clock "
            "(default: the current time)"
        ),
    )
    serve.add_argument(
        "--clock-anchor",
        dest="simulator_clock_anchor",
        type=float,
        default=None,
        metavar="MONOTONIC",
        help=(
            "time.monotonic() value the scaled clock starts from; share it with the daemon "
            "(default: the moment the simulator starts)"
        ),
    )
    serve.add_argument(
        "--seed",
        dest="simulator_seed",
        type=int,
        default=0,
        metavar="N",
        help=(
            "seed of every simulated choice (timings, quirks, faults, file contents); the same "
            "seed gives the same run (default: %(default)s)"
        ),
    )
    serve.add_argument(
        "--account-sid",
        dest="simulator_account_sid",
        default=DEFAULT_ACCOUNT_SID,
        metavar="AC...",
        help="Account SID accepted as the basic-auth user name (default: %(default)s)",
    )
    serve.add_argument(
        "--auth-token",
        dest="simulator_auth_token",
        default=DEFAULT_AUTH_TOKEN,
        metavar="TOKEN",
        help="Auth Token accepted with --account-sid (default: %(default)s)",
    )
    serve.add_argument(
        "--api-key",
        dest="simulator_api_keys",
        type=_api_key,
        action="append",
        default=[],
        metavar="SK...:SECRET",
        help=(
            "also accept this API key SID and secret; repeatable (default: none; the built-in "
            f"key {DEFAULT_API_KEY_SID} / {DEFAULT_API_KEY_SECRET} is always accepted)"
        ),
    )

    life = parser.add_argument_group("lifecycle (in simulated time)")
    life.add_argument(
        "--max-running-jobs",
        dest="simulator_max_running_jobs",
        type=int,
        default=2,
        metavar="N",
        help="jobs that run at once; later ones wait in the queue (default: %(default)s)",
    )
    life.add_argument(
        "--job-base-seconds",
        dest="simulator_job_base_seconds",
        type=float,
        default=30,
        metavar="SECONDS",
        help="time a job spends starting before its first day (default: %(default)s)",
    )
    life.add_argument(
        "--day-seconds",
        dest="simulator_day_seconds",
        type=_range,
        default=(5.0, 20.0),
        metavar="LOW,HIGH",
        help="time each day of a job takes, drawn between LOW and HIGH (default: 5,20)",
    )
    life.add_argument(
        "--retry-delay-seconds",
        dest="simulator_retry_delay",
        type=float,
        default=60,
        metavar="SECONDS",
        help="time before a day in ErrorDuringRun is tried again (default: %(default)s)",
    )
    life.add_argument(
        "--max-day-attempts",
        dest="simulator_max_day_attempts",
        type=int,
        default=3,
        metavar="N",
        help="failed attempts after which a day is Failed (default: %(default)s)",
    )
    life.add_argument(
        "--eta-noise",
        dest="simulator_eta_noise",
        type=_fraction,
        default=0.3,
        metavar="FRACTION",
        help=(
            "relative noise on estimated_completion_time; 0 gives exact estimates "
            "(default: %(default)s)"
        ),
    )
    life.add_argument(
        "--job-ttl-hours",
        dest="simulator_job_ttl_hours",
        type=float,
        default=7 * 24,
        metavar="HOURS",
        help="hours a finished job stays listed before it is gone (default: %(default)s, 7 days)",
    )
    life.add_argument(
        "--url-ttl-seconds",
        dest="simulator_url_ttl_seconds",
        type=float,
        default=3600,
        metavar="SECONDS",
        help="lifetime of the signed URL a day's 307 answer points to (default: %(default)s)",
    )

    files = parser.add_argument_group("day files")
    files.add_argument(
        "--records-per-day",
        dest="simulator_records_per_day",
        type=_range,
        default=(5.0, 50.0),
        metavar="LOW,HIGH",
        help="records in each non-empty day file, drawn between LOW and HIGH (default: 5,50)",
    )
    files.add_argument(
        "--day-target-bytes",
        dest="simulator_day_target_bytes",
        type=int,
        default=None,
        metavar="BYTES",
        help=(
            "grow every non-empty day file to about this many gzip bytes, streamed "
            "(default: off, files hold --records-per-day records)"
        ),
    )
    files.add_argument(
        "--empty-day-fraction",
        dest="simulator_empty_day_fraction",
        type=_fraction,
        default=0.1,
        metavar="FRACTION",
        help="share of days that complete with no records (default: %(default)s)",
    )

    faults = parser.add_argument_group("faults (seeded; fractions within [0, 1])")
    for name, what in _FAULT_FRACTIONS:
        dest = "simulator_" + name.replace("-", "_") + "_fraction"
        faults.add_argument(
            f"--{name}-fraction",
            dest=dest,
            type=_fraction,
            default=0.0,
            metavar="FRACTION",
            help=f"{what} (default: %(default)s)",
        )
    faults.add_argument(
        "--stuck-first-jobs",
        dest="simulator_stuck_first_jobs",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="the first N jobs stay Submitted forever (default: %(default)s)",
    )
    faults.add_argument(
        "--retry-after",
        dest="simulator_retry_after",
        type=_retry_after,
        default=1.0,
        metavar="SECONDS",
        help="Retry-After seconds on 429s, or 'none' to send no header (default: %(default)s)",
    )
    faults.add_argument(
        "--slow-seconds",
        dest="simulator_slow_seconds",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="real seconds a slow answer is held back (default: %(default)s)",
    )
    faults.add_argument(
        "--daily-day-quota",
        dest="simulator_daily_day_quota",
        type=int,
        default=None,
        metavar="DAYS",
        help=(
            "days that may be requested per UTC day; a create beyond it answers 400 "
            "(default: unlimited)"
        ),
    )
    faults.add_argument(
        "--fail-first-attempt-day",
        dest="simulator_fail_first_attempt_days",
        type=_day_ref,
        action="append",
        default=[],
        metavar="TYPE:YYYY-MM-DD",
        help=(
            "the first job covering this day fails it, a later job completes it; repeatable "
            "(default: none)"
        ),
    )
    faults.add_argument(
        "--always-fail-day",
        dest="simulator_always_fail_days",
        type=_day_ref,
        action="append",
        default=[],
        metavar="TYPE:YYYY-MM-DD",
        help="every job covering this day fails it; repeatable (default: none)",
    )


def _clock(args: argparse.Namespace) -> Clock:
    speed: float = args.simulator_speed
    start: dt.datetime | None = args.simulator_clock_start
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=dt.UTC)
    if speed == 1.0 and start is None:
        return SystemClock()
    return ScaledClock(speed, start=start, anchor=args.simulator_clock_anchor)


def settings_from_args(args: argparse.Namespace) -> SimulatorSettings:
    """The SimulatorSettings the parsed flags describe."""
    faults = FaultSettings(
        failed_day_fraction=args.simulator_failed_day_fraction,
        error_during_run_fraction=args.simulator_error_during_run_fraction,
        fail_first_attempt_days=frozenset(args.simulator_fail_first_attempt_days),
        always_fail_days=frozenset(args.simulator_always_fail_days),
        stuck_job_fraction=args.simulator_stuck_job_fraction,
        stuck_first_jobs=args.simulator_stuck_first_jobs,
        rate_limit_fraction=args.simulator_rate_limit_fraction,
        retry_after_seconds=args.simulator_retry_after,
        server_error_fraction=args.simulator_server_error_fraction,
        slow_fraction=args.simulator_slow_fraction,
        slow_seconds=args.simulator_slow_seconds,
        drop_fraction=args.simulator_drop_fraction,
        drop_after_fraction=args.simulator_drop_after_fraction,
        malformed_json_fraction=args.simulator_malformed_json_fraction,
        truncated_file_fraction=args.simulator_truncated_file_fraction,
        daily_day_quota=args.simulator_daily_day_quota,
    )
    api_keys = {DEFAULT_API_KEY_SID: DEFAULT_API_KEY_SECRET, **dict(args.simulator_api_keys)}
    low, high = args.simulator_records_per_day
    return SimulatorSettings(
        account_sid=args.simulator_account_sid,
        auth_token=args.simulator_auth_token,
        api_keys=api_keys,
        seed=args.simulator_seed,
        clock=_clock(args),
        faults=faults,
        max_running_jobs=args.simulator_max_running_jobs,
        job_base_seconds=args.simulator_job_base_seconds,
        day_seconds=args.simulator_day_seconds,
        retry_delay_seconds=args.simulator_retry_delay,
        max_day_attempts=args.simulator_max_day_attempts,
        eta_noise=args.simulator_eta_noise,
        finished_job_ttl=dt.timedelta(hours=args.simulator_job_ttl_hours),
        download_url_ttl=dt.timedelta(seconds=args.simulator_url_ttl_seconds),
        records_per_day=(int(low), int(high)),
        day_target_bytes=args.simulator_day_target_bytes,
        empty_day_fraction=args.simulator_empty_day_fraction,
    )


async def serve_from_args(args: argparse.Namespace) -> None:
    """Serve the simulator the flags describe until cancelled; print its URL and credentials."""
    settings = settings_from_args(args)
    async with running_simulator(
        settings, host=args.simulator_host, port=args.simulator_port
    ) as sim:
        lines = [
            f"Bulk Exports simulator listening on {sim.base_url}",
            f"  account: {settings.account_sid} / {settings.auth_token}",
            *(f"  api key: {sid} / {secret}" for sid, secret in settings.api_keys.items()),
            f"  clock:   {settings.clock!r}, seed {settings.seed}",
            f"  stats:   {sim.base_url}/_simulator/stats",
        ]
        print("\n".join(lines), file=sys.stdout, flush=True)
        await asyncio.Event().wait()
