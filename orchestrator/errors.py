"""The one exception tree of the project.

Every error the project raises on purpose derives from ``OrchestratorError``::

    OrchestratorError
    ├── ConfigError               bad configuration; the CLI prints one line and exits 78
    ├── InvalidInput (ValueError) a value failed validation before any I/O; ``field`` names it
    ├── StoreError                the state store refused or failed an operation
    │   └── ClaimConflict         another writer claimed the same days first
    ├── NotLeader                 this process does not (or cannot tell that it does) lead the
    │                             account: it must not write or call Twilio; not a StoreError,
    │                             so no per-item handler takes it for one item's failure
    ├── ArchiveError              a day file could not be archived
    │   ├── DownloadCorrupt       truncated gzip, a non-JSON line, size mismatch
    │   └── ArchiveWriteError     the archive directory is full or not writable
    └── TwilioError               anything that went wrong talking to the Bulk Exports API
        ├── TransportError        no usable HTTP answer: timeout, connection reset, DNS
        ├── MalformedResponse     an answer whose body is not the shape the API documents
        ├── AmbiguousCreateError  a create POST failed in a way that may have created the job;
        │                         look it up by friendly name before creating again
        └── ApiError              the API answered with an error status (``status``, ``code``,
            │                     ``message``, ``more_info`` kept from Twilio's body)
            ├── AuthenticationError   401/403 (e.g. 20003): never retried
            ├── BadRequest            400 validation error: never retried
            ├── NotFound              404: unknown SID, or expired and dropped by Twilio
            ├── RateLimited           429 / 20429: safe to retry; ``retry_after`` when given
            ├── ServerError           5xx
            └── DownloadExpired       400/403 from the file host: the pre-signed day URL expired
                                      or was refused; resolve the day URL again

Messages never contain secrets: the client builds them from Twilio's code and message only.
"""

from __future__ import annotations


class OrchestratorError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(OrchestratorError):
    """The configuration is invalid; ``source`` and ``key`` say where."""

    def __init__(self, message: str, *, source: str = "", key: str = "") -> None:
        self.source = source
        self.key = key
        where = ":".join(part for part in (source, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class InvalidInput(OrchestratorError, ValueError):
    """A value failed validation before anything was sent or written."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class StoreError(OrchestratorError):
    """The state store refused or failed an operation."""


class ClaimConflict(StoreError):
    """Another writer claimed some of the same days into a live job first."""


class NotLeader(OrchestratorError):
    """This process may not act for the account now: another leads, or the lease ran out."""


class ArchiveError(OrchestratorError):
    """A day file could not be archived."""


class DownloadCorrupt(ArchiveError):
    """The downloaded file is truncated, not gzip JSON lines, or of the wrong size."""


class ArchiveWriteError(ArchiveError):
    """The archive directory is full or cannot be written."""


class TwilioError(OrchestratorError):
    """Anything that went wrong talking to the Bulk Exports API."""


class TransportError(TwilioError):
    """No usable HTTP answer: a timeout, a reset connection, a failed DNS lookup."""


class MalformedResponse(TwilioError):
    """The API answered with a body that is not the documented shape."""


class AmbiguousCreateError(TwilioError):
    """A create POST failed after it may have reached Twilio; the job may exist.

    The caller must list jobs and look for ``friendly_name`` before creating again.
    """

    def __init__(self, friendly_name: str, reason: str) -> None:
        self.friendly_name = friendly_name
        self.reason = reason
        super().__init__(f"create of job {friendly_name!r} may have succeeded: {reason}")


class ApiError(TwilioError):
    """The API answered with an error status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: int | None = None,
        more_info: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.more_info = more_info
        label = f"HTTP {status}" + (f" (Twilio code {code})" if code is not None else "")
        super().__init__(f"{label}: {message}")


class AuthenticationError(ApiError):
    """401/403: the credentials are wrong or lack permission. Never retried."""


class BadRequest(ApiError):
    """400: the request failed Twilio's validation. Never retried."""


class NotFound(ApiError):
    """404: the SID or resource is unknown (or expired and dropped by Twilio)."""


class RateLimited(ApiError):
    """429 / 20429: too many concurrent requests; never processed, always safe to retry."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: int | None = None,
        more_info: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, message, code=code, more_info=more_info)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: Twilio or a proxy in front of it failed."""


class DownloadExpired(ApiError):
    """400/403 from the file host: the pre-signed URL expired or was refused.

    Not retried as is: resolve the day's URL again (a new pre-signed URL) and download that.
    """
