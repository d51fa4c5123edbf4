"""One suite, every destination: the ArchiveTarget promises on a local directory and S3."""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import pytest

from orchestrator.archive.local import LocalTarget
from orchestrator.archive.target import ArchiveTarget, probe
from orchestrator.archive.verify import StreamVerifier, VerifiedFile
from orchestrator.errors import ArchiveError, ArchiveWriteError
from tests.archive.conftest import gzip_lines
from tests.archive.s3_support import S3Bucket

KEY = "Calls/2026/02/2026-02-01.json.gz"
# Past one upload part (5 MiB): a multipart upload on S3. Incompressible records, so the gzip
# file is really that large.
BIG_RECORDS = 9000


class Destination:
    """A target and a way to look behind it."""

    def __init__(self, target: ArchiveTarget) -> None:
        self.target = target

    def visible(self) -> list[str]:
        """Every name below the target's root (S3: keys under the prefix)."""
        raise NotImplementedError

    def leftovers(self) -> list[str]:
        """Incomplete writes: part files, or incomplete multipart uploads."""
        raise NotImplementedError


class LocalDestination(Destination):
    def __init__(self, root: Path) -> None:
        super().__init__(LocalTarget(root))
        self.root = root

    def visible(self) -> list[str]:
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if p.is_file() and ".part-" not in p.name
        )

    def leftovers(self) -> list[str]:
        return [p.name for p in self.root.rglob("*") if ".part-" in p.name]


class S3Destination(Destination):
    def __init__(self, bucket: S3Bucket) -> None:
        super().__init__(bucket.target())
        self.bucket = bucket

    def visible(self) -> list[str]:
        head = f"{self.bucket.prefix}/"
        return [k.removeprefix(head) for k in self.bucket.object_keys()]

    def leftovers(self) -> list[str]:
        return [u["Key"] for u in self.bucket.incomplete_uploads()]


@pytest.fixture(params=["local", "s3"])
def dest(request: pytest.FixtureRequest, tmp_path: Path) -> Destination:
    """Each destination in turn."""
    if request.param == "local":
        root = tmp_path / "archive"
        root.mkdir()
        return LocalDestination(root)
    return S3Destination(S3Bucket.create())


@functools.cache
def big_file() -> bytes:
    records = ({"sid": f"SM{i}", "pad": os.urandom(600).hex()} for i in range(BIG_RECORDS))
    return gzip_lines(*records)


def facts_of(data: bytes) -> VerifiedFile:
    verifier = StreamVerifier()
    verifier.feed(data)
    return verifier.finish()


async def write(target: ArchiveTarget, key: str, data: bytes, step: int = 256 * 1024) -> None:
    writer = await target.open_writer(key)
    try:
        for start in range(0, len(data), step):
            await writer.write(data[start : start + step])
        await writer.commit(facts_of(data))
    except BaseException:
        await writer.abort()
        raise


async def read_all(target: ArchiveTarget, key: str) -> bytes:
    out = bytearray()
    async for chunk in target.read(key):
        out += chunk
    return bytes(out)


async def test_a_small_file_round_trips_with_its_facts(dest: Destination) -> None:
    """Write, commit, HEAD and read back a one-part file; the location maps back to the key."""
    data = gzip_lines({"sid": "SM1"}, {"sid": "SM2"})
    await write(dest.target, KEY, data)
    info = await dest.target.stat(KEY)
    assert info is not None and info.size == len(data) and info.ours
    if isinstance(dest, S3Destination):
        assert info.sha256 == hashlib.sha256(data).hexdigest()
        assert info.attributes["records"] == "2"
    assert await read_all(dest.target, KEY) == data
    assert dest.visible() == [KEY]
    assert dest.target.key_of(dest.target.location(KEY)) == KEY
    assert dest.target.location(KEY).startswith(dest.target.url.removeprefix("file://"))


async def test_a_big_file_streams_in_parts_and_appears_whole(dest: Destination) -> None:
    """A file past one upload part arrives whole, with our metadata; nothing is left over."""
    data = big_file()
    assert len(data) > 5 * 1024 * 1024
    await write(dest.target, KEY, data)
    info = await dest.target.stat(KEY)
    assert info is not None and info.size == len(data) and info.ours
    assert hashlib.sha256(await read_all(dest.target, KEY)).hexdigest() == (
        hashlib.sha256(data).hexdigest()
    )
    assert dest.visible() == [KEY] and dest.leftovers() == []


@pytest.mark.parametrize("size", ["small", "big"])
async def test_an_aborted_write_leaves_nothing_at_the_key(dest: Destination, size: str) -> None:
    """Abort half-way (one part, or mid multipart upload): no object, no part, no upload."""
    data = big_file() if size == "big" else gzip_lines({"sid": "SM1"})
    writer = await dest.target.open_writer(KEY)
    half = len(data) // 2 if size == "small" else 6 * 1024 * 1024
    for start in range(0, half, 256 * 1024):
        await writer.write(data[start : min(start + 256 * 1024, half)])
    await writer.abort()
    await writer.abort()  # idempotent
    assert await dest.target.stat(KEY) is None
    assert dest.visible() == [] and dest.leftovers() == []


async def test_rewriting_a_day_keeps_the_same_key_and_bytes(dest: Destination) -> None:
    """Archiving the same day again writes the same key with the same bytes: one object."""
    data = gzip_lines({"sid": "SM1"})
    await write(dest.target, KEY, data)
    await write(dest.target, KEY, data)
    assert dest.visible() == [KEY]
    assert await read_all(dest.target, KEY) == data


async def test_nothing_at_a_key_stats_as_none_and_reads_as_an_error(dest: Destination) -> None:
    """A missing key: stat says None; read raises an ArchiveError (never a bare OSError)."""
    assert await dest.target.stat(KEY) is None
    with pytest.raises(ArchiveError):
        await read_all(dest.target, KEY)


async def test_the_probe_writes_reads_and_removes_its_object(dest: Destination) -> None:
    """check-config --connect's probe: it works and leaves the destination as it was."""
    result = await probe(dest.target)
    assert result.url == dest.target.url and result.size > 0
    assert dest.visible() == []


async def test_only_probe_objects_are_ever_deleted(dest: Destination) -> None:
    """delete_probe refuses a day file's key: the daemon never deletes an archived object."""
    await write(dest.target, KEY, gzip_lines({"sid": "SM1"}))
    for key in (KEY, ".orchestrator-probe", ".orchestrator-probe/../" + KEY, "x/probe"):
        with pytest.raises(ArchiveError):
            await dest.target.delete_probe(key)
    assert dest.visible() == [KEY]


async def test_a_key_outside_the_layout_is_refused(dest: Destination) -> None:
    """A key with '..' or an absolute path never reaches the destination."""
    for key in ("../escape.json.gz", "/etc/passwd", "a//b.gz"):
        with pytest.raises(ValueError):
            await dest.target.open_writer(key)


async def test_a_probe_of_a_missing_bucket_fails_naming_the_url(tmp_path: Path) -> None:
    """A bucket that does not exist: the probe fails with an ArchiveWriteError naming it."""
    bucket = S3Bucket.create()
    missing = S3Bucket("no-such-bucket-x1", bucket.prefix, bucket.endpoint)
    with pytest.raises(ArchiveWriteError) as caught:
        await probe(missing.target())
    assert "s3://no-such-bucket-x1/twilio/archive" in str(caught.value)


async def test_a_probe_of_an_unwritable_directory_fails(tmp_path: Path) -> None:
    """A local archive whose directory is a file: the probe fails with an ArchiveWriteError."""
    (tmp_path / "archive").write_text("in the way")
    with pytest.raises(ArchiveWriteError):
        await probe(LocalTarget(tmp_path / "archive"))


async def test_incomplete_writes_are_swept_or_left_to_the_lifecycle_rule(
    dest: Destination,
) -> None:
    """A crash's leftover: local part files are removed; S3 has none to list (lifecycle rule)."""
    await write(dest.target, KEY, gzip_lines({"sid": "SM1"}))
    if isinstance(dest, LocalDestination):
        leftover = dest.root / "Calls" / "2026" / "02" / f".{Path(KEY).name}.part-abc123"
        leftover.write_bytes(b"half a file")
        assert await dest.target.abort_incomplete() == 1
        assert not leftover.exists()
    else:
        assert await dest.target.abort_incomplete() == 0
    assert dest.visible() == [KEY] and dest.leftovers() == []


async def test_a_probe_that_reads_back_other_bytes_fails_and_cleans_up(
    tmp_path: Path,
) -> None:
    """A target that corrupts what it stores: the probe says so and removes its object."""

    class Corrupting(LocalTarget):
        async def put_probe(self, key: str, data: bytes) -> None:
            await super().put_probe(key, bytes(len(data)))

    root = tmp_path / "archive"
    root.mkdir()
    with pytest.raises(ArchiveError, match="read back different bytes"):
        await probe(Corrupting(root))
    assert [p for p in root.rglob("*") if p.is_file()] == []
