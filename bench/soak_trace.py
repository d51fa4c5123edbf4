"""The daemon under a memory probe, for the soak benchmark's ``--trace DIR`` (diagnosis only).

    python -m bench.soak_trace --dump DIR [--objects] [--every 20] [--frames 12] -- run ...
    python -m bench.soak_trace --compare DIR [--top 25]

The first form runs ``orchestrator`` with the arguments after ``--`` while a thread probes its
memory every ``--every`` real seconds:

- by default tracemalloc is on and each probe writes ``DIR/snap-NNN.pickle``; ``--compare``
  prints the allocation sites that grew most from a third of the way in to the last snapshot,
  grouped by traceback. Tracing slows the daemon several times over;
- ``--objects``: no tracing; each probe appends to ``DIR/objects.jsonl`` the live objects by
  type (``gc.get_objects``), pymalloc's arenas and bytes in use (``sys._debugmallocstats``) and
  glibc's bytes in use (``mallinfo2``), which is where C libraries such as SQLite allocate;
  ``--compare`` prints the types whose count grew most.

Nothing of this is in the daemon: it wraps ``orchestrator.cli.main`` from the outside. Issue
15's creep was found this way: tracemalloc's total flat, object counts flat but for
``sqlite3.Statement``, and glibc's bytes in use growing with them (see ``store.engine``).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import gc
import json
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path


def _dump_every(directory: Path, seconds: float) -> None:
    n = 0
    while True:
        time.sleep(seconds)
        snapshot = tracemalloc.take_snapshot()
        snapshot.dump(str(directory / f"snap-{n:03d}.pickle"))
        n += 1


def _count_every(directory: Path, seconds: float) -> None:
    """Allocated blocks and live objects by type, one JSON line per ``seconds``."""
    with (directory / "objects.jsonl").open("a") as out:
        while True:
            time.sleep(seconds)
            types = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
            entry = {
                "t": time.monotonic(),
                **_allocators(directory),
                "blocks": sys.getallocatedblocks(),
                "objects": sum(types.values()),
                "types": dict(types.most_common(60)),
            }
            out.write(json.dumps(entry) + "\n")
            out.flush()


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _allocators(directory: Path) -> dict[str, int]:
    """glibc's heap (mallinfo2) and pymalloc's arenas (``sys._debugmallocstats``)."""
    found: dict[str, int] = {}
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
        found |= {
            "glibc_sbrk": info.arena,
            "glibc_mmap": info.hblkhd,
            "glibc_used": info.uordblks,
            "glibc_free": info.fordblks,
        }
    # _debugmallocstats writes to the C stderr: point fd 2 at a file for the call.
    path = directory / "mallocstats.txt"
    saved = os.dup(2)
    try:
        with path.open("w") as out:
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    for line in path.read_text().splitlines():
        for key, name in (
            ("# arenas allocated current", "arenas_current"),
            ("# arenas highwater mark", "arenas_highwater"),
            ("# bytes in allocated blocks", "pymalloc_used"),
            ("# bytes in available blocks", "pymalloc_free"),
            ("# bytes lost to pool headers", "pool_headers"),
            ("# bytes in empty pools", "pymalloc_empty_pools"),
        ):
            if line.startswith(key):
                found[name] = int(line.rsplit("=", 1)[1].replace(",", "").strip())
    return found


def growth(directory: Path, top: int = 25) -> list[str]:
    """Object types whose live count grew most between a third of the way in and the end."""
    entries = [json.loads(line) for line in (directory / "objects.jsonl").open()]
    if len(entries) < 2:
        return ["fewer than two counts"]
    first, last = entries[len(entries) // 3], entries[-1]
    lines = [
        f"blocks {first['blocks']:,} -> {last['blocks']:,}; objects {first['objects']:,} -> "
        f"{last['objects']:,} over {last['t'] - first['t']:.0f} s"
    ]
    names = set(first["types"]) | set(last["types"])
    diffs = sorted(
        ((last["types"].get(n, 0) - first["types"].get(n, 0), n) for n in names), reverse=True
    )
    lines += [f"{d:+8d} {n} (now {last['types'].get(n, 0)})" for d, n in diffs[:top]]
    return lines


def compare(directory: Path, top: int = 25, frames: int = 6) -> list[str]:
    """The sites that grew most between a third of the way in and the last snapshot."""
    snaps = sorted(directory.glob("snap-*.pickle"))
    if len(snaps) < 2:
        return [f"fewer than two snapshots in {directory}"]
    first = tracemalloc.Snapshot.load(str(snaps[len(snaps) // 3]))
    last = tracemalloc.Snapshot.load(str(snaps[-1]))
    ignore = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    ]
    first, last = first.filter_traces(ignore), last.filter_traces(ignore)
    lines = [
        f"{snaps[len(snaps) // 3].name} -> {snaps[-1].name}: traced "
        f"{sum(s.size for s in first.statistics('filename')) / 2**20:.2f} -> "
        f"{sum(s.size for s in last.statistics('filename')) / 2**20:.2f} MB"
    ]
    for stat in last.compare_to(first, "traceback")[:top]:
        lines.append(
            f"{stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks "
            f"(now {stat.size / 1024:.1f} KiB)"
        )
        lines.extend(f"      {line}" for line in stat.traceback.format(limit=frames))
    return lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    rest: list[str] = []
    if "--" in args:
        at = args.index("--")
        args, rest = args[:at], args[at + 1 :]
    parser = argparse.ArgumentParser(prog="python -m bench.soak_trace")
    parser.add_argument("--dump", type=Path)
    parser.add_argument("--compare", type=Path)
    parser.add_argument("--every", type=float, default=20.0)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--objects", action="store_true", help="count live objects by type instead of tracing"
    )
    options = parser.parse_args(args)
    if options.compare is not None:
        found = options.compare / "objects.jsonl"
        print("\n".join((growth if found.exists() else compare)(options.compare, options.top)))
        return 0
    if options.dump is None:
        parser.error("--dump DIR or --compare DIR")
    options.dump.mkdir(parents=True, exist_ok=True)
    if options.objects:
        target = _count_every
    else:
        tracemalloc.start(options.frames)
        target = _dump_every
    threading.Thread(target=target, args=(options.dump, options.every), daemon=True).start()
    from orchestrator.cli import main as orchestrator_main

    return orchestrator_main(rest)


if __name__ == "__main__":
    sys.exit(main())
