"""The status page (``GET /``): plain HTML and CSS from values, every value escaped.

Pure: ``render_page`` takes what the handler read from the store and returns the document.
No script, no CDN, no web font: the daemon serves all of it, and the page's
Content-Security-Policy (see ``app``) forbids anything else. CSS grid and flex keep it readable
at 1,280 px and on a phone (the tables scroll sideways inside their own box).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from orchestrator.domain.archiving import removal_deadline
from orchestrator.domain.model import Day, DayChange, DayStatus, Job, ResourceType
from orchestrator.domain.observed import AtRisk, ExportRange, time_left


@dataclass(frozen=True, slots=True)
class ExportView:
    """One export on the page: its wanted range and the days recorded in it."""

    export: ExportRange
    days: Mapping[dt.date, Day]


@dataclass(frozen=True, slots=True)
class PageData:
    now: dt.datetime
    account_sid: str
    exports: Sequence[ExportView]
    # Exports that want no day yet (a start in the future), by name and type.
    idle_exports: Sequence[tuple[str, ResourceType]]
    at_risk: Mapping[ResourceType, AtRisk]
    archive_on: bool
    jobs: Sequence[Job]
    job_count: int
    changes: Sequence[DayChange]
    credentials_problem: str | None


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _status_class(status: DayStatus | None) -> str:
    return "s-none" if status is None else f"s-{status.value.lower()}"


def _time(value: dt.datetime | None) -> str:
    return "" if value is None else value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M")


def _cell(day: dt.date, row: Day | None) -> str:
    if row is None:
        title = f"{day.isoformat()}: not recorded yet"
        classes = _status_class(None)
    else:
        parts = [f"{day.isoformat()}: {row.status.value}"]
        parts.append(f"job {row.job_sid}" if row.job_sid else "no job")
        if row.archive is not None:
            parts.append("archived")
        elif row.status.is_success:
            parts.append("not archived")
        title = ", ".join(parts)
        classes = _status_class(row.status)
        if row.status.is_success and row.archive is None:
            classes += " risk"
    return f'<span class="cell {classes}" title="{_e(title)}"></span>'


def _calendar(view: ExportView) -> str:
    export = view.export
    months: list[str] = []
    current: list[str] = []
    month: tuple[int, int] | None = None
    day = export.first
    while day <= export.last:
        if (day.year, day.month) != month:
            if current:
                months.append(_month(month, current))
            month, current = (day.year, day.month), []
            # Monday-first columns: blanks before the first day of the month.
            current.extend('<span class="pad"></span>' for _ in range(day.weekday()))
        current.append(_cell(day, view.days.get(day)))
        day += dt.timedelta(days=1)
    if current:
        months.append(_month(month, current))
    return '<div class="calendar">' + "".join(months) + "</div>"


def _month(month: tuple[int, int] | None, cells: list[str]) -> str:
    assert month is not None
    label = f"{month[0]:04d}-{month[1]:02d}"
    return (
        f'<div class="month"><div class="month-name">{_e(label)}</div>'
        f'<div class="days">{"".join(cells)}</div></div>'
    )


def _export(view: ExportView) -> str:
    export = view.export
    total = (export.last - export.first).days + 1
    counts: dict[DayStatus, int] = {}
    for row in view.days.values():
        counts[row.status] = counts.get(row.status, 0) + 1
    summary = ", ".join(f"{_e(s.value)} {counts[s]}" for s in DayStatus if counts.get(s))
    unrecorded = total - sum(counts.values())
    if unrecorded:
        summary += (", " if summary else "") + f"not recorded {unrecorded}"
    return (
        f'<article class="export"><h2>{_e(export.name)}</h2>'
        f'<p class="meta">{_e(export.resource_type.value)} · {_e(export.first.isoformat())} to '
        f"{_e(export.last.isoformat())} · {total} days</p>"
        f'<p class="counts">{summary}</p>{_calendar(view)}</article>'
    )


def _banners(data: PageData) -> str:
    out: list[str] = []
    if data.credentials_problem is not None:
        out.append(
            '<section class="banner bad" role="alert"><strong>Twilio rejects the credentials.'
            "</strong> The daemon has stopped calling Twilio: fix them and reload "
            "(<code>systemctl reload orchestrator</code>).</section>"
        )
    for resource_type, risk in sorted(data.at_risk.items()):
        deadline = removal_deadline(risk.earliest_completed_at)
        left = time_left(deadline - data.now)
        note = "" if data.archive_on else " Archiving is off ([archive] is not set)."
        days_word = "day" if risk.count == 1 else "days"
        out.append(
            f'<section class="banner risk" role="alert"><strong>{risk.count} '
            f"{_e(resource_type.value)} {days_word} at risk:</strong> not archived; Twilio "
            f"removes the first file in <strong>{_e(left)}</strong> "
            f"({_e(_time(deadline))} UTC).{_e(note)}</section>"
        )
    return "".join(out)


def _jobs(data: PageData) -> str:
    rows = "".join(
        "<tr>"
        f"<td>{_e(job.friendly_name)}</td><td>{_e(job.job_sid or '')}</td>"
        f"<td>{_e(job.resource_type.value)}</td>"
        f"<td>{_e(job.start_day.isoformat())} to {_e(job.end_day.isoformat())}</td>"
        f'<td class="state-{_e(job.state.value)}">{_e(job.state.value)}</td>'
        f"<td>{_e(_time(job.created_at))}</td><td>{_e(_time(job.last_polled_at))}</td>"
        f"<td>{_e(job.last_error or '')}</td>"
        "</tr>"
        for job in data.jobs
    )
    shown = (
        f"the newest {len(data.jobs)} of {data.job_count}"
        if data.job_count > len(data.jobs)
        else str(data.job_count)
    )
    return (
        f'<section><h2>Jobs <span class="meta">({_e(shown)})</span></h2><div class="scroll">'
        "<table><thead><tr><th>name</th><th>SID</th><th>type</th><th>days</th><th>state</th>"
        "<th>created (UTC)</th><th>last poll</th><th>last error</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div></section>"
    )


def _changes(data: PageData) -> str:
    rows = "".join(
        "<tr>"
        f"<td>{_e(_time(c.observed_at))}</td><td>{_e(c.resource_type.value)}</td>"
        f"<td>{_e(c.day.isoformat())}</td>"
        f"<td>{_e(c.from_status.value if c.from_status else '')}</td>"
        f'<td><span class="dot {_status_class(c.to_status)}"></span>{_e(c.to_status.value)}</td>'
        f"<td>{_e(c.job_sid or '')}</td><td>{_e(c.observed_by.value)}</td>"
        "</tr>"
        for c in data.changes
    )
    return (
        f'<section><h2>Last state changes <span class="meta">({len(data.changes)})</span></h2>'
        '<div class="scroll"><table><thead><tr><th>when (UTC)</th><th>type</th><th>day</th>'
        "<th>from</th><th>to</th><th>job</th><th>by</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div></section>"
    )


def _legend() -> str:
    items = "".join(
        f'<span class="key"><span class="dot {_status_class(s)}"></span>{_e(s.value)}</span>'
        for s in DayStatus
    )
    return (
        f'<p class="legend">{items}<span class="key"><span class="dot s-none"></span>'
        'not recorded</span><span class="key"><span class="dot s-completed risk"></span>'
        "success, not archived</span></p>"
    )


_CSS = """
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1d2329;background:#f5f6f8}
header,main{max-width:1240px;margin:0 auto;padding:12px 16px}
header{display:flex;flex-wrap:wrap;gap:4px 16px;align-items:baseline}
h1{font-size:22px;margin:0}h2{font-size:17px;margin:0 0 6px}
.meta{color:#5b6670;font-size:13px;font-weight:normal}
.banner{padding:10px 14px;border-radius:6px;margin:8px 0;border-left:6px solid}
.banner.risk{background:#fff4e0;border-color:#e08a00}
.banner.bad{background:#fde8e8;border-color:#c62828}
.exports{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:12px}
.export,section{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:12px}
main>section{margin-top:12px}
.counts{margin:4px 0 8px;font-size:13px}
.calendar{display:flex;flex-wrap:wrap;gap:10px}
.month-name{font-size:11px;color:#5b6670}
.days{display:grid;grid-template-columns:repeat(7,14px);gap:2px}
.cell,.pad{width:14px;height:14px;border-radius:2px}
.cell{display:block}
.dot{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:4px;
vertical-align:-1px}
.risk{outline:2px solid #e08a00;outline-offset:-2px}
.s-none{background:#e4e7eb}.s-pending{background:#b8c2cc}.s-submitted{background:#90caf9}
.s-running{background:#42a5f5}.s-errorduringrun{background:#ffb74d}
.s-completed{background:#43a047}.s-completedemptyrecords{background:#a5d6a7}
.s-failed{background:#e53935}.s-runningtobedeleted{background:#ba68c8}
.s-deletedbyuserrequest{background:#7e57c2}.s-gaveup{background:#212121}
.s-unknown{background:#f06292}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;color:#5b6670}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eceff2;white-space:nowrap}
th{color:#5b6670;font-weight:600}
@media (max-width:600px){body{font-size:14px}.exports{grid-template-columns:1fr}
header,main{padding:8px}}
"""


def render_page(data: PageData) -> str:
    """The whole status page."""
    idle = "".join(
        f'<article class="export"><h2>{_e(name)}</h2><p class="meta">{_e(rtype.value)} · '
        "no day wanted yet</p></article>"
        for name, rtype in data.idle_exports
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>orchestrator: {_e(data.account_sid)}</title><style>{_CSS}</style></head><body>"
        f'<header><h1>orchestrator</h1><span class="meta">account {_e(data.account_sid)} · '
        f"as of {_e(_time(data.now))} UTC · read-only</span></header><main>"
        f"{_banners(data)}"
        f'<div class="exports">{"".join(_export(v) for v in data.exports)}{idle}</div>'
        f"{_legend()}{_jobs(data)}{_changes(data)}"
        "</main></body></html>"
    )
