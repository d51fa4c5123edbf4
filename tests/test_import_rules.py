"""The shape of the tree, checked on its imports (ast, no import is executed).

- ``orchestrator/domain/`` imports only the standard library, ``orchestrator.domain`` and
  ``orchestrator.errors``;
- only ``orchestrator/store/`` and ``migrations/`` import SQLAlchemy or Alembic;
- only ``orchestrator/scheduling.py`` imports APScheduler;
- ``orchestrator/workflows/`` import neither SQLAlchemy nor aiohttp, nor the configuration.

Every import counts, including those under ``if TYPE_CHECKING:`` and inside functions.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(source: str, module: str) -> Iterator[str]:
    """Every module ``source`` (the text of module ``module``) imports, absolute."""
    package = module.rsplit(".", 1)[0] if "." in module else ""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)])
                yield f"{base}.{node.module}" if node.module else base
            else:
                assert node.module is not None
                yield node.module


def _top(name: str) -> str:
    return name.split(".", 1)[0]


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(path: str, source: str) -> list[str]:
    """The import rules ``source`` breaks, for a file at ``path`` (relative to the root, '/')."""
    module = path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    problems: list[str] = []
    for name in imported_modules(source, module):
        top = _top(name)
        where = f"{path} imports {name}"
        if path.startswith("orchestrator/domain/"):
            allowed = (
                top in sys.stdlib_module_names
                or _within(name, "orchestrator.domain")
                or name == "orchestrator.errors"
            )
            if not allowed:
                problems.append(f"{where}: domain/ uses only the stdlib, domain and errors")
        if top in ("sqlalchemy", "alembic") and not (
            path.startswith("orchestrator/store/") or path.startswith("migrations/")
        ):
            problems.append(f"{where}: only store/ and migrations/ use {top}")
        if top == "apscheduler" and path != "orchestrator/scheduling.py":
            problems.append(f"{where}: only scheduling.py uses APScheduler")
        if path.startswith("orchestrator/workflows/") and (
            top in ("sqlalchemy", "aiohttp") or _within(name, "orchestrator.config")
        ):
            problems.append(f"{where}: workflows import no SQLAlchemy, aiohttp or config")
    return problems


def source_files() -> list[Path]:
    """The product's Python files: the package and the migrations (symlinks not followed)."""
    files: list[Path] = []
    for top in ("orchestrator", "migrations"):
        for directory, _subdirs, names in os.walk(ROOT / top):
            files.extend(Path(directory) / n for n in names if n.endswith(".py"))
    return sorted(files)


def test_the_tree_keeps_the_import_rules() -> None:
    """No product file breaks an import rule."""
    files = source_files()
    assert any(f.match("orchestrator/domain/model.py") for f in files)
    assert any(f.match("migrations/env.py") for f in files)
    found = [
        problem
        for file in files
        for problem in violations(file.relative_to(ROOT).as_posix(), file.read_text())
    ]
    assert found == []


@pytest.mark.parametrize(
    ("path", "source", "broken"),
    [
        ("orchestrator/domain/x.py", "import aiohttp\n", "domain/ uses only"),
        ("orchestrator/domain/x.py", "from orchestrator.store import Store\n", "domain/ uses"),
        ("orchestrator/domain/x.py", "from orchestrator.config import Settings\n", "domain/"),
        ("orchestrator/domain/x.py", "from ..config import Settings\n", "domain/ uses only"),
        ("orchestrator/daemon.py", "import sqlalchemy as sa\n", "only store/ and migrations/"),
        ("orchestrator/cli.py", "def f():\n    from alembic import command\n", "only store/"),
        ("orchestrator/daemon.py", "from apscheduler.events import X\n", "only scheduling.py"),
        ("orchestrator/workflows/poll.py", "import aiohttp\n", "workflows import no"),
        (
            "orchestrator/workflows/poll.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from orchestrator.config import Settings\n",
            "workflows import no",
        ),
        (
            "orchestrator/workflows/poll.py",
            "from ..config import Settings\n",
            "workflows import no",
        ),
    ],
)
def test_a_broken_rule_is_found(path: str, source: str, broken: str) -> None:
    """The checker reports each kind of violation (so the tree test can fail)."""
    found = violations(path, source)
    assert len(found) == 1 and broken in found[0], found


@pytest.mark.parametrize(
    ("path", "source"),
    [
        (
            "orchestrator/domain/x.py",
            "import datetime as dt\nfrom orchestrator.domain.model import Day\n"
            "from orchestrator.errors import InvalidInput\nfrom . import model\n",
        ),
        ("orchestrator/store/engine.py", "import sqlalchemy as sa\n"),
        ("migrations/env.py", "from alembic import context\n"),
        ("orchestrator/scheduling.py", "from apscheduler.schedulers.asyncio import X\n"),
        ("orchestrator/workflows/poll.py", "from orchestrator.store.repository import Store\n"),
    ],
)
def test_allowed_imports_pass(path: str, source: str) -> None:
    """What the rules allow is not reported."""
    assert violations(path, source) == []
