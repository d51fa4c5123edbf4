"""The durable state of the daemon: SQLAlchemy tables, engine set-up, migrations, the repository.

All SQL of the project lives in this package. Build an engine with ``create_engine(url)``, bring
the schema up with ``await upgrade_to_head(engine)``, then use one ``Store(engine, account_sid)``.
"""

from orchestrator.store.engine import create_engine
from orchestrator.store.migration import migrate, upgrade_to_head
from orchestrator.store.repository import Store

__all__ = ["Store", "create_engine", "migrate", "upgrade_to_head"]
