"""Where a day's file goes in the archive. Pure: no I/O.

``relative_path(template, resource_type, day)`` fills the template; ``archive_path(directory,
...)`` joins it under the archive directory. A day string from anywhere (the API, the store, an
operator) is parsed as a strict ``yyyy-mm-dd`` date first, a resource type must be one Twilio
knows, the template may use only the known placeholders (no attribute access, index, format spec
or conversion), and the result must be a relative path without ``..``, empty or hidden parts:
a path outside ``directory`` cannot be built. The writer checks again against the real file
system (symlinks) before it writes.
"""

from __future__ import annotations

import datetime as dt
import string
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from orchestrator.domain.model import ResourceType, parse_day
from orchestrator.errors import InvalidInput

DEFAULT_TEMPLATE = "{resource_type}/{yyyy}/{mm}/{day}.json.gz"
PLACEHOLDERS = frozenset({"resource_type", "yyyy", "mm", "dd", "day"})
# A temporary file is named ".<final name>.part-<random>" in the final file's directory.
PART_MARKER = ".part-"


@dataclass(frozen=True, slots=True)
class ArchiveDestination:
    """Where the archive pass keeps day files and how many it fetches at once."""

    directory: Path
    path_template: str = DEFAULT_TEMPLATE
    max_concurrent_downloads: int = 2


def check_template(template: str) -> str:
    """Return ``template`` if it names only known placeholders, plainly, else InvalidInput."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise InvalidInput(
            "path_template", f"{template!r} is not a valid template: {exc}"
        ) from None
    fields: set[str] = set()
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            raise InvalidInput("path_template", f"unknown placeholder {{{name}}}")
        if spec or conversion:
            raise InvalidInput("path_template", f"{{{name}}} may not have a format or conversion")
        fields.add(name)
    if "resource_type" not in fields or not ("day" in fields or {"yyyy", "mm", "dd"} <= fields):
        raise InvalidInput(
            "path_template", "must contain {resource_type} and {day} (or {yyyy}, {mm} and {dd})"
        )
    return template


def relative_path(
    template: str, resource_type: ResourceType | str, day: dt.date | str
) -> PurePosixPath:
    """The file's path inside the archive directory, e.g. ``Calls/2024/01/2024-01-31.json.gz``."""
    check_template(template)
    rtype = ResourceType.parse(resource_type)
    if isinstance(day, str):
        day = parse_day(day)
    elif not isinstance(day, dt.date) or isinstance(day, dt.datetime):
        raise InvalidInput("day", f"{day!r} is not a date")
    text = template.format(
        resource_type=rtype.value,
        yyyy=f"{day.year:04d}",
        mm=f"{day.month:02d}",
        dd=f"{day.day:02d}",
        day=day.isoformat(),
    )
    return check_relative(text)


def check_relative(text: str) -> PurePosixPath:
    """``text`` as a relative POSIX path that stays inside its base, else InvalidInput."""
    if "\\" in text or "\x00" in text:
        raise InvalidInput("path", f"{text!r} has a backslash or NUL")
    path = PurePosixPath(text)
    parts = text.split("/")
    if path.is_absolute() or any(p in ("", ".", "..") for p in parts):
        raise InvalidInput("path", f"{text!r} is not a plain relative path")
    if any(p.startswith(".") for p in parts):
        # Hidden names are reserved for temporary files.
        raise InvalidInput("path", f"{text!r} has a hidden part")
    return path


def archive_path(
    directory: Path, template: str, resource_type: ResourceType | str, day: dt.date | str
) -> Path:
    """``directory`` joined with the day's relative path (lexically inside ``directory``)."""
    return directory.joinpath(*relative_path(template, resource_type, day).parts)


def is_part_file(name: str, final_name: str) -> bool:
    """True for a temporary file of ``final_name`` (left over by a crash)."""
    return name.startswith(f".{final_name}{PART_MARKER}")
