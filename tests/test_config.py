"""Resolving the target, credentials and link table of a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config import TargetOptions
from reconciler.config import check_url
from reconciler.config import resolve_settings
from reconciler.errors import ConfigurationError

KEY = "mk_live_5f2b9c0e7a1d4c3b"
REMOTE = {
    "MYNOTARY_URL": "https://api.mynotary.test/v1",
    "MYNOTARY_ORGANIZATION_ID": "12",
    "MYNOTARY_USER_ID": "34",
    "MYNOTARY_API_KEY": KEY,
}


def refusal(reason: str) -> str:
    return (
        f"no MyNotary URL is set and {reason}, so the sandbox is not used: "
        "set MYNOTARY_URL (or --url), or pass --target sandbox"
    )


def test_config_no_url_sandbox() -> None:
    settings = resolve_settings(TargetOptions(), {})

    assert settings.is_sandbox
    assert settings.url == "sandbox"
    assert settings.organization_id == 1
    assert settings.links_path == Path(".reconciler/links.yaml")


@pytest.mark.parametrize(
    ("environ", "reason"),
    [
        ({"CI": "1"}, "CI is set"),
        ({"CI": "true"}, "CI is set"),
        ({"MYNOTARY_API_KEY": KEY}, "an API key is set"),
    ],
)
def test_config_implicit_sandbox_rejected(environ: dict[str, str], reason: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve_settings(TargetOptions(), environ)

    assert str(caught.value) == refusal(reason)


def test_config_key_file_without_url_rejected(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n", encoding="utf-8")

    with pytest.raises(ConfigurationError) as caught:
        resolve_settings(TargetOptions(api_key_file=key_file), {})

    assert str(caught.value) == refusal("an API key is set")


def test_config_target_mynotary_without_url() -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve_settings(TargetOptions(target="mynotary"), {})

    assert str(caught.value) == refusal("--target mynotary was given")


def test_config_explicit_sandbox_in_ci() -> None:
    options = TargetOptions(target="sandbox")

    settings = resolve_settings(options, {"CI": "1", "MYNOTARY_API_KEY": KEY})

    assert settings.is_sandbox
    assert settings.api_key is None


def test_config_explicit_sandbox_with_url() -> None:
    options = TargetOptions(target="sandbox", url="https://api.mynotary.test")

    with pytest.raises(ConfigurationError) as caught:
        resolve_settings(options, {})

    assert str(caught.value) == (
        "--target sandbox and a MyNotary URL were both given; drop one"
    )


def test_config_url_from_environment() -> None:
    settings = resolve_settings(TargetOptions(), {**REMOTE, "CI": "1"})

    assert not settings.is_sandbox
    assert settings.url == "https://api.mynotary.test/v1"
    assert settings.organization_id == 12
    assert settings.user_id == 34
    assert settings.links_path == Path("state/links.yaml")


def test_config_flags_override_environment() -> None:
    options = TargetOptions(
        url="https://other.mynotary.test/",
        organization_id=5,
        user_id=6,
        links_path=Path("links.yaml"),
        timeout=2.5,
    )

    settings = resolve_settings(options, REMOTE)

    assert settings.url == "https://other.mynotary.test"
    assert settings.organization_id == 5
    assert settings.user_id == 6
    assert settings.links_path == Path("links.yaml")
    assert settings.timeout == 2.5


def test_config_missing_organization() -> None:
    options = TargetOptions(url="https://api.mynotary.test", user_id=1)

    with pytest.raises(ConfigurationError) as caught:
        resolve_settings(options, {})

    assert str(caught.value) == (
        "MYNOTARY_ORGANIZATION_ID is not set; set it or pass --organization"
    )


def test_config_organization_not_integer() -> None:
    environ = {**REMOTE, "MYNOTARY_ORGANIZATION_ID": "acme"}

    with pytest.raises(ConfigurationError) as caught:
        resolve_settings(TargetOptions(), environ)

    assert str(caught.value) == "MYNOTARY_ORGANIZATION_ID must be an integer id"


@pytest.mark.parametrize(
    "url",
    [
        "http://api.mynotary.test",
        "http://10.0.0.8:8080",
        "http://127.0.0.1.example.test",
    ],
)
def test_config_plain_http_remote_rejected(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_url(url)

    assert str(caught.value) == (
        f"MyNotary URL '{url}' uses plain http to a remote host; use https"
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8765",
        "http://localhost:8765/api",
        "http://[::1]:8765",
        "https://api.mynotary.test",
    ],
)
def test_config_url_accepted(url: str) -> None:
    settings = resolve_settings(
        TargetOptions(url=url, organization_id=1, user_id=1),
        {"MYNOTARY_API_KEY": KEY},
    )

    assert settings.url == url.rstrip("/")


@pytest.mark.parametrize("url", ["ftp://api.mynotary.test", "api.mynotary.test"])
def test_config_url_invalid(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_url(url)

    assert str(caught.value) == (
        f"MyNotary URL '{url}' is invalid; expected https://host[/path]"
    )


def test_config_key_from_file(tmp_path: Path) -> None:
    key_file = tmp_path / "mynotary.key"
    key_file.write_text(f"  {KEY}\n", encoding="utf-8")
    environ = {**REMOTE, "MYNOTARY_API_KEY_FILE": str(key_file)}

    settings = resolve_settings(TargetOptions(), environ)

    assert settings.api_key == KEY


def test_config_key_file_flag_wins(tmp_path: Path) -> None:
    key_file = tmp_path / "mynotary.key"
    key_file.write_text(KEY, encoding="utf-8")
    environ = {**REMOTE, "MYNOTARY_API_KEY": "other-key"}

    settings = resolve_settings(TargetOptions(api_key_file=key_file), environ)

    assert settings.api_key == KEY


def test_config_key_from_environment() -> None:
    settings = resolve_settings(TargetOptions(), {**REMOTE, "MYNOTARY_API_KEY": KEY})

    assert settings.api_key == KEY


def test_config_key_file_missing(tmp_path: Path) -> None:
    key_file = tmp_path / "absent.key"

    with pytest.raises(ConfigurationError) as caught:
        resolve_settings(TargetOptions(api_key_file=key_file), REMOTE)

    assert str(caught.value) == (
        f"can't read the API key file {key_file}: No such file or directory"
    )


def test_config_key_file_empty(tmp_path: Path) -> None:
    key_file = tmp_path / "empty.key"
    key_file.write_text("\n", encoding="utf-8")

    with pytest.raises(ConfigurationError) as caught:
        resolve_settings(TargetOptions(api_key_file=key_file), REMOTE)

    assert str(caught.value) == f"the API key file {key_file} is empty"


def test_config_key_not_in_repr() -> None:
    settings = resolve_settings(TargetOptions(), {**REMOTE, "MYNOTARY_API_KEY": KEY})

    assert KEY not in repr(settings)
    assert KEY not in str(settings)


def test_config_timeout_from_environment() -> None:
    settings = resolve_settings(TargetOptions(), {"MYNOTARY_TIMEOUT": "4.5"})

    assert settings.timeout == 4.5


def test_config_timeout_default() -> None:
    settings = resolve_settings(TargetOptions(), {})

    assert settings.timeout == 30.0


@pytest.mark.parametrize("text", ["soon", "0", "-3", "nan", "inf"])
def test_config_timeout_invalid(text: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve_settings(TargetOptions(), {"MYNOTARY_TIMEOUT": text})

    assert str(caught.value) == (
        f"MYNOTARY_TIMEOUT '{text}' is not a positive number of seconds; set it to "
        "a number such as 30"
    )


def test_config_timeout_flag_zero() -> None:
    with pytest.raises(ConfigurationError) as caught:
        resolve_settings(TargetOptions(timeout=0.0), {"MYNOTARY_TIMEOUT": "5"})

    assert str(caught.value) == (
        "--timeout '0.0' is not a positive number of seconds; set it to a number "
        "such as 30"
    )


def test_config_remote_without_key_refused() -> None:
    environ = {name: value for name, value in REMOTE.items() if "KEY" not in name}

    with pytest.raises(ConfigurationError) as error:
        resolve_settings(TargetOptions(), environ)

    assert str(error.value).startswith("no API key is set for MyNotary")


def test_config_loopback_without_key_allowed() -> None:
    options = TargetOptions(url="http://127.0.0.1:8765", organization_id=1, user_id=1)

    settings = resolve_settings(options, {})

    assert settings.api_key is None


@pytest.mark.parametrize(
    "key", ["SECRET\nCANARY-123", "SECRET CANARY", "SECRÉT-CANARY", "a\tb"]
)
def test_config_key_not_header_safe(key: str) -> None:
    with pytest.raises(ConfigurationError) as error:
        resolve_settings(TargetOptions(), {**REMOTE, "MYNOTARY_API_KEY": " " + key})

    message = str(error.value)
    assert message.startswith("MYNOTARY_API_KEY contains a line break")
    assert "CANARY" not in message


def test_config_key_file_two_lines(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("SECRET-CANARY-123\nsecond line\n", encoding="utf-8")
    options = TargetOptions(api_key_file=key_file)

    with pytest.raises(ConfigurationError) as error:
        resolve_settings(options, REMOTE)

    assert "CANARY" not in str(error.value)


def test_config_url_credentials_refused() -> None:
    url = "https://user:SECRET-CANARY-123@api.mynotary.test"

    with pytest.raises(ConfigurationError) as error:
        resolve_settings(TargetOptions(url=url), REMOTE)

    assert "CANARY" not in str(error.value)
    assert "contains a user name or password" in str(error.value)


def test_config_url_canonical() -> None:
    options = TargetOptions(url=" HTTPS://API.MyNotary.test/v1/ ")

    settings = resolve_settings(options, REMOTE)

    assert settings.url == "https://api.mynotary.test/v1"


@pytest.mark.parametrize("value", ["false", "0", "no", ""])
def test_config_ci_false_not_set(value: str) -> None:
    settings = resolve_settings(TargetOptions(), {"CI": value})

    assert settings.is_sandbox


def test_config_organization_positive() -> None:
    with pytest.raises(ConfigurationError) as error:
        resolve_settings(TargetOptions(), {**REMOTE, "MYNOTARY_ORGANIZATION_ID": "-1"})

    assert str(error.value) == "MYNOTARY_ORGANIZATION_ID must be a positive integer id"
