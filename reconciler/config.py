"""Which MyNotary to talk to, with which credentials, and where its links live.

Settings come from flags and environment variables. The API key comes only from
``MYNOTARY_API_KEY`` or a file (``MYNOTARY_API_KEY_FILE`` or ``--api-key-file``),
never from a flag's value, because command lines show in process lists.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from reconciler.errors import ConfigurationError
from reconciler.links import TargetIdentity
from reconciler.mynotary.client import DEFAULT_RATE_LIMIT
from reconciler.mynotary.client import RetryPolicy

SANDBOX_URL = "sandbox"
SANDBOX_ORGANIZATION_ID = 1
SANDBOX_USER_ID = 1
SANDBOX_DIR = Path(".reconciler")
DEFAULT_LINKS_PATH = Path("state/links.yaml")


@dataclass(frozen=True)
class TargetOptions:
    """Target settings given on the command line; None means not given."""

    url: str | None = None
    organization_id: int | None = None
    user_id: int | None = None
    api_key_file: Path | None = None
    target: str | None = None
    links_path: Path | None = None
    timeout: float | None = None
    connect_timeout: float | None = None
    max_retries: int | None = None
    max_retry_wait: float | None = None
    rate_limit: float | None = None
    write_rate_limit: float | None = None


@dataclass(frozen=True)
class NetworkSettings:
    """Network settings of the client: connect timeout (seconds), retry policy,
    and rate limits of all requests and of writes alone (requests per second, or
    None for no limit)."""

    connect_timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    rate_limit: float | None = DEFAULT_RATE_LIMIT
    write_rate_limit: float | None = None


@dataclass(frozen=True)
class Settings:
    """Resolved settings for one run."""

    is_sandbox: bool
    url: str
    organization_id: int
    user_id: int
    links_path: Path
    timeout: float = 30.0
    api_key: str | None = field(default=None, repr=False)
    network: NetworkSettings = NetworkSettings()

    @property
    def target(self) -> TargetIdentity:
        return TargetIdentity(self.url, self.organization_id)

    @property
    def sandbox_database(self) -> Path:
        return SANDBOX_DIR / "sandbox.db"


def resolve_settings(options: TargetOptions, environ: Mapping[str, str]) -> Settings:
    """Return the settings of this run from ``options`` and ``environ``.

    Without a URL the embedded sandbox is the target, except in CI or when an API
    key is set: a forgotten URL must not turn a real run into a sandbox run.
    """
    url = (options.url or environ.get("MYNOTARY_URL") or "").strip() or None
    timeout = _timeout(options, environ)
    network = resolve_network(options, environ)
    if options.target == "sandbox":
        if url:
            raise ConfigurationError(
                "--target sandbox and a MyNotary URL were both given; drop one"
            )
        return _sandbox_settings(options, timeout, network)
    api_key = _read_api_key(options, environ)
    if url is None:
        _reject_implicit_sandbox(options, environ, api_key)
        return _sandbox_settings(options, timeout, network)
    url = canonical_url(url)
    organization_id = _required_id(
        options.organization_id,
        environ,
        "MYNOTARY_ORGANIZATION_ID",
        "--organization",
    )
    user_id = _required_id(options.user_id, environ, "MYNOTARY_USER_ID", "--user")
    if api_key is None and not is_loopback_host(urlsplit(url).hostname or ""):
        raise ConfigurationError(
            "no API key is set for MyNotary: set MYNOTARY_API_KEY, or "
            "MYNOTARY_API_KEY_FILE (or --api-key-file) to a file that holds it"
        )
    return Settings(
        is_sandbox=False,
        url=url,
        organization_id=organization_id,
        user_id=user_id,
        links_path=options.links_path or DEFAULT_LINKS_PATH,
        timeout=timeout,
        api_key=api_key,
        network=network,
    )


def _timeout(options: TargetOptions, environ: Mapping[str, str]) -> float:
    """Return the request timeout in seconds: the flag, else the variable, else 30."""
    if options.timeout is not None:
        text = str(options.timeout)
        source = "--timeout"
    else:
        text = environ.get("MYNOTARY_TIMEOUT") or "30"
        source = "MYNOTARY_TIMEOUT"
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigurationError(
            f"{source} '{text}' is not a positive number of seconds; set it to a "
            "number such as 30"
        )
    return seconds


def _sandbox_settings(
    options: TargetOptions, timeout: float, network: NetworkSettings
) -> Settings:
    return Settings(
        is_sandbox=True,
        url=SANDBOX_URL,
        organization_id=SANDBOX_ORGANIZATION_ID,
        user_id=SANDBOX_USER_ID,
        links_path=options.links_path or SANDBOX_DIR / "links.yaml",
        timeout=timeout,
        network=network,
    )


def resolve_network(
    options: TargetOptions, environ: Mapping[str, str]
) -> NetworkSettings:
    """Return the connect timeout, retry policy and rate limits of this run.

    Each comes from its flag, else its environment variable, else the default. A
    rate limit of 0 turns the limit off.
    """
    defaults = NetworkSettings()
    connect_timeout = _number(
        options.connect_timeout,
        environ,
        "MYNOTARY_CONNECT_TIMEOUT",
        "--connect-timeout",
        defaults.connect_timeout,
    )
    max_retries = _number(
        options.max_retries,
        environ,
        "MYNOTARY_MAX_RETRIES",
        "--max-retries",
        defaults.retry.max_retries,
    )
    max_wait = _number(
        options.max_retry_wait,
        environ,
        "MYNOTARY_MAX_RETRY_WAIT",
        "--max-retry-wait",
        defaults.retry.max_wait,
    )
    rate_limit = _number(
        options.rate_limit,
        environ,
        "MYNOTARY_RATE_LIMIT",
        "--rate-limit",
        defaults.rate_limit or 0,
    )
    write_rate_limit = _number(
        options.write_rate_limit,
        environ,
        "MYNOTARY_WRITE_RATE_LIMIT",
        "--write-rate-limit",
        defaults.write_rate_limit or 0,
    )

    if connect_timeout == 0:
        raise ConfigurationError(
            "the connect timeout is 0 s; set --connect-timeout or"
            " MYNOTARY_CONNECT_TIMEOUT to a positive number of seconds"
        )
    if max_retries != int(max_retries):
        raise ConfigurationError(
            f"the number of retries {max_retries:g} is not a whole number; set"
            " --max-retries or MYNOTARY_MAX_RETRIES to one, such as 5"
        )
    retry = replace(defaults.retry, max_retries=int(max_retries), max_wait=max_wait)
    return NetworkSettings(
        connect_timeout, retry, rate_limit or None, write_rate_limit or None
    )


def _number(
    value: float | None,
    environ: Mapping[str, str],
    variable: str,
    flag: str,
    default: float,
) -> float:
    """Return a number that is not negative: the flag, else the variable, else
    ``default``."""
    if value is not None:
        text, source = str(value), flag
    elif environ.get(variable):
        text, source = environ[variable], variable
    else:
        return default

    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number >= 0):
        raise ConfigurationError(
            f"{source} '{text}' is not a number of 0 or more; set it to a number"
            f" such as {default:g}"
        )
    return number


def _reject_implicit_sandbox(
    options: TargetOptions, environ: Mapping[str, str], api_key: str | None
) -> None:
    reason = None
    if options.target == "mynotary":
        reason = "--target mynotary was given"
    elif _is_set(environ.get("CI")):
        reason = "CI is set"
    elif api_key is not None:
        reason = "an API key is set"
    if reason is not None:
        raise ConfigurationError(
            f"no MyNotary URL is set and {reason}, so the sandbox is not used: "
            "set MYNOTARY_URL (or --url), or pass --target sandbox"
        )


def _is_set(flag: str | None) -> bool:
    """Read a boolean environment variable as CI services set it."""
    return (flag or "").strip().lower() not in ("", "0", "false", "no")


def _required_id(
    value: int | None, environ: Mapping[str, str], variable: str, flag: str
) -> int:
    if value is not None:
        return value
    text = environ.get(variable)
    if not text:
        raise ConfigurationError(f"{variable} is not set; set it or pass {flag}")
    try:
        value = int(text)
    except ValueError:
        raise ConfigurationError(f"{variable} must be an integer id") from None
    if value < 1:
        raise ConfigurationError(f"{variable} must be a positive integer id")
    return value


def _read_api_key(options: TargetOptions, environ: Mapping[str, str]) -> str | None:
    key_file = options.api_key_file or environ.get("MYNOTARY_API_KEY_FILE")
    if key_file:
        try:
            key = Path(key_file).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ConfigurationError(
                f"can't read the API key file {key_file}: {error.strerror}"
            ) from None
        except UnicodeDecodeError:
            raise ConfigurationError(
                f"the API key file {key_file} is not UTF-8 text"
            ) from None
        if not key:
            raise ConfigurationError(f"the API key file {key_file} is empty")
        return _checked_key(key, f"the API key file {key_file}")
    key = (environ.get("MYNOTARY_API_KEY") or "").strip()
    return _checked_key(key, "MYNOTARY_API_KEY") if key else None


def _checked_key(key: str, source: str) -> str:
    """Reject a key that can't be sent in a header; the message never shows it."""
    if all(" " < character <= "~" for character in key):
        return key
    raise ConfigurationError(
        f"{source} contains a line break, a space or a character outside printable "
        "ASCII, which an HTTP header can't carry; check that it holds the key alone"
    )


def check_url(url: str) -> None:
    """Reject a URL that is not http(s), contains credentials, or is plain http to a
    non-loopback host."""
    canonical_url(url)


def canonical_url(url: str) -> str:
    """Return ``url`` checked, with its scheme and host in lower case and no
    trailing slash, so that one target always has one identity."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(
            "the MyNotary URL contains a user name or password; remove them from the "
            "URL and set the API key in MYNOTARY_API_KEY"
        )
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"MyNotary URL '{url}' is invalid; expected https://host[/path]"
        )
    if scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigurationError(
            f"MyNotary URL '{url}' uses plain http to a remote host; use https"
        )
    netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if ":" in parts.hostname:
        netloc = f"[{parts.hostname}]" + (
            "" if parts.port is None else f":{parts.port}"
        )
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), parts.query, ""))


def is_loopback_host(host: str) -> bool:
    """Return True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    return _is_loopback(host)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
