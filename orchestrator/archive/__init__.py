"""Keeping each day's file before Twilio removes it (seven days after making it).

- ``layout``: where a day's file goes (pure; a path outside the archive cannot be built);
- ``verify``: streaming checks: gzip complete, JSON object lines, sha256, size, record count;
- ``writer``: temporary file, fsync, atomic rename, fsync of the directory;
- ``download``: one day, end to end, through the Bulk Exports client.

Which day first and what a failed attempt means are pure decisions in ``domain/archiving.py``.
The workflow that drives them (store, logs, concurrency) is ``workflows/archive.py``; the
operator's audit of the archive is ``workflows/verify_archive.py``.
"""
