"""A process that used obstore exits with its own exit code, never SIGABRT at interpreter exit."""

from __future__ import annotations

import asyncio
import sys
import textwrap

from tests.archive.s3_support import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, S3Bucket

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from orchestrator.archive.layout import parse_archive_url
    from orchestrator.archive.object import ObjectStoreConfig, ObjectTarget

    async def main():
        target = ObjectTarget(ObjectStoreConfig(
            url=parse_archive_url(sys.argv[1]), endpoint=sys.argv[2], region=sys.argv[3],
            allow_http=True,
            options={"access_key_id": sys.argv[4], "secret_access_key": sys.argv[5]},
        ))
        for key in ("a.json.gz", "missing.json.gz", "a.json.gz"):
            await target.stat(key)
        return 7

    sys.exit(asyncio.run(main()))
    """
)
RUNS = 12


async def test_processes_using_obstore_exit_cleanly() -> None:
    """Twelve short processes HEAD objects and exit 7: none aborts while finalizing."""
    bucket = S3Bucket.create()
    bucket.client().put_object(Bucket=bucket.name, Key=bucket.full_key("a.json.gz"), Body=b"x")
    codes = []
    for _ in range(RUNS):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SCRIPT,
            bucket.url,
            bucket.endpoint,
            REGION,
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        codes.append(await asyncio.wait_for(process.wait(), 60))
    assert codes == [7] * RUNS
