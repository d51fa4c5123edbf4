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
import re
import string
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from orchestrator.domain.model import ResourceType, parse_day
from orchestrator.errors import InvalidInput

if TYPE_CHECKING:  # only for annotations: layout stays pure
    from orchestrator.archive.target import ArchiveTarget

DEFAULT_TEMPLATE = "{resource_type}/{yyyy}/{mm}/{day}.json.gz"
PLACEHOLDERS = frozenset({"resource_type", "yyyy", "mm", "dd", "day"})
# A temporary file is named ".<final name>.part-<random>" in the final file's directory.
PART_MARKER = ".part-"


# The URL schemes of an archive: a local directory, S3 (and S3-compatible), GCS, Azure Blob.
OBJECT_SCHEMES = ("s3", "gs", "az")
ARCHIVE_SCHEMES = ("file", *OBJECT_SCHEMES)
_BUCKET = {
    # S3 bucket names: 3-63 of lower-case letters, digits, '.', '-' (no '_').
    "s3": re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"),
    # GCS: 3-63 (222 with dots) of lower-case letters, digits, '_', '-', '.'.
    "gs": re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$"),
    # Azure containers: 3-63 of lower-case letters, digits and single '-'.
    "az": re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$"),
}
_BUCKET_WORD = {"s3": "bucket", "gs": "bucket", "az": "container"}


@dataclass(frozen=True, slots=True)
class ArchiveUrl:
    """A parsed ``[archive] url``: ``scheme://bucket/prefix`` or ``file:///directory``."""

    scheme: str
    # The bucket (S3, GCS) or container (Azure); empty for file.
    bucket: str = ""
    # The key prefix inside the bucket, without leading or trailing '/'; may be empty.
    prefix: str = ""
    # The directory of a file URL.
    directory: Path | None = None

    @property
    def url(self) -> str:
        """The normalised URL (what locations recorded in the store start with)."""
        if self.scheme == "file":
            return f"file://{self.directory}"
        tail = f"/{self.prefix}" if self.prefix else ""
        return f"{self.scheme}://{self.bucket}{tail}"


def parse_archive_url(raw: str) -> ArchiveUrl:
    """``raw`` as an ArchiveUrl, else InvalidInput saying what is wrong (never echoing a query)."""
    if not isinstance(raw, str) or "://" not in raw:
        raise InvalidInput(
            "url",
            "must look like s3://bucket/prefix, gs://bucket/prefix, "
            "az://container/prefix or file:///directory",
        )
    try:
        parts = urlsplit(raw)
    except ValueError as exc:
        raise InvalidInput("url", f"is not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ARCHIVE_SCHEMES:
        raise InvalidInput(
            "url",
            f"scheme {scheme + '://'!r} is not one of "
            + ", ".join(s + "://" for s in ARCHIVE_SCHEMES),
        )
    if parts.query or parts.fragment:
        # Options (and keys pasted into a URL) belong in their own [archive] keys.
        raise InvalidInput("url", "must not have a query (?...) or fragment (#...)")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            "url",
            "must not carry credentials; use the *_file keys or the "
            "cloud's standard credential chain",
        )
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InvalidInput("url", "a file URL names a local directory: file:///path")
        path = unquote(parts.path)
        if not path.startswith("/") or "\x00" in path:
            raise InvalidInput("url", "a file URL needs an absolute path: file:///path")
        return ArchiveUrl("file", directory=Path(path))
    bucket = parts.netloc
    word = _BUCKET_WORD[scheme]
    if not bucket:
        raise InvalidInput("url", f"names no {word}: {scheme}://{word}/prefix")
    if not _BUCKET[scheme].fullmatch(bucket):
        raise InvalidInput("url", f"{bucket!r} is not a valid {scheme}:// {word} name")
    prefix = parts.path.strip("/")
    if prefix:
        try:
            check_relative(prefix)
        except InvalidInput:
            raise InvalidInput(
                "url",
                f"prefix {prefix!r} must be plain relative path parts "
                "(no '.', '..', empty or hidden parts)",
            ) from None
    return ArchiveUrl(scheme, bucket=bucket, prefix=prefix)


@dataclass(frozen=True, slots=True)
class ArchiveDestination:
    """Where the archive pass keeps day files and how many it fetches at once.

    ``target`` is where the bytes go (``orchestrator.wiring`` builds it from the settings);
    ``directory`` is the local archive's directory (None for object storage). A destination
    built with only a ``directory`` (a test's) writes there through a ``LocalTarget``.
    """

    directory: Path | None
    path_template: str = DEFAULT_TEMPLATE
    max_concurrent_downloads: int = 2
    target: ArchiveTarget | None = None

    def archive_target(self) -> ArchiveTarget:
        """The target day files are written to."""
        if self.target is not None:
            return self.target
        if self.directory is None:
            raise InvalidInput("archive", "neither a target nor a directory")
        from orchestrator.archive.local import LocalTarget  # a cycle otherwise: local uses layout

        return LocalTarget(self.directory)


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
