"""Settings from flags and environment: storage URLs, secrets from env or files, never from ``ps``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from edgefleet_origin.change_events import Change
from edgefleet_origin.cli import configure
from edgefleet_origin.errors import BadRequest, ConfigError
from edgefleet_origin.minio_events import parse_notification
from edgefleet_origin.settings import FileLocation, parse_storage, settings_from_args
from edgefleet_origin.storage_s3 import S3Location
from edgefleet_origin.variants import ImageFormat, RoundWidths

CREDS = {"EDGEFLEET_S3_ACCESS_KEY": "ak", "EDGEFLEET_S3_SECRET_KEY": "sk"}


def s3(endpoint: str, secure: bool, region: str) -> S3Location:
    return S3Location("shop", endpoint, secure, region, "ak", "sk")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    configure(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("file:///srv/assets", FileLocation(Path("/srv/assets"))),
        ("file:relative/dir", FileLocation(Path("relative/dir"))),
        ("s3://shop?endpoint=http://minio:9000", s3("minio:9000", False, "us-east-1")),
        ("s3://shop?endpoint=minio:9000&secure=false&region=eu", s3("minio:9000", False, "eu")),
        ("s3://shop?endpoint=https://s3.example.com", s3("s3.example.com", True, "us-east-1")),
        (
            "s3://shop?endpoint=minio:9000&secure=false&public_url=https://upload.shop.example",
            S3Location("shop", "minio:9000", False, "us-east-1", "ak", "sk", "https://upload.shop.example"),
        ),
    ],
    ids=["file-absolute", "file-relative", "s3-http-url", "s3-secure-param", "s3-https", "s3-public-url"],
)  # fmt: skip
def test_storage_url_is_parsed(url: str, expected: object) -> None:
    assert parse_storage(url, CREDS) == expected


@pytest.mark.parametrize(
    ("url", "environ", "message"),
    [
        ("ftp://x", CREDS, "use file:///DIR"),
        ("file://host/dir", CREDS, "no host"),
        ("s3://?endpoint=x", CREDS, "no bucket"),
        ("s3://shop?endpoint=x&secure=maybe", CREDS, "secure must be"),
        ("s3://shop?endpoint=x", {}, "needs credentials"),
        ("s3://shop?endpoint=x&public_url=upload.example", CREDS, "public_url must be"),
    ],
    ids=["unknown-scheme", "file-host", "no-bucket", "bad-secure", "no-credentials", "public-url-without-scheme"],
)
def test_bad_storage_url_is_a_config_error(url: str, environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_storage(url, environ)


def test_s3_credentials_come_from_aws_names_or_files(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-file\n")
    environ = {"AWS_ACCESS_KEY_ID": "aws-ak", "EDGEFLEET_S3_SECRET_KEY_FILE": str(secret_file)}
    location = parse_storage("s3://shop?endpoint=x", environ)
    assert isinstance(location, S3Location)
    assert (location.access_key, location.secret_key) == ("aws-ak", "from-file")
    assert "from-file" not in repr(location)


def test_flags_and_environment_build_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("file-token\n")
    monkeypatch.setenv("EDGEFLEET_DEFAULT_TTL", "2h")
    args = parse([
        "--listen", "127.0.0.1:9999", "--storage", f"file://{tmp_path}", "--upload-token-file", str(token_file),
        "--widths", "640,320", "--formats", "webp,jpg", "--round-widths", "reject", "--max-upload-size", "1Mi",
    ])  # fmt: skip
    settings = settings_from_args(args, {})
    assert settings.listen == ("127.0.0.1", 9999)
    assert settings.storage == FileLocation(tmp_path)
    assert settings.upload_token == "file-token" and settings.webhook_token == "file-token"
    assert settings.default_ttl == 7200
    assert settings.variants.widths == (320, 640)
    assert settings.variants.formats == (ImageFormat.WEBP, ImageFormat.JPEG)
    assert settings.variants.round_widths is RoundWidths.REJECT
    assert settings.max_upload_size == 1024 * 1024
    assert "file-token" not in repr(settings)


def test_upload_token_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEFLEET_UPLOAD_TOKEN", "env-token")
    assert settings_from_args(parse([]), {}).upload_token == "env-token"
    monkeypatch.delenv("EDGEFLEET_UPLOAD_TOKEN")
    assert settings_from_args(parse([]), {}).upload_token is None


@pytest.mark.parametrize(
    "argv", [["--widths", "a,b"], ["--widths", "0"], ["--formats", "gif"], ["--listen", "nope"]],
    ids=["widths-not-numbers", "width-zero", "unknown-format", "bad-listen"],
)  # fmt: skip
def test_bad_flags_are_rejected(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse(argv)


def test_minio_notification_keys_are_url_decoded() -> None:
    record = {"eventName": "s3:ObjectRemoved:Delete", "s3": {"bucket": {"name": "b"}, "object": {"key": "a%2Fb+c.jpg"}}}
    [event] = parse_notification({"Records": [record]})
    assert (event.change, event.bucket, event.key) == (Change.DELETED, "b", "a/b c.jpg")


def test_minio_notification_without_records_is_rejected() -> None:
    with pytest.raises(BadRequest, match="Records"):
        parse_notification({"EventName": "s3:ObjectCreated:Put"})


def test_s3_credentials_come_from_key_file_flags(tmp_path: Path) -> None:
    (tmp_path / "ak").write_text("access-from-file")
    (tmp_path / "sk").write_text("secret-from-file")
    args = parse([
        "--storage", "s3://shop?endpoint=minio:9000", "--s3-access-key-file", str(tmp_path / "ak"),
        "--s3-secret-key-file", str(tmp_path / "sk"),
    ])  # fmt: skip
    location = settings_from_args(args, {}).storage
    assert isinstance(location, S3Location)
    assert (location.access_key, location.secret_key) == ("access-from-file", "secret-from-file")


def test_unreadable_secret_file_is_a_config_error(tmp_path: Path) -> None:
    args = parse(["--upload-token-file", str(tmp_path / "missing")])
    with pytest.raises(ConfigError, match="cannot read"):
        settings_from_args(args, {})
