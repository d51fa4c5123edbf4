"""Archive benchmark: download one big simulated day file through the real client and archiver.

    python -m bench.archive_bench [--mb 500] [--target local|s3]

The simulator runs in a child process (``python -m orchestrator simulator``) so this process's
memory is the archiver's alone: the simulator generates the file as it streams it and would
otherwise add its own buffers to the figure. One job for one day is created and completed on a
sped-up simulator clock, then the file is resolved, streamed, verified (gzip, every JSON line,
sha256, size) and written atomically with ``orchestrator.archive.download.download_day``.

``--target s3`` streams it to an S3 bucket instead of a directory: a moto server (the test
suite's S3 twin, from the test extra) in another child process on loopback, reached through
``ObjectTarget`` (obstore multipart upload, no local disk), then HEADs the object.

Figures: MB/s over the download (resolve to fsync'd rename, or to the completed upload and its
HEAD), peak RSS sampled from /proc/self/status every 20 ms during the download, and ru_maxrss
of the whole process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import resource
import socket
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

from orchestrator.archive.download import download_day
from orchestrator.archive.layout import relative_path
from orchestrator.archive.local import LocalTarget
from orchestrator.archive.target import ArchiveTarget
from orchestrator.clock import SystemClock
from orchestrator.domain.model import ResourceType
from orchestrator.logs import SecretRedactor, configure_logging
from orchestrator.simulator import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
from orchestrator.twilio import BulkExportsClient, ClientSettings, Credentials

DAY = dt.date.today() - dt.timedelta(days=10)
SPEED = 200.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class _Sampler:
    """Peak VmRSS, sampled by a thread (the event loop is busy during the download)."""

    def __init__(self, every: float = 0.02) -> None:
        self.peak = 0.0
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mb())
            self._stop.wait(self._every)

    def __enter__(self) -> _Sampler:
        self.peak = _rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


@contextlib.asynccontextmanager
async def _simulator(target_bytes: int) -> AsyncIterator[str]:
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator",
        "simulator",
        "--port",
        str(port),
        "--speed",
        str(SPEED),
        "--day-target-bytes",
        str(target_bytes),
        "--empty-day-fraction",
        "0",
        "--url-ttl-seconds",
        "86400",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            break
        else:
            raise RuntimeError("the simulator did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        await process.wait()


async def _completed_day(client: BulkExportsClient) -> int | None:
    job = await client.create_job(ResourceType.MESSAGES, DAY, DAY, "bench-archive")
    for _ in range(600):
        remote = await client.fetch_job(job.job_sid)
        if any(group.status.is_success for group in remote.details):
            break
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError("the simulated job never completed")
    # The Days list waits for the simulator to measure the file (one pass over it).
    for entry in await client.list_days(ResourceType.MESSAGES):
        if entry.day == DAY:
            return entry.size
    return None


async def _wait_for_port(port: int, what: str) -> None:
    for _ in range(600):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError(f"{what} did not start")


@contextlib.asynccontextmanager
async def _s3_target() -> AsyncIterator[ArchiveTarget]:
    """An ObjectTarget on a fresh bucket of a moto server in a child process."""
    from orchestrator.archive.layout import parse_archive_url
    from orchestrator.archive.object import ObjectStoreConfig, ObjectTarget

    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "moto.server",
        "-H",
        "127.0.0.1",
        "-p",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await _wait_for_port(port, "the moto server")
        endpoint = f"http://127.0.0.1:{port}"
        options = {"access_key_id": "AKIABENCH", "secret_access_key": "bench-secret"}
        bucket = ObjectStoreConfig(
            url=parse_archive_url("s3://archive-bench"),
            endpoint=endpoint,
            region="us-east-1",
            allow_http=True,
            options=options,
        )
        # boto3 comes with moto (the test extra); the daemon never uses it. In a child process,
        # so its memory is not counted as the archiver's.
        creator = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import boto3, sys; boto3.client('s3', endpoint_url=sys.argv[1], "
            "aws_access_key_id='AKIABENCH', aws_secret_access_key='bench-secret', "
            "region_name='us-east-1').create_bucket(Bucket='archive-bench')",
            endpoint,
        )
        if await creator.wait() != 0:
            raise RuntimeError("cannot create the bench bucket")
        yield ObjectTarget(bucket)
    finally:
        process.terminate()
        await process.wait()


@contextlib.asynccontextmanager
async def _target(kind: str) -> AsyncIterator[ArchiveTarget]:
    if kind == "s3":
        async with _s3_target() as target:
            yield target
        return
    with tempfile.TemporaryDirectory(prefix="archive-bench-") as directory:
        yield LocalTarget(Path(directory))


async def run(mb: int, target_kind: str = "local") -> dict[str, float]:
    """Archive one ``mb`` MB day file to ``target_kind``; return MB/s and memory figures."""
    credentials = Credentials.from_auth_token(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)
    async with _simulator(mb * 1024 * 1024) as base_url:
        settings = ClientSettings(base_url=base_url, request_timeout=600.0)
        async with BulkExportsClient(credentials, settings=settings, clock=SystemClock()) as client:
            size = await _completed_day(client)
            async with _target(target_kind) as target:
                key = relative_path("{resource_type}/{day}.json.gz", "Messages", DAY).as_posix()
                before = _rss_mb()
                with _Sampler() as sampler:
                    started = time.perf_counter()
                    stored = await download_day(
                        client, ResourceType.MESSAGES, DAY, target, key, expected_size=size
                    )
                    seconds = time.perf_counter() - started
    megabytes = stored.size / (1024 * 1024)
    return {
        "file_mb": round(megabytes, 1),
        "records": float(stored.record_count),
        "seconds": round(seconds, 2),
        "mb_per_second": round(megabytes / seconds, 1),
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(sampler.peak, 1),
        "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500, help="size of the day file (MB)")
    parser.add_argument(
        "--target", choices=("local", "s3"), default="local", help="a directory, or S3 (moto)"
    )
    args = parser.parse_args()
    configure_logging(redactor=SecretRedactor(), level="warning", stream=sys.stderr)
    figures = asyncio.run(run(args.mb, args.target))
    print(f"{'target':>16}: {args.target}")
    for name, value in figures.items():
        print(f"{name:>16}: {value:g}")
    target = 100.0
    verdict = "under" if figures["peak_rss_mb"] < target else "OVER"
    print(f"peak RSS {verdict} the {target:g} MB target (pid {os.getpid()})")


if __name__ == "__main__":
    main()
