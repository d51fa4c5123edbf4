"""The schema revision this code expects; no imports, so the fast read paths can check it."""

# The newest revision in migrations/versions (tests/store/test_open.py checks it).
SCHEMA_HEAD = "0004"
