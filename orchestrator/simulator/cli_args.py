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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's flags to ``parser`` (destinations are prefixed ``simulator_``)."""
    serve = parser.add_argument_group("serving")
    serve.add_argument("--host", dest="simulator_host", default="127.0.0.1")
    serve.add_argument("--port", dest="simulator_port", type=int, default=DEFAULT_PORT)
    serve.add_argument(
        "--speed",
        dest="simulator_speed",
        type=float,
        default=1.0,
        help="simulated seconds per real second (1 = wall clock)",
    )
    serve.add_argument(
        "--clock-start",
        dest="simulator_clock_start",
        type=dt.datetime.fromisoformat,
        default=None,
        help="simulated time at start (ISO 8601, UTC if naive); share with the daemon's clock",
    )
    serve.add_argument(
        "--clock-anchor",
        dest="simulator_clock_anchor",
        type=float,
        default=None,
        help="time.monotonic() value the scaled clock starts from; share with the daemon",
    )
    serve.add_argument("--seed", dest="simulator_seed", type=int, default=0)
    serve.add_argument("--account-sid", dest="simulator_account_sid", default=DEFAULT_ACCOUNT_SID)
    serve.add_argument("--auth-token", dest="simulator_auth_token", default=DEFAULT_AUTH_TOKEN)
    serve.add_argument(
        "--api-key",
        dest="simulator_api_keys",
        type=_api_key,
        action="append",
        default=[],
        metavar="SK...:SECRET",
    )

    life = parser.add_argument_group("lifecycle")
    life.add_argument("--max-running-jobs", dest="simulator_max_running_jobs", type=int, default=2)
    life.add_argument(
        "--job-base-seconds", dest="simulator_job_base_seconds", type=float, default=30
    )
    life.add_argument(
        "--day-seconds",
        dest="simulator_day_seconds",
        type=_range,
        default=(5.0, 20.0),
        metavar="LOW,HIGH",
    )
    life.add_argument("--retry-delay-seconds", dest="simulator_retry_delay", type=float, default=60)
    life.add_argument("--max-day-attempts", dest="simulator_max_day_attempts", type=int, default=3)
    life.add_argument("--eta-noise", dest="simulator_eta_noise", type=_fraction, default=0.3)
    life.add_argument("--job-ttl-hours", dest="simulator_job_ttl_hours", type=float, default=7 * 24)
    life.add_argument(
        "--url-ttl-seconds", dest="simulator_url_ttl_seconds", type=float, default=3600
    )

    files = parser.add_argument_group("day files")
    files.add_argument(
        "--records-per-day",
        dest="simulator_records_per_day",
        type=_range,
        default=(5.0, 50.0),
        metavar="LOW,HIGH",
    )
    files.add_argument(
        "--day-target-bytes", dest="simulator_day_target_bytes", type=int, default=None
    )
    files.add_argument(
        "--empty-day-fraction", dest="simulator_empty_day_fraction", type=_fraction, default=0.1
    )

    faults = parser.add_argument_group("faults")
    for name in (
        "failed-day",
        "error-during-run",
        "stuck-job",
        "rate-limit",
        "server-error",
        "slow",
        "drop",
        "drop-after",
        "malformed-json",
        "truncated-file",
    ):
        dest = "simulator_" + name.replace("-", "_") + "_fraction"
        faults.add_argument(f"--{name}-fraction", dest=dest, type=_fraction, default=0.0)
    faults.add_argument(
        "--stuck-first-jobs", dest="simulator_stuck_first_jobs", type=_non_negative_int, default=0
    )
    faults.add_argument(
        "--retry-after",
        dest="simulator_retry_after",
        type=_retry_after,
        default=1.0,
        help="Retry-After seconds on 429s, or 'none' to send no header",
    )
    faults.add_argument("--slow-seconds", dest="simulator_slow_seconds", type=float, default=5.0)
    faults.add_argument(
        "--daily-day-quota", dest="simulator_daily_day_quota", type=int, default=None
    )
    faults.add_argument(
        "--fail-first-attempt-day",
        dest="simulator_fail_first_attempt_days",
        type=_day_ref,
        action="append",
        default=[],
        metavar="TYPE:YYYY-MM-DD",
    )
    faults.add_argument(
        "--always-fail-day",
        dest="simulator_always_fail_days",
        type=_day_ref,
        action="append",
        default=[],
        metavar="TYPE:YYYY-MM-DD",
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
