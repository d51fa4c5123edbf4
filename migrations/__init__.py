"""Alembic migrations of the orchestrator store.

This folder is also installed as ``orchestrator.store.migrations`` (a symlink in the source tree,
plain files in the wheel), so ``orchestrator migrate`` finds it from an installed package.
"""
