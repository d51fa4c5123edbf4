"""The command line: the only place that parses argv and sets exit codes.

Start-up is kept cheap: this module imports the standard library's argparse and little else, and
each command imports what it uses when it runs (``--help`` loads neither pydantic, SQLAlchemy,
aiohttp nor the simulator; ``status`` never loads Alembic or aiohttp). The ``simulator``
command's options come from the simulator package, which is only imported when that command is
parsed (``_LazyArguments``). ``python -m bench --only startup`` measures it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from orchestrator import __version__
from orchestrator.errors import ConfigError, InvalidInput, OrchestratorError

if TYPE_CHECKING:
    from orchestrator.config import ConfigFile
    from orchestrator.domain.leadership import Leader
    from orchestrator.domain.model import Day, DayStatus, ResourceType
    from orchestrator.store.repository import Store

EX_OK = 0
EX_FAILURE = 1
EX_USAGE = 64
# The database or the API does not answer, or there is no database (sysexits.h).
EX_UNAVAILABLE = 69
# An exception nobody expected: logged as one JSON event with its traceback.
EX_SOFTWARE = 70
# Twilio rejected the credentials (check-config --connect).
EX_NOPERM = 77
EX_CONFIG = 78
# A reader that went away: what a shell reports for a process killed by SIGPIPE (128 + 13).
EX_SIGPIPE = 141

DEFAULT_CONFIG = Path("/etc/orchestrator/config.toml")


class _LazyArguments(argparse.ArgumentParser):
    """A subcommand's parser whose arguments are added the first time it parses (or prints
    help): the ``simulator`` command's options live in the simulator package, which is heavy
    to import and needed only when that command runs."""

    def __init__(
        self,
        *args: Any,
        add_later: Callable[[argparse.ArgumentParser], None] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(*args, **kw)
        self._add_later = add_later

    def _complete(self) -> None:
        if self._add_later is not None:
            add, self._add_later = self._add_later, None
            add(self)

    def parse_known_args(  # type: ignore[override]  # same contract; typeshed overloads it
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._complete()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._complete()
        return super().format_help()


def _simulator_arguments(parser: argparse.ArgumentParser) -> None:
    from orchestrator.simulator.cli_args import add_arguments

    add_arguments(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Keeps Twilio Bulk Export day files safe before Twilio deletes them.",
    )
    parser.add_argument("--version", action="version", version=f"orchestrator {__version__}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_LazyArguments
    )

    def command(
        name: str,
        help_text: str,
        *,
        config: bool = True,
        add_later: Callable[[argparse.ArgumentParser], None] | None = None,
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, add_later=add_later)
        if config:
            sub.add_argument(
                "--config",
                type=Path,
                default=DEFAULT_CONFIG,
                help=f"the TOML configuration (default {DEFAULT_CONFIG})",
            )
        return sub

    run = command("run", "run the daemon")
    run.add_argument(
        "--exit-when-done",
        action="store_true",
        help="exit 0 once every eligible wanted day is final (and archived, when archiving is on)",
    )
    simulated = run.add_argument_group(
        "simulated time",
        "run on a sped-up clock shared with a simulator (for the demo, tests and benchmarks; "
        "never against Twilio)",
    )
    simulated.add_argument(
        "--clock-speed", type=float, default=None, help="simulated seconds per real second"
    )
    simulated.add_argument(
        "--clock-start",
        type=dt.datetime.fromisoformat,
        default=None,
        help="simulated time at --clock-anchor (ISO 8601, UTC if naive)",
    )
    simulated.add_argument(
        "--clock-anchor",
        type=float,
        default=None,
        help="the time.monotonic() value at which the clock reads --clock-start",
    )
    check = command("check-config", "validate the configuration and print the plan")
    check.add_argument(
        "--connect",
        action="store_true",
        help="also check that the database answers (read only) and that Twilio accepts the "
        "credentials (one read of the Jobs list); exit 69 if one does not answer, 77 if Twilio "
        "rejects the credentials",
    )
    status = command("status", "days per export and status, and the jobs")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    history = command("history", "every status one day has passed through")
    history.add_argument("resource_type", help="Messages, Calls, Conferences or Participants")
    history.add_argument("day", help="yyyy-mm-dd")
    retry = command("retry", "return GaveUp days to Pending (by day, range or export)")
    retry.add_argument("--resource-type", help="limit to one resource type")
    retry.add_argument("--day", help="one day, yyyy-mm-dd")
    retry.add_argument("--from", dest="from_day", help="first day of a range, yyyy-mm-dd")
    retry.add_argument("--to", dest="to_day", help="last day of a range, yyyy-mm-dd")
    retry.add_argument("--export", help="every day of the export with this name")
    command("migrate", "upgrade the database to the newest schema")
    verify = command(
        "verify-archive",
        "re-hash every archived file against the store; exit 1 if any is missing or changed",
    )
    verify.add_argument(
        "--deep",
        action="store_true",
        help="also re-check the gzip stream, every JSON line and the record count",
    )
    command(
        "simulator",
        "serve the local Bulk Exports API simulator",
        config=False,
        add_later=_simulator_arguments,
    )
    demo = command(
        "demo",
        "run the daemon against the bundled simulator on sped-up time, with a temporary "
        "database; shows progress, the status table and where the files went",
        config=False,
    )
    demo.add_argument(
        "--keep", action="store_true", help="keep the state directory and print its path"
    )
    demo.add_argument(
        "--speed",
        type=float,
        default=None,
        help="simulated seconds per real second (default 2000)",
    )
    demo.add_argument("--seed", type=int, default=None, help="seed of the simulator (default 1)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the command, return its exit code. Nothing escapes as a traceback: an
    expected error is one line on stderr (exit 78 config, 64 usage, 69 unavailable, 1 other), an
    unexpected one a single JSON log event carrying the traceback (exit 70)."""
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except BrokenPipeError:
        # The reader went away (``status | head``): as a shell tool killed by SIGPIPE would,
        # without a traceback; stdout goes nowhere so that exit's own flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EX_SIGPIPE
    except Exception as error:
        from orchestrator.logs import log_unexpected

        event = "daemon.crashed" if args.command == "run" else "command.failed"
        log_unexpected(event, error, command=args.command)
        return EX_SOFTWARE


def _dispatch(args: argparse.Namespace) -> int:
    import asyncio

    from orchestrator.logs import SecretRedactor, configure_logging, detect_format

    handlers: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
        "run": _run,
        "check-config": _check_config,
        "status": _status,
        "history": _history,
        "retry": _retry,
        "migrate": _migrate,
        "verify-archive": _verify_archive,
        "simulator": _simulator,
        "demo": _demo,
    }
    if args.command == "run":
        # Until the daemon has read its config: what "auto" means here, so even a crash before
        # that is one JSON line (journald's, under systemd), never plain text.
        fmt = detect_format("auto", os.environ)
        configure_logging(
            redactor=SecretRedactor(), json=fmt != "console", journal=fmt == "journal"
        )
    elif args.command != "simulator":
        # Their stdout is the answer (status --json is parsed): logs go to stderr, warnings only.
        # check-config answers in lines of its own (--connect: one line per failed check), so
        # the client's retry warnings are not shown.
        level = "critical" if args.command == "check-config" else "warning"
        configure_logging(redactor=SecretRedactor(), level=level, stream=sys.stderr)
    try:
        return asyncio.run(_logging_loop_errors(handlers[args.command](args)))
    except ConfigError as error:
        print(f"orchestrator: config error: {error}", file=sys.stderr)
        return EX_CONFIG
    except InvalidInput as error:
        print(f"orchestrator: {error}", file=sys.stderr)
        return EX_USAGE
    except OrchestratorError as error:
        # An error may carry its own exit code (a database that is not there: 69).
        print(f"orchestrator: {error}", file=sys.stderr)
        code = getattr(error, "exit_code", EX_FAILURE)
        return code if isinstance(code, int) else EX_FAILURE
    except KeyboardInterrupt:
        return 130


async def _logging_loop_errors(command: Coroutine[Any, Any, int]) -> int:
    """Run ``command`` with an event-loop exception handler that logs through structlog."""
    import asyncio

    from orchestrator.logs import loop_exception_handler

    asyncio.get_running_loop().set_exception_handler(loop_exception_handler)
    return await command


# ---------------------------------------------------------------------- commands


async def _run(args: argparse.Namespace) -> int:
    from orchestrator.clock import Clock, ScaledClock, SystemClock
    from orchestrator.daemon import Daemon

    clock: Clock = SystemClock()
    if args.clock_speed is not None or args.clock_start is not None:
        start = args.clock_start
        if start is not None and start.tzinfo is None:
            start = start.replace(tzinfo=dt.UTC)
        if args.clock_speed is not None and args.clock_speed <= 0:
            raise InvalidInput("--clock-speed", f"must be positive, got {args.clock_speed}")
        clock = ScaledClock(args.clock_speed or 1.0, start=start, anchor=args.clock_anchor)
    return await Daemon(args.config, clock=clock, exit_when_done=args.exit_when_done).run()


async def _check_config(args: argparse.Namespace) -> int:
    from orchestrator.clock import SystemClock
    from orchestrator.config import load_settings
    from orchestrator.domain.model import latest_eligible_day
    from orchestrator.domain.wanted import summarize

    settings = load_settings(args.config)
    now = SystemClock().now()
    out = sys.stdout
    if args.connect:
        from orchestrator.connect import run_checks

        # Checked before the plan is printed: a failure leaves no "OK" on stdout.
        lines = io.StringIO()
        code = await run_checks(settings, lines, sys.stderr)
        if code != EX_OK:
            return code
    print(f"{settings.source}: OK", file=out)
    print(
        f"twilio: account {settings.twilio.account_sid}, {settings.credentials.method} "
        f"from {settings.credentials.origin}, {settings.twilio.base_url}",
        file=out,
    )
    print(f"jobs: prefix {settings.jobs.name_prefix!r}", file=out)
    archive = settings.archive.describe() if settings.archive else "off"
    print(f"archive: {archive}", file=out)
    print(f"latest eligible day now: {latest_eligible_day(now).isoformat()}", file=out)
    for spec in settings.export_specs():
        print(f"export {summarize(spec, now).describe()}", file=out)
    if args.connect:
        out.write(lines.getvalue())
    return EX_OK


async def _migrate(args: argparse.Namespace) -> int:
    from orchestrator.config import load_config_file

    config = load_config_file(args.config)
    async with _open_store(config, create=True):
        pass
    print("database is at the newest schema")
    return EX_OK


async def _status(args: argparse.Namespace) -> int:
    from orchestrator.clock import SystemClock
    from orchestrator.config import load_config_file
    from orchestrator.report import leader_line, print_status_table
    from orchestrator.store.snapshot import read_snapshot

    config = load_config_file(args.config)
    # The standard library's sqlite3 when it can: status then loads no SQLAlchemy.
    snapshot = read_snapshot(
        config.state.database_url.get_secret_value(), config.twilio.account_sid
    )
    if snapshot is not None:
        days, jobs = snapshot.days, snapshot.jobs
        leader, running = snapshot.leader, snapshot.leader_running
    else:
        from orchestrator.store.leadership import lock_held

        async with _open_store(config, create=False) as store:
            days = await store.list_days()
            jobs = await store.list_jobs()
            leader = await store.leader()
        held = await lock_held(
            config.state.database_url.get_secret_value(), config.twilio.account_sid
        )
        running = bool(held)
    if args.json:
        _print_status_json(days, jobs, leader, running, sys.stdout)
    else:
        print_status_table(config, days, jobs, sys.stdout, now=SystemClock().now())
        print(leader_line(leader, running), file=sys.stdout)
    return EX_OK


async def _history(args: argparse.Namespace) -> int:
    from orchestrator.config import load_config_file
    from orchestrator.domain.model import DayKey, ResourceType, parse_day

    key = DayKey(
        ResourceType.parse(args.resource_type, field="resource_type"),
        parse_day(args.day, field="day"),
    )
    config = load_config_file(args.config)
    async with _open_store(config, create=False) as store:
        changes = await store.day_history(key)
    if not changes:
        print(f"no history for {key.resource_type.value} {key.day.isoformat()}")
        return EX_FAILURE
    for change in changes:
        before = change.from_status.value if change.from_status else "-"
        print(
            f"{change.observed_at.isoformat(timespec='seconds')}  {before:>21} -> "
            f"{change.to_status.value:<21}  by {change.observed_by.value:<8}  "
            f"{change.job_sid or ''}"
        )
    return EX_OK


async def _retry(args: argparse.Namespace) -> int:
    from orchestrator.clock import SystemClock
    from orchestrator.config import load_config_file
    from orchestrator.domain.model import ObservedBy

    config = load_config_file(args.config)
    now = SystemClock().now()
    resource_type, first, last = _retry_selection(args, config, now)
    async with _open_store(config, create=False) as store:
        outcome = await store.retry_days_in_range(
            resource_type, first, last, now, observed_by=ObservedBy.OPERATOR
        )
    for change in outcome.changes:
        print(f"{change.resource_type.value} {change.day.isoformat()}: {change.to_status.value}")
    summary = f"{len(outcome.changes)} day(s) returned to Pending"
    if not outcome.changes:
        summary += f": {_why_none(outcome.selected)}"
    print(summary)
    return EX_OK


async def _verify_archive(args: argparse.Namespace) -> int:
    from orchestrator.config import load_config_file
    from orchestrator.report import render_verify_report
    from orchestrator.wiring import archive_target
    from orchestrator.workflows.verify_archive import verify_archive

    config = load_config_file(args.config)
    target = archive_target(config.archive, source=str(args.config)) if config.archive else None
    async with _open_store(config, create=False) as store:
        report = await verify_archive(store, deep=args.deep, target=target)
    print(render_verify_report(report))
    return report.exit_code


async def _simulator(args: argparse.Namespace) -> int:
    from orchestrator.simulator.cli_args import serve_from_args

    await serve_from_args(args)
    return EX_OK


async def _demo(args: argparse.Namespace) -> int:
    from orchestrator.demo import DEFAULT_SEED, DEFAULT_SPEED, DemoOptions, run_demo

    speed = DEFAULT_SPEED if args.speed is None else args.speed
    if speed <= 0:
        raise InvalidInput("--speed", f"must be positive, got {speed}")
    seed = DEFAULT_SEED if args.seed is None else args.seed
    return await run_demo(DemoOptions(speed=speed, seed=seed, keep=args.keep), sys.stdout)


# ---------------------------------------------------------------------- helpers


def _retry_selection(
    args: argparse.Namespace, config: ConfigFile, now: dt.datetime
) -> tuple[ResourceType | None, dt.date, dt.date]:
    """(resource type or None for all, first day, last day) of a retry; nothing enumerated."""
    from orchestrator.domain.model import ResourceType, parse_day
    from orchestrator.domain.wanted import spec_days

    chosen = [x for x in (args.day, args.from_day or args.to_day, args.export) if x]
    if len(chosen) != 1:
        raise InvalidInput("retry", "give exactly one of --day, --from/--to, or --export")
    resource_type = (
        ResourceType.parse(args.resource_type, field="--resource-type")
        if args.resource_type
        else None
    )
    if args.export:
        specs = [s for s in (e.to_spec() for e in config.exports) if s.name == args.export]
        if not specs:
            names = ", ".join(e.name for e in config.exports)
            raise InvalidInput("--export", f"no export named {args.export!r} (have: {names})")
        spec = specs[0]
        # An export's days are one unbroken range (fixed, open-ended or sliding).
        days = spec_days(spec, now)
        if not days:
            raise InvalidInput("--export", f"export {spec.name!r} wants no day yet")
        return spec.resource_type, min(days), max(days)
    if args.day:
        first = last = parse_day(args.day, field="--day")
    else:
        if not (args.from_day and args.to_day):
            raise InvalidInput("retry", "--from and --to go together")
        first = parse_day(args.from_day, field="--from")
        last = parse_day(args.to_day, field="--to")
        if first > last:
            raise InvalidInput("--to", f"{last} is before --from {first}")
    return resource_type, first, last


def _why_none(selected: Mapping[DayStatus, int]) -> str:
    """``57 Completed, 3 CompletedEmptyRecords, none GaveUp``: the selected days by status."""
    from orchestrator.domain.model import DayStatus

    if not any(selected.values()):
        return "no stored day in the selection"
    parts = [f"{selected[s]} {s.value}" for s in DayStatus if selected.get(s)]
    if not selected.get(DayStatus.GAVE_UP):
        parts.append(f"none {DayStatus.GAVE_UP.value}")
    return ", ".join(parts)


@asynccontextmanager
async def _open_store(config: ConfigFile, *, create: bool) -> AsyncIterator[Store]:
    from orchestrator.store.open import open_store

    # Migrating is a no-op at head (and then loads no Alembic). Only ``migrate`` creates a
    # database (``create``): the others on a database that is not there say so and exit 69, so
    # a wrong --config never looks like an empty install.
    async with open_store(
        config.state.database_url.get_secret_value(),
        config.twilio.account_sid,
        migrate=True,
        create=create,
    ) as store:
        yield store


def _print_status_json(
    days: Sequence[Day], jobs: Sequence[Any], leader: Leader | None, running: bool, out: TextIO
) -> None:
    import json

    document = {
        "leader": None
        if leader is None
        else {
            "host": leader.host,
            "pid": leader.pid,
            "since": leader.since.isoformat(),
            "epoch": leader.epoch,
            "running": running,
        },
        "days": [
            {
                "resource_type": d.resource_type.value,
                "day": d.day.isoformat(),
                "status": d.status.value,
                "job_sid": d.job_sid,
                "resubmits": d.resubmits,
                "archive_path": d.archive.path if d.archive else None,
            }
            for d in days
        ],
        "jobs": [
            {
                "job_sid": j.job_sid,
                "friendly_name": j.friendly_name,
                "resource_type": j.resource_type.value,
                "start_day": j.start_day.isoformat(),
                "end_day": j.end_day.isoformat(),
                "state": j.state.value,
            }
            for j in jobs
        ],
    }
    json.dump(document, out, indent=2)
    out.write("\n")


if __name__ == "__main__":
    sys.exit(main())
