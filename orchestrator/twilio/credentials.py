"""Twilio credentials: an Account SID with its Auth Token, or an API key (SK...) and its secret.

The one credentials type of the project: the configuration builds it at load (with where the
secret came from), the client sends it. The secret is kept in a private slot and is only ever
turned into an ``Authorization`` header value for one API request at a time. ``repr``/``str``
show SIDs (identifiers, not secrets) only.

The owner of the SID shapes: ``ACCOUNT_SID`` and ``API_KEY_SID`` (the configuration checks
against these too). Standard library only, so the configuration may import it cheaply.
"""

from __future__ import annotations

import base64
import re
from typing import Literal

from orchestrator.errors import InvalidInput

ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
API_KEY_SID = re.compile(r"^SK[0-9a-fA-F]{32}$")
# A secret goes into an HTTP header: no whitespace or control characters may smuggle in a line.
_SECRET = re.compile(r"^[\x21-\x7e]+$")


class Secret:
    """A secret string that never shows in ``repr``/``str``; ``get_secret_value()`` reads it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return self._value == other._value

    def __hash__(self) -> int:
        return hash(self._value)


class Credentials:
    """Basic-auth credentials for the Bulk Exports API.

    Build with ``Credentials.from_auth_token(account_sid, auth_token)`` or
    ``Credentials.from_api_key(account_sid, api_key_sid, api_key_secret)``. The Account SID is
    kept in both cases: the Bulk Exports paths do not contain it, but logs and callers need it.
    """

    __slots__ = ("_account_sid", "_api_key_sid", "_origin", "_secret")

    def __init__(
        self,
        account_sid: str,
        secret: str,
        *,
        api_key_sid: str | None = None,
        origin: str | None = None,
    ) -> None:
        if not isinstance(account_sid, str) or not ACCOUNT_SID.fullmatch(account_sid):
            raise InvalidInput("account_sid", "must be AC followed by 32 hex digits")
        if api_key_sid is not None and (
            not isinstance(api_key_sid, str) or not API_KEY_SID.fullmatch(api_key_sid)
        ):
            raise InvalidInput("api_key_sid", "must be SK followed by 32 hex digits")
        field = "api_key_secret" if api_key_sid is not None else "auth_token"
        # The message never echoes the value: it is a secret even when malformed.
        if not isinstance(secret, str) or not _SECRET.fullmatch(secret):
            raise InvalidInput(field, "must be a non-empty string of visible ASCII characters")
        self._account_sid = account_sid
        self._api_key_sid = api_key_sid
        self._secret = secret
        self._origin = origin

    @classmethod
    def from_auth_token(
        cls, account_sid: str, auth_token: str, *, origin: str | None = None
    ) -> Credentials:
        """Account SID + Auth Token (the username is the Account SID)."""
        return cls(account_sid, auth_token, origin=origin)

    @classmethod
    def from_api_key(
        cls, account_sid: str, api_key_sid: str, api_key_secret: str, *, origin: str | None = None
    ) -> Credentials:
        """An API key SID (SK...) + its secret, for the account ``account_sid``."""
        return cls(account_sid, api_key_secret, api_key_sid=api_key_sid, origin=origin)

    @property
    def account_sid(self) -> str:
        return self._account_sid

    @property
    def api_key_sid(self) -> str | None:
        return self._api_key_sid

    @property
    def method(self) -> Literal["auth_token", "api_key"]:
        """Which kind of secret this is."""
        return "api_key" if self._api_key_sid is not None else "auth_token"

    @property
    def origin(self) -> str | None:
        """Where the secret came from, for diagnostics ("environment variable X", "file /p")."""
        return self._origin

    @property
    def password(self) -> Secret:
        """The Basic-auth password (the Auth Token or the API key secret), hidden in reprs."""
        return Secret(self._secret)

    @property
    def username(self) -> str:
        """The Basic-auth username: the API key SID when there is one, else the Account SID."""
        return self._api_key_sid or self._account_sid

    def authorization_header(self) -> str:
        """The ``Authorization`` header value for one API request (never for the file host)."""
        return "Basic " + self._token()

    def secret_values(self) -> tuple[str, ...]:
        """Strings that must never be logged: the secret and its Basic-auth encoding.

        Feed them to ``orchestrator.logs.SecretRedactor``.
        """
        return (self._secret, self._token())

    def _token(self) -> str:
        raw = f"{self.username}:{self._secret}".encode()
        return base64.b64encode(raw).decode("ascii")

    def __repr__(self) -> str:
        if self._api_key_sid is not None:
            return (
                f"Credentials(account_sid={self._account_sid!r}, "
                f"api_key_sid={self._api_key_sid!r}, secret=<hidden>)"
            )
        return f"Credentials(account_sid={self._account_sid!r}, auth_token=<hidden>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Credentials):
            return NotImplemented
        return (self._account_sid, self._api_key_sid, self._secret) == (
            other._account_sid,
            other._api_key_sid,
            other._secret,
        )

    def __hash__(self) -> int:
        return hash((self._account_sid, self._api_key_sid, self._secret))
