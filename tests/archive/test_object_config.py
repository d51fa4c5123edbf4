"""[archive] url and object-storage keys: parsing, credentials (s3, gs, az), and no secret shown."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from orchestrator.archive.layout import ArchiveUrl, parse_archive_url
from orchestrator.archive.local import LocalTarget
from orchestrator.archive.object import ObjectTarget
from orchestrator.config import Settings, load_settings
from orchestrator.errors import ConfigError, InvalidInput
from orchestrator.wiring import all_secrets, archive_target, workflow_context

BASE = """
[twilio]
account_sid = "AC22222222222222222222222222222222"
auth_token_env = "TOKEN"

[jobs]
name_prefix = "orch-cfg"

[[exports]]
name = "m"
resource_type = "Messages"
start_day = "2026-01-01"

[archive]
"""
SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
# A base64 Azure account key (the service decodes it).
AZURE_KEY = "c2VjcmV0LWF6dXJlLWFjY291bnQta2V5LTEyMzQ1Njc4OTA="
GCS_KEY = {
    "type": "service_account",
    "project_id": "p",
    "private_key_id": "k1",
    "private_key": "-----BEGIN PRIVATE KEY-----\nsecret-gcs-key-material\n-----END-----\n",
    "client_email": "archiver@p.iam.gserviceaccount.com",
    "client_id": "1",
    "token_uri": "https://oauth2.googleapis.com/token",
}


def load(tmp_path: Path, archive: str, environ: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "config.toml"
    path.write_text(BASE + textwrap.dedent(archive))
    return load_settings(path, environ={"TOKEN": "t" * 32, **(environ or {})})


def error_of(tmp_path: Path, archive: str, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, archive, environ)
    text = str(caught.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("s3://my-bucket/twilio/archive", ArchiveUrl("s3", "my-bucket", "twilio/archive")),
        ("s3://my-bucket", ArchiveUrl("s3", "my-bucket", "")),
        ("S3://my-bucket/a/", ArchiveUrl("s3", "my-bucket", "a")),
        ("gs://my_bucket.example/x", ArchiveUrl("gs", "my_bucket.example", "x")),
        ("az://container-1/deep/prefix", ArchiveUrl("az", "container-1", "deep/prefix")),
        ("file:///srv/archive", ArchiveUrl("file", directory=Path("/srv/archive"))),
    ],
)
def test_archive_urls_parse(raw: str, expected: ArchiveUrl) -> None:
    """Each scheme's URL parses into its bucket (or container) and prefix."""
    assert parse_archive_url(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("my-bucket/prefix", "must look like"),
        ("http://my-bucket/x", "is not one of"),
        ("s3:///prefix", "names no bucket"),
        ("az:///prefix", "names no container"),
        ("s3://My_Bucket/x", "not a valid s3:// bucket"),
        ("s3://ab/x", "not a valid s3:// bucket"),
        ("gs://-bucket/x", "not a valid gs:// bucket"),
        ("az://con--tainer/x", "not a valid az:// container"),
        ("s3://bucket/a/../b", "plain relative path"),
        ("s3://bucket/.hidden", "plain relative path"),
        ("s3://bucket/x?versionId=1", "query"),
        ("s3://AKIA:secret@bucket/x", "must not carry credentials"),
        ("file://host/srv", "file:///path"),
        ("file:relative", "must look like"),
    ],
)
def test_bad_archive_urls_are_refused(raw: str, message: str) -> None:
    """A bad URL is one InvalidInput saying what is wrong (never echoing a password)."""
    with pytest.raises(InvalidInput) as caught:
        parse_archive_url(raw)
    assert message in str(caught.value)
    assert "secret" not in str(caught.value)


def test_a_directory_archive_is_as_before(tmp_path: Path) -> None:
    """directory = ... alone: a local target on that directory, no object options."""
    settings = load(tmp_path, 'directory = "files"')
    assert settings.archive is not None and settings.archive.directory == tmp_path / "files"
    assert settings.archive.url is None and settings.archive.scheme == "file"
    target = archive_target(settings.archive)
    assert isinstance(target, LocalTarget) and target.directory == tmp_path / "files"


def test_a_file_url_is_a_directory(tmp_path: Path) -> None:
    """url = "file:///..." is the same archive as directory = "/...": a LocalTarget."""
    settings = load(tmp_path, f'url = "file://{tmp_path}/files"')
    assert settings.archive is not None and settings.archive.directory == tmp_path / "files"
    assert isinstance(archive_target(settings.archive), LocalTarget)


@pytest.mark.parametrize(
    ("archive", "key", "message"),
    [
        ('directory = "a"\nurl = "s3://bucket/x"', "archive.url", "not both"),
        ("max_concurrent_downloads = 2", "archive.directory", "is required"),
        ('url = "s3://bucket/x"\nregion = 5', "archive.region", "string"),
        ('directory = "a"\nendpoint = "http://127.0.0.1:9000"', "archive.endpoint", "object"),
        ('url = "s3://bucket/x"\nendpoint = "ftp://h"', "archive.endpoint", "http"),
        ('url = "s3://bucket/x"\nendpoint = "http://h:9000"', "archive.endpoint", "allow_http"),
        ('url = "s3://bucket/x"\nallow_http = true', "archive.allow_http", "needs an endpoint"),
        ('url = "gs://bucket/x"\nregion = "eu"', "archive.region", "s3:// only"),
        ('url = "s3://bucket/x"\naccount_name = "a"', "archive.account_name", "az:// only"),
        ('url = "s3://bucket/x"\nsecret_access_key = "k"', "archive.secret_access_key", "unknown"),
    ],
)
def test_bad_archive_keys_are_one_line_naming_the_key(
    tmp_path: Path, archive: str, key: str, message: str
) -> None:
    """Each mistake is one ConfigError line naming its [archive] key."""
    text = error_of(tmp_path, archive)
    assert f":{key}:" in text and message in text, text


# ------------------------------------------------------------------------- credentials, s3


def test_s3_keys_from_files_reach_the_store_and_stay_hidden(tmp_path: Path) -> None:
    """S3 keys read from files: in the target's options, in the redactor's list, in no repr."""
    (tmp_path / "ak").write_text("AKIAEXAMPLE0001\n")
    (tmp_path / "sk").write_text(SECRET + "\n")
    (tmp_path / "tok").write_text("session-token-value-77\n")
    settings = load(
        tmp_path,
        """
        url = "s3://my-bucket/twilio"
        endpoint = "https://minio.example.internal:9000"
        region = "eu-west-1"
        access_key_id_file = "ak"
        secret_access_key_file = "sk"
        session_token_file = "tok"
        """,
    )
    archive = settings.archive
    assert archive is not None
    assert archive.object_options() == {
        "access_key_id": "AKIAEXAMPLE0001",
        "secret_access_key": SECRET,
        "session_token": "session-token-value-77",
    }
    assert {SECRET, "session-token-value-77"} <= set(all_secrets(settings))
    target = archive_target(archive)
    assert isinstance(target, ObjectTarget) and target.url == "s3://my-bucket/twilio"
    for shown in (repr(settings), repr(archive), repr(target), repr(target.config), str(target)):
        assert SECRET not in shown and "session-token-value-77" not in shown


def test_s3_secret_files_read_from_the_credentials_directory(tmp_path: Path) -> None:
    """A relative *_file is read from $CREDENTIALS_DIRECTORY when systemd sets it."""
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "ak").write_text("AKIAEXAMPLE0002\n")
    (creds / "sk").write_text(SECRET + "\n")
    settings = load(
        tmp_path,
        'url = "s3://my-bucket"\naccess_key_id_file = "ak"\nsecret_access_key_file = "sk"\n',
        {"CREDENTIALS_DIRECTORY": str(creds)},
    )
    assert settings.archive is not None
    assert settings.archive.object_options()["secret_access_key"] == SECRET


@pytest.mark.parametrize(
    ("archive", "files", "key", "message"),
    [
        ('access_key_id_file = "ak"', {"ak": "AKIA1\n"}, "secret_access_key_file", "together"),
        ('secret_access_key_file = "sk"', {"sk": SECRET}, "access_key_id_file", "together"),
        ('session_token_file = "tok"', {"tok": "t"}, "session_token_file", "access_key_id_file"),
        (
            'access_key_id_file = "ak"\nsecret_access_key_file = "missing"',
            {"ak": "AKIA1\n"},
            "secret_access_key_file",
            "cannot read",
        ),
        (
            'access_key_id_file = "ak"\nsecret_access_key_file = "sk"',
            {"ak": "AKIA1\n", "sk": "\n"},
            "secret_access_key_file",
            "is empty",
        ),
        (
            'access_key_id_file = "ak"\nsecret_access_key_file = "sk"',
            {"ak": "AKIA1\n", "sk": f"{SECRET} {SECRET}\n"},
            "secret_access_key_file",
            "alone on one line",
        ),
        ('service_account_file = "g.json"', {}, "service_account_file", "does not apply"),
    ],
)
def test_s3_credential_errors(
    tmp_path: Path, archive: str, files: dict[str, str], key: str, message: str
) -> None:
    """S3 credential files: pairs, unreadable, empty or odd files; never the secret shown."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    text = error_of(tmp_path, 'url = "s3://my-bucket/x"\n' + archive)
    assert f":archive.{key}:" in text and message in text, text
    assert SECRET not in text


# ------------------------------------------------------------------------- credentials, gs


def test_a_gcs_service_account_key_file_is_read(tmp_path: Path) -> None:
    """gs:// with service_account_file: the JSON key goes to obstore, hidden everywhere."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    document = {**GCS_KEY, "private_key": pem}
    (tmp_path / "gcs.json").write_text(json.dumps(document, indent=2))
    settings = load(tmp_path, 'url = "gs://my-bucket/twilio"\nservice_account_file = "gcs.json"\n')
    assert settings.archive is not None
    options = settings.archive.object_options()
    assert json.loads(options["service_account_key"]) == document
    target = archive_target(settings.archive)
    assert isinstance(target, ObjectTarget) and target.url == "gs://my-bucket/twilio"
    material = pem.splitlines()[1]
    assert material not in repr(settings) + repr(target)
    assert any(material in s for s in all_secrets(settings))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("not json", "not a JSON service-account key"),
        ('{"client_email": "a@b"}', "no private_key"),
        ("x" * (70 * 1024), "larger than"),
    ],
)
def test_gcs_credential_errors(tmp_path: Path, content: str | None, message: str) -> None:
    """A GCS key file missing, not JSON, not a key, or huge: one line naming the key."""
    if content is not None:
        (tmp_path / "gcs.json").write_text(content)
    text = error_of(tmp_path, 'url = "gs://my-bucket"\nservice_account_file = "gcs.json"\n')
    assert ":archive.service_account_file:" in text and message in text, text


def test_a_gcs_key_obstore_cannot_use_is_a_config_error(tmp_path: Path) -> None:
    """A key with a private_key but missing fields obstore needs: ConfigError on archive.url."""
    (tmp_path / "gcs.json").write_text(json.dumps({"private_key": "secret-pk-material-9"}))
    settings = load(tmp_path, 'url = "gs://my-bucket"\nservice_account_file = "gcs.json"\n')
    assert settings.archive is not None
    with pytest.raises(ConfigError) as caught:
        archive_target(settings.archive, source="config.toml")
    text = str(caught.value)
    assert text.startswith("config.toml:archive.url: gs://my-bucket: ")
    assert "secret-pk-material-9" not in text


# ------------------------------------------------------------------------- credentials, az


def test_an_azure_account_and_key_file(tmp_path: Path) -> None:
    """az:// with account_name and account_key_file: the target is built, the key hidden."""
    (tmp_path / "azkey").write_text(AZURE_KEY + "\n")
    settings = load(
        tmp_path,
        'url = "az://archive/twilio"\naccount_name = "acct"\naccount_key_file = "azkey"\n',
    )
    assert settings.archive is not None
    assert settings.archive.object_options() == {"account_key": AZURE_KEY, "account_name": "acct"}
    assert settings.archive.secrets() == [AZURE_KEY]
    target = archive_target(settings.archive)
    assert isinstance(target, ObjectTarget) and target.url == "az://archive/twilio"
    assert AZURE_KEY not in repr(settings) + repr(target)


def test_an_azure_archive_without_an_account_is_a_config_error(tmp_path: Path) -> None:
    """az:// with no account (and no AZURE_STORAGE_ACCOUNT_NAME): ConfigError on archive.url."""
    settings = load(tmp_path, 'url = "az://archive/twilio"\n')
    assert settings.archive is not None
    with pytest.raises(ConfigError) as caught:
        archive_target(settings.archive, source="c.toml")
    assert "c.toml:archive.url: az://archive/twilio: " in str(caught.value)
    assert "Account must be specified" in str(caught.value)


def test_an_azure_key_that_is_not_base64_is_refused_without_showing_it(tmp_path: Path) -> None:
    """A malformed account key: obstore refuses it; the message does not show it."""
    (tmp_path / "azkey").write_text("not-base64-secret-key!!\n")
    settings = load(
        tmp_path,
        'url = "az://archive"\naccount_name = "acct"\naccount_key_file = "azkey"\n',
    )
    assert settings.archive is not None
    with pytest.raises(ConfigError) as caught:
        archive_target(settings.archive)
    assert "not-base64-secret-key" not in str(caught.value)


@pytest.mark.parametrize(
    ("archive", "key", "message"),
    [
        ('account_key_file = "missing"', "account_key_file", "cannot read"),
        ('access_key_id_file = "ak"', "access_key_id_file", "does not apply to az://"),
        ('service_account_file = "g"', "service_account_file", "does not apply to az://"),
    ],
)
def test_azure_credential_errors(tmp_path: Path, archive: str, key: str, message: str) -> None:
    """Azure credential keys: an unreadable key file, another cloud's keys."""
    text = error_of(tmp_path, 'url = "az://archive"\naccount_name = "acct"\n' + archive)
    assert f":archive.{key}:" in text and message in text, text


def test_cloud_secrets_in_the_environment_are_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS_SECRET_ACCESS_KEY (read by obstore itself) is in the log redactor's list."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    settings = load(tmp_path, 'url = "s3://my-bucket"\n')
    assert SECRET in all_secrets(settings)


def test_the_workflow_context_carries_the_built_target(tmp_path: Path) -> None:
    """wiring puts the target in the context's archive destination; workflows use only that."""
    settings = load(tmp_path, 'url = "s3://my-bucket/p"\nregion = "eu-west-1"\n')
    ctx = workflow_context(
        settings,
        store=None,  # type: ignore[arg-type]  # not used to build the context
        client=None,  # type: ignore[arg-type]
        clock=None,  # type: ignore[arg-type]
        health=None,  # type: ignore[arg-type]
        rand=lambda: 0.5,
    )
    assert ctx.archive is not None and ctx.archive.directory is None
    assert ctx.archive.archive_target().url == "s3://my-bucket/p"
