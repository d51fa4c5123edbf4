"""The migrations ship in the wheel: ``migrate`` works from an install outside the source tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JUNK = shutil.ignore_patterns(
    ".git", ".venv*", "venv", "__pycache__", "*.egg-info", "build", "dist", ".*_cache", "*.sqlite*"
)

SCRIPT = textwrap.dedent(
    """
    import asyncio, datetime as dt, sys
    import orchestrator
    from orchestrator.domain.model import DayKey, ResourceType
    from orchestrator.store import Store, create_engine, migrate

    async def main(url):
        await migrate(url)
        engine = create_engine(url)
        try:
            store = Store(engine, "AC" + "0" * 32)
            key = DayKey(ResourceType.CALLS, dt.date(2024, 1, 1))
            await store.upsert_wanted_days([key], dt.datetime.now(dt.UTC))
            print(orchestrator.__file__)
            print(len(await store.day_history(key)))
        finally:
            await engine.dispose()

    asyncio.run(main(sys.argv[1]))
    """
)


def _run(*args: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.slow
def test_migrate_runs_from_an_installed_wheel(tmp_path: Path) -> None:
    """Build a wheel, install it in a fresh venv, run migrate there, away from the checkout."""
    source = tmp_path / "src"
    # A copy, so the build leaves nothing in the checkout (build/, *.egg-info).
    shutil.copytree(ROOT, source, ignore=JUNK)
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, source, cwd=tmp_path)
    [wheel] = dist.glob("orchestrator-*.whl")

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--no-deps",
        "-q",
        wheel,
        cwd=tmp_path,
    )
    # The dependencies come from this interpreter's site-packages (offline and fast); the
    # orchestrator package itself only from the wheel (our editable hook is a .pth that a path
    # added this way does not run).
    site = Path(
        _run(
            python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path
        ).strip()
    )
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    database = run_dir / "state.sqlite"
    out = _run(python, "-I", "-c", SCRIPT, f"sqlite:///{database}", cwd=run_dir).splitlines()
    assert out[-2].startswith(str(site)), out
    assert out[-1] == "1"
