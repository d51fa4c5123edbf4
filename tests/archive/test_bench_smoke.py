"""The archive benchmark runs end to end at a tiny size."""

from __future__ import annotations

from bench.archive_bench import run


async def test_archive_bench_runs_at_one_megabyte() -> None:
    """A 1 MB file is archived through a simulator process; every figure is produced."""
    figures = await run(1)
    assert figures["file_mb"] > 0.5
    assert figures["mb_per_second"] > 0
    assert figures["peak_rss_mb"] > 0


async def test_archive_bench_runs_to_s3_at_one_megabyte() -> None:
    """The same through a moto server process: the file is uploaded and every figure produced."""
    figures = await run(1, "s3")
    assert figures["file_mb"] > 0.5
    assert figures["mb_per_second"] > 0
    assert figures["peak_rss_mb"] > 0
