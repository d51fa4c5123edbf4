"""[http] listen: the default, off, IPv6, and one clear error naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import load_settings
from orchestrator.errors import ConfigError

from .conftest import FAKE_TOKEN, TOKEN_ENV, write_settings


def _with_http(tmp_path: Path, listen: str | None) -> Path:
    write_settings(tmp_path)
    path = tmp_path / "config.toml"
    if listen is not None:
        text = path.read_text().replace(
            "[[exports]]", f"[http]\nlisten = {listen}\n\n[[exports]]", 1
        )
        path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("listen", "address"),
    [
        (None, ("127.0.0.1", 9464)),
        ('""', None),
        ('"0.0.0.0:9100"', ("0.0.0.0", 9100)),
        ('"[::1]:9464"', ("::1", 9464)),
        ('"localhost:0"', ("localhost", 0)),
    ],
)
def test_listen_values(tmp_path: Path, listen: str | None, address: object) -> None:
    """The default is loopback 9464; "" is off; IPv6 in brackets; port 0 picks one."""
    settings = load_settings(_with_http(tmp_path, listen), environ={TOKEN_ENV: FAKE_TOKEN})
    assert settings.http.address() == address


@pytest.mark.parametrize("listen", ['"9464"', '":9464"', '"host:99999"', '"host:port"', "9464"])
def test_bad_listen_is_one_error_naming_the_key(tmp_path: Path, listen: str) -> None:
    """A bad address fails the load with an error that names http.listen."""
    with pytest.raises(ConfigError) as caught:
        load_settings(_with_http(tmp_path, listen), environ={TOKEN_ENV: FAKE_TOKEN})
    assert "http.listen" in str(caught.value)
