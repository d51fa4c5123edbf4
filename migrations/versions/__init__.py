"""Alembic revisions; each is a frozen snapshot and never imports the current tables."""
