"""The atomic writer on a real file system: leftovers removed, escapes refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.archive.writer import AtomicWriter
from orchestrator.errors import ArchiveWriteError


def test_commit_renames_into_place_and_removes_crash_leftovers(tmp_path: Path) -> None:
    """A part file of the same name from a crash goes; the target appears whole."""
    target = tmp_path / "Calls" / "2024" / "01" / "2024-01-01.json.gz"
    target.parent.mkdir(parents=True)
    leftover = target.with_name(".2024-01-01.json.gz.part-deadbeef")
    leftover.write_bytes(b"half")
    writer = AtomicWriter(target, tmp_path)
    writer.open()
    assert not leftover.exists()
    writer.write(b"abc")
    writer.write(b"def")
    writer.commit()
    assert target.read_bytes() == b"abcdef"
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_abort_removes_the_part_file(tmp_path: Path) -> None:
    """Abort leaves nothing behind and can be called twice."""
    writer = AtomicWriter(tmp_path / "a" / "f.gz", tmp_path)
    writer.open()
    writer.write(b"x")
    writer.abort()
    writer.abort()
    assert list((tmp_path / "a").iterdir()) == []


def test_a_symlink_out_of_the_archive_is_refused(tmp_path: Path) -> None:
    """A directory inside the archive that leads elsewhere is not written through."""
    root = tmp_path / "archive"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "Calls").symlink_to(outside)
    writer = AtomicWriter(root / "Calls" / "f.gz", root)
    with pytest.raises(ArchiveWriteError, match="outside"):
        writer.open()
    assert list(outside.iterdir()) == []
