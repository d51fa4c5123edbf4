"""The durable state of the daemon: SQLAlchemy tables, engine set-up, migrations, the repository.

All SQL of the project lives in this package. Open a store with
``async with open_store(url, account_sid, migrate=True) as store`` (``store.open``): it builds
the engine, brings the schema up (``upgrade_to_head``) and disposes the engine after.

Names are imported on first use: reading the store never loads Alembic (``migration``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator.lazy import lazy_attributes

if TYPE_CHECKING:
    from orchestrator.store.engine import create_engine
    from orchestrator.store.migration import migrate, upgrade_to_head
    from orchestrator.store.open import open_store
    from orchestrator.store.repository import Store

_LAZY = {
    "Store": "orchestrator.store.repository",
    "create_engine": "orchestrator.store.engine",
    "migrate": "orchestrator.store.migration",
    "open_store": "orchestrator.store.open",
    "upgrade_to_head": "orchestrator.store.migration",
}


__getattr__ = lazy_attributes(__name__, _LAZY)

__all__ = ["Store", "create_engine", "migrate", "open_store", "upgrade_to_head"]
