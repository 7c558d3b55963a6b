"""Async client for the MyNotary requests listed in ``docs/mynotary-api.md``.

Numbers travel as exact decimals both ways: request bodies write each Decimal with
its digits, and responses read every number with a fraction as Decimal. At most
``max_in_flight`` requests are open at once, across all calls of one client. At
most ``rate_limit`` requests start per second, after a first burst of as many. At
most ``write_rate_limit`` creates and updates start per second, spaced evenly
without a burst.

Reads and version-checked updates are retried with tenacity after a timeout, a lost
connection, a 429 or a 5xx response. A create is retried by the generic loop only
when MyNotary cannot have committed it (429, or no connection made); after any
other failure its outcome is unknown, so ``create_record`` looks the record up by
its natural key and adopts it before it sends the create again.
``docs/resilience.md`` describes the rules.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import ssl
import time
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from decimal import Decimal
from types import TracebackType
from typing import Any
from typing import TypeGuard
from typing import TypeVar

import httpx
from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying
from tenacity import RetryCallState
from tenacity import retry_if_exception
from tenacity import stop_after_attempt
from tenacity import stop_before_delay
from tenacity import wait_random_exponential

from reconciler.errors import RemoteError
from reconciler.mynotary.adapter import PROGRAMME_TYPE

logger = logging.getLogger(__name__)

Record = dict[str, Any]

_T = TypeVar("_T")


# Statuses after which the same request may succeed. A 429 means MyNotary handled
# nothing, but a 5xx response may come after a commit, so only requests that are
# safe to repeat are sent again after one.
_TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})

# Methods whose repetition changes nothing more than the first request did: reads,
# and updates, which carry the version they expect (a repeated update that had
# landed gets 409, which ``update_record`` checks).
_REPEATABLE_METHODS = frozenset({"GET", "PATCH"})


class MyNotaryError(RemoteError):
    """A MyNotary request failed with an error status, or got no response at all.

    ``status_code`` is None when no response arrived (connection error or timeout).
    ``is_transient`` is true when the same request may succeed later, and
    ``request_sent`` when it may have reached MyNotary. ``retry_after`` is the wait
    in seconds that MyNotary asked for, and ``attempts`` the number of times the
    request was sent.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status_code: int | None,
        is_transient: bool = False,
        request_sent: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.status_code = status_code
        self.is_transient = is_transient
        self.request_sent = request_sent
        self.retry_after = retry_after
        self.attempts = 1

    @property
    def is_outcome_unknown(self) -> bool:
        """Whether MyNotary may have carried out the request despite the error."""
        if not self.request_sent:
            return False
        if self.status_code is None:
            return True
        return self.status_code >= 500

    def note_attempts(self, attempts: int) -> None:
        """Record how many times the request was sent, in the message too."""
        self.attempts = attempts
        if attempts > 1:
            self.args = (f"{self.args[0]} (after {attempts} attempts)",)


class AuthenticationError(MyNotaryError):
    """MyNotary rejected the API key (401) or its access to the organization (403)."""


class RecordNotFoundError(MyNotaryError):
    """MyNotary has no record at this path (404)."""


class VersionConflictError(MyNotaryError):
    """The record changed since it was read: its version is now ``current_version``."""

    def __init__(
        self, message: str, *, method: str, path: str, current_version: int | None
    ) -> None:
        super().__init__(message, method=method, path=path, status_code=409)
        self.current_version = current_version


class IncompleteListError(MyNotaryError):
    """A list's pages contained a different number of records than its ``total``."""


class DuplicateRecordError(MyNotaryError):
    """Several records share a natural key, which should identify one record."""


@dataclass(frozen=True)
class RetryPolicy:
    """When the client sends a failed request again, and how long it waits.

    A request is sent at most ``max_retries`` + 1 times, and no retry starts more
    than ``max_wait`` seconds after the first attempt. Without a ``Retry-After``
    from MyNotary, the wait before retry n is drawn uniformly between 0 and
    ``backoff`` * 2**(n-1) seconds, at most ``max_backoff`` ("full jitter").
    """

    max_retries: int = 5
    max_wait: float = 60.0
    backoff: float = 0.5
    max_backoff: float = 10.0


NO_RETRY = RetryPolicy(max_retries=0)

# Requests per second; MyNotary does not publish its quota, so this is a guess
# that keeps a large apply well below common API limits.
DEFAULT_RATE_LIMIT = 50.0

# Requests open at once. Terraform's default parallelism is the same, so users
# who tuned a quota for it keep their margin.
DEFAULT_MAX_IN_FLIGHT = 10

_WRITE_METHODS = frozenset({"POST", "PATCH"})


class MyNotaryClient:
    """Client of one MyNotary organization, acting as one MyNotary user.

    Use it as an async context manager, or call ``aclose``. ``transport`` replaces
    the network, for the sandbox app and tests. ``timeout`` bounds each read and
    write and ``connect_timeout`` each connection, in seconds. ``rate_limit`` limits
    every request and ``write_rate_limit`` creates and updates only, in requests
    per second; None is no limit. A write waits for both. TLS certificates are
    always verified.
    """

    def __init__(
        self,
        base_url: str,
        *,
        organization_id: int,
        creator_id: int,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        page_size: int = 100,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        retry: RetryPolicy = RetryPolicy(),
        rate_limit: float | None = DEFAULT_RATE_LIMIT,
        write_rate_limit: float | None = None,
    ) -> None:
        _check_options(page_size, max_in_flight, retry)
        _check_rate("rate_limit", rate_limit)
        _check_rate("write_rate_limit", write_rate_limit)

        self.organization_id = organization_id
        self.creator_id = creator_id
        self.page_size = page_size
        self.retry = retry
        self._api_key = api_key
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._slots = asyncio.Semaphore(max_in_flight)
        self._limiter = None if rate_limit is None else AsyncLimiter(rate_limit, 1)
        self._write_limiter = _even_limiter(write_rate_limit)

        headers = {"accept": "application/json"}
        if api_key is not None:
            headers["x-api-key"] = api_key
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
        )

    async def __aenter__(self) -> MyNotaryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections of the underlying HTTP client."""
        await self._http.aclose()

    async def list_programmes(self) -> list[Record]:
        """Return every programme record of the organization, in id order."""
        return await self._list_all({"type": PROGRAMME_TYPE})

    async def list_lots(self, programme_id: int) -> list[Record]:
        """Return every lot record of the programme record ``programme_id``."""
        return await self._list_all({"programmeId": programme_id})

    async def list_lots_of(
        self,
        programme_ids: Iterable[int],
        on_listed: Callable[[int], None] | None = None,
    ) -> dict[int, list[Record]]:
        """Return the lot records of several programmes, read concurrently.

        ``on_listed`` is called with each programme id once its lots are read.
        """
        ids = list(dict.fromkeys(programme_ids))

        async def list_one(programme_id: int) -> list[Record]:
            lots = await self.list_lots(programme_id)
            if on_listed is not None:
                on_listed(programme_id)
            return lots

        lists = await _gather(list_one(programme_id) for programme_id in ids)

        return dict(zip(ids, lists, strict=True))

    async def get_record(self, record_id: int) -> Record | None:
        """Return the record ``record_id``, or None if MyNotary has no such record."""
        try:
            return await self._request_record("GET", f"/records/{record_id}")
        except RecordNotFoundError:
            return None

    async def find_programme(self, external_reference: str) -> Record | None:
        """Return the programme record whose external reference is this Up id.

        Raises DuplicateRecordError if several programme records have it.
        """
        filters = {"type": PROGRAMME_TYPE, "externalReference": external_reference}
        return await self._find_one(
            filters, f"externalReference {external_reference!r}"
        )

    async def find_lot(self, programme_id: int, number: str) -> Record | None:
        """Return the lot numbered ``number`` in programme record ``programme_id``.

        Raises DuplicateRecordError if several lots of the programme have it.
        """
        filters = {"programmeId": programme_id, "numeroLot": number}
        return await self._find_one(
            filters, f"programmeId {programme_id} and numero_lot {number!r}"
        )

    async def create_record(
        self,
        type: str,
        questions: Mapping[str, Any],
        *,
        programme_id: int | None = None,
        external_reference: str | None = None,
    ) -> Record:
        """Create a record and return it, at version 1.

        A create is never sent again blindly. After a failure whose outcome is
        unknown (timeout, lost connection, 5xx), the record is looked up by its
        natural key. It is adopted if the create had landed, and created again
        only if it had not. A record without a natural key is not created again.
        """
        body = {
            "organizationId": self.organization_id,
            "creatorId": self.creator_id,
            "type": type,
            "programmeId": programme_id,
            "externalReference": external_reference,
            "questions": questions,
        }
        key = _natural_key(type, questions, programme_id, external_reference)
        attempts = _Counter()
        sent = _Counter()

        async def attempt() -> Record:
            attempts.count += 1
            if attempts.count > 1 and key is not None:
                found = await self._find_by_key(key)
                if found is not None:
                    logger.warning(
                        "adopted record #%s with %s: the create whose response was"
                        " lost had landed",
                        found.get("id"),
                        key.describe(),
                    )
                    return found
            sent.count += 1
            return await self._request_record("POST", "/records", body=body)

        retrying = self._create_retrying(may_retry=key is not None)
        try:
            return await retrying(attempt)
        except MyNotaryError as error:
            # A failed lookup leaves the outcome of the creates sent unknown too.
            if sent.count and (error.is_outcome_unknown or error.method == "GET"):
                _note_unknown_create(error, sent.count)
            raise

    async def update_record(
        self, record_id: int, version: int, questions: Mapping[str, Any]
    ) -> Record:
        """Replace the given questions of a record if it is still at ``version``.

        A question set to None is removed. Raises VersionConflictError if the
        record has changed since that version was read. When the update was sent
        again after a lost response and the retry gets 409, the record is read: if
        it contains the questions sent, the first update had landed and it is
        returned.
        """
        body = {"version": version, "questions": questions}
        path = f"/records/{record_id}"
        try:
            return await self._request_record("PATCH", path, body=body)
        except VersionConflictError as error:
            if error.attempts <= 1:
                raise
            return await self._confirm_update(record_id, questions, error)

    async def _confirm_update(
        self,
        record_id: int,
        questions: Mapping[str, Any],
        conflict: VersionConflictError,
    ) -> Record:
        record = await self.get_record(record_id)
        if record is None or not _holds_questions(record, questions):
            raise conflict

        logger.info(
            "PATCH /records/%s had landed before its retry got 409: the record"
            " contains the questions sent",
            record_id,
        )
        return record

    async def _find_by_key(self, key: _NaturalKey) -> Record | None:
        if key.programme_id is None:
            return await self.find_programme(key.value)
        return await self.find_lot(key.programme_id, key.value)

    async def _list_all(self, filters: Mapping[str, Any]) -> list[Record]:
        params = self._list_params(filters)
        target = _describe("/records", params)

        first = await self._list_page(params, 1)
        total = _expect_int(first, "total", target, minimum=0)
        page_size = _expect_int(first, "pageSize", target, minimum=1)
        page_count = math.ceil(total / page_size)

        rest = await _gather(
            self._list_page(params, page) for page in range(2, page_count + 1)
        )

        return _join_pages([first, *rest], total, target)

    def _list_params(self, filters: Mapping[str, Any]) -> dict[str, Any]:
        return {"organizationId": self.organization_id, **filters}

    async def _list_page(self, params: Mapping[str, Any], page: int) -> Record:
        query = {**params, "page": page, "pageSize": self.page_size}
        return await self._request_record("GET", "/records", params=query)

    async def _find_one(self, filters: Mapping[str, Any], key: str) -> Record | None:
        records = await self._list_all(filters)
        if len(records) <= 1:
            return records[0] if records else None

        ids = ", ".join(str(record.get("id")) for record in records)
        raise DuplicateRecordError(
            f"MyNotary has {len(records)} records with {key} (ids {ids});"
            " remove the duplicates in MyNotary so that one record remains",
            method="GET",
            path=_describe("/records", self._list_params(filters)),
            status_code=200,
        )

    async def _request_record(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Record:
        response = await self._request(method, path, params=params, body=body)
        return _parse_record(response, method, _describe(path, params))

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        """Send a request and return its 2xx response, or raise a MyNotaryError.

        Every request goes through here. A failure that ``_is_retryable`` accepts
        is retried under the client's RetryPolicy; the error raised in the end
        carries the number of attempts.
        """
        target = _describe(path, params)
        content = None if body is None else _encode_json(body).encode("utf-8")
        headers = {} if body is None else {"content-type": "application/json"}
        attempts = _Counter()

        async def attempt() -> httpx.Response:
            attempts.count += 1
            return await self._send(method, path, target, params, content, headers)

        try:
            return await self._retrying(_is_retryable)(attempt)
        except MyNotaryError as error:
            error.note_attempts(attempts.count)
            raise

    async def _send(
        self,
        method: str,
        path: str,
        target: str,
        params: Mapping[str, Any] | None,
        content: bytes | None,
        headers: Mapping[str, str],
    ) -> httpx.Response:
        """Send one attempt, in one slot of ``max_in_flight`` and under the rates."""
        async with self._slots:
            if self._write_limiter is not None and method in _WRITE_METHODS:
                await self._write_limiter.acquire()
            if self._limiter is not None:
                await self._limiter.acquire()

            started = time.monotonic()
            try:
                response = await self._http.request(
                    method, path, params=params, content=content, headers=headers
                )
            except httpx.RequestError as error:
                _log_request(method, target, "failed", started)
                raise self._transport_error(method, target, error) from error

        _log_request(method, target, response.status_code, started)
        if response.is_success:
            return response
        raise self._status_error(method, target, response)

    def _retrying(self, should_retry: Callable[[BaseException], bool]) -> AsyncRetrying:
        policy = self.retry
        return AsyncRetrying(
            retry=retry_if_exception(should_retry),
            stop=stop_after_attempt(policy.max_retries + 1)
            | stop_before_delay(policy.max_wait),
            wait=_RetryAfterOrBackoff(policy),
            before_sleep=_log_retry,
            reraise=True,
        )

    def _create_retrying(self, *, may_retry: bool) -> AsyncRetrying:
        def should_retry(error: BaseException) -> bool:
            # Only the create itself: a lookup has already used its own retries.
            return (
                may_retry
                and isinstance(error, MyNotaryError)
                and error.method == "POST"
                and error.is_outcome_unknown
            )

        return self._retrying(should_retry)

    def _transport_error(
        self, method: str, target: str, error: httpx.RequestError
    ) -> MyNotaryError:
        if isinstance(error, httpx.ConnectTimeout):
            reason = f"timed out after {self._connect_timeout} s while connecting"
        elif isinstance(error, httpx.TimeoutException):
            reason = f"timed out after {self._timeout} s"
        else:
            reason = f"{type(error).__name__}: {error}"

        return MyNotaryError(
            f"MyNotary request {method} {target} failed: {self._redact(reason)}",
            method=method,
            path=target,
            status_code=None,
            is_transient=_is_transient_transport_error(error),
            request_sent=not isinstance(error, _UNSENT_TRANSPORT_ERRORS),
        )

    def _status_error(
        self, method: str, target: str, response: httpx.Response
    ) -> MyNotaryError:
        status = response.status_code
        body = _error_body(response)
        server_message = body.get("message") or response.reason_phrase
        message = (
            f"MyNotary request {method} {target} failed with status {status}:"
            f" {self._redact(str(server_message))}"
        )

        if status in (401, 403):
            return AuthenticationError(
                f"{message}; {self._authentication_hint(status)}",
                method=method,
                path=target,
                status_code=status,
            )
        if status == 404:
            return RecordNotFoundError(
                message, method=method, path=target, status_code=status
            )
        if status == 409:
            return _version_conflict(message, method, target, body)
        if status == 429:
            message += (
                "; MyNotary's rate limit was reached, so lower --rate-limit"
                " (MYNOTARY_RATE_LIMIT) or --write-rate-limit"
                " (MYNOTARY_WRITE_RATE_LIMIT)"
            )
        return MyNotaryError(
            message,
            method=method,
            path=target,
            status_code=status,
            is_transient=status in _TRANSIENT_STATUSES,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )

    def _authentication_hint(self, status: int) -> str:
        if status == 401:
            return "check the API key in MYNOTARY_API_KEY or MYNOTARY_API_KEY_FILE"
        return (
            f"check the organization id ({self.organization_id}) and that the API key"
            " in MYNOTARY_API_KEY or MYNOTARY_API_KEY_FILE may act on it"
        )

    def _redact(self, text: str) -> str:
        # A server or proxy may echo request headers back in an error message.
        if self._api_key:
            return text.replace(self._api_key, "***")
        return text


# A timeout, a lost connection or a malformed response may not happen again.
_TRANSIENT_TRANSPORT_ERRORS = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)

# Errors raised before any byte of the request left: no connection was made, or
# none was free in the pool.
_UNSENT_TRANSPORT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _is_transient_transport_error(error: httpx.RequestError) -> bool:
    if not isinstance(error, _TRANSIENT_TRANSPORT_ERRORS):
        return False

    # A certificate that fails verification fails again on the next attempt.
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return False
        cause = cause.__cause__ or cause.__context__
    return True


class _Counter:
    """A count shared between a retry loop and its attempts."""

    def __init__(self) -> None:
        self.count = 0


@dataclass(frozen=True)
class _NaturalKey:
    """What finds a record again on MyNotary without its id.

    A programme's key is its external reference (``programme_id`` None); a lot's
    is its number within the programme record ``programme_id``.
    """

    value: str
    programme_id: int | None = None

    def describe(self) -> str:
        if self.programme_id is None:
            return f"externalReference {self.value!r}"
        return f"programmeId {self.programme_id} and numero_lot {self.value!r}"


def _natural_key(
    record_type: str,
    questions: Mapping[str, Any],
    programme_id: int | None,
    external_reference: str | None,
) -> _NaturalKey | None:
    if record_type == PROGRAMME_TYPE:
        if external_reference is None:
            return None
        return _NaturalKey(external_reference)

    number = questions.get("numero_lot")
    if programme_id is None or number is None:
        return None
    return _NaturalKey(str(number), programme_id)


def _check_options(
    page_size: int,
    max_in_flight: int,
    retry: RetryPolicy,
) -> None:
    if page_size < 1 or max_in_flight < 1:
        raise ValueError(
            f"page_size ({page_size}) and max_in_flight ({max_in_flight})"
            " must be at least 1"
        )
    if retry.max_retries < 0 or retry.max_wait < 0 or retry.backoff < 0:
        raise ValueError(f"{retry} has a negative value")


def _check_rate(name: str, rate: float | None) -> None:
    if rate is not None and rate <= 0:
        raise ValueError(f"{name} ({rate}) must be positive")


def _even_limiter(rate: float | None) -> AsyncLimiter | None:
    """Return a limiter that starts one request every 1 / ``rate`` seconds.

    A bucket of one request leaves no burst, so a quota of ``rate`` per second,
    whether a token bucket or a count per second, keeps a margin for requests
    that arrive closer together than they were sent.
    """
    if rate is None:
        return None
    return AsyncLimiter(1, 1 / rate)


def _is_retryable(error: BaseException) -> bool:
    """Tell whether sending the same request again is safe and may succeed."""
    if not isinstance(error, MyNotaryError) or not error.is_transient:
        return False
    if error.status_code == 429 or not error.request_sent:
        return True
    return error.method in _REPEATABLE_METHODS


def parse_retry_after(value: str | None) -> float | None:
    """Return the wait in seconds that a ``Retry-After`` header requests.

    The header contains either a number of seconds or an HTTP date (RFC 9110,
    section 10.2.3). A date in the past means no wait; an invalid value, None.
    """
    if value is None:
        return None

    text = value.strip()
    if text.isdigit():
        return float(text)

    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


class _RetryAfterOrBackoff:
    """The wait before a retry: MyNotary's ``Retry-After`` if it sent one, else an
    exponential backoff with full jitter."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._backoff = wait_random_exponential(
            multiplier=policy.backoff, max=policy.max_backoff
        )

    def __call__(self, retry_state: RetryCallState) -> float:
        error = _outcome_error(retry_state)
        if isinstance(error, MyNotaryError) and error.retry_after is not None:
            return error.retry_after
        return float(self._backoff(retry_state))


def _outcome_error(retry_state: RetryCallState) -> BaseException | None:
    outcome = retry_state.outcome
    if outcome is None or not outcome.failed:
        return None
    return outcome.exception()


def _log_retry(retry_state: RetryCallState) -> None:
    """Log one line per retry: the request, what failed, and the wait."""
    error = _outcome_error(retry_state)
    if not isinstance(error, MyNotaryError):
        return

    if error.status_code is not None:
        failure = f"status {error.status_code}"
    else:
        failure = type(error.__cause__).__name__
    then = ""
    if error.method == "POST" and error.is_outcome_unknown:
        then = "; the record is looked up by its natural key before the retry"
    logger.info(
        "retrying %s %s after %s (attempt %d); waiting %.2f s%s",
        error.method,
        error.path,
        failure,
        retry_state.attempt_number,
        retry_state.upcoming_sleep,
        then,
    )


def _note_unknown_create(error: MyNotaryError, attempts: int) -> None:
    tries = "once" if attempts == 1 else f"{attempts} times"
    error.args = (
        f"{error.args[0]}; the create was sent {tries} and its outcome is unknown,"
        " so the next apply looks the record up by its natural key before"
        " creating it",
    )


def _holds_questions(record: Record, questions: Mapping[str, Any]) -> bool:
    """Tell whether ``record`` has every question as sent (None: absent)."""
    stored = record.get("questions")
    if not isinstance(stored, dict):
        return False

    # A round trip through JSON compares values as MyNotary stores them.
    sent = _decode_json(_encode_json(questions))
    for name, value in sent.items():
        if value is None and name in stored:
            return False
        if value is not None and stored.get(name) != value:
            return False
    return True


def _version_conflict(
    message: str, method: str, target: str, body: Mapping[str, Any]
) -> VersionConflictError:
    current = body.get("currentVersion")
    return VersionConflictError(
        f"{message}; the record changed since it was read"
        f" (current version {current}), so plan again",
        method=method,
        path=target,
        current_version=current if isinstance(current, int) else None,
    )


def _parse_record(response: httpx.Response, method: str, target: str) -> Record:
    try:
        body = _decode_json(response.text)
    except ValueError:
        body = None

    if not isinstance(body, dict):
        raise MyNotaryError(
            f"MyNotary request {method} {target} returned status"
            f" {response.status_code} with a body that is not a JSON object",
            method=method,
            path=target,
            status_code=response.status_code,
        )
    return body


def _join_pages(pages: list[Record], total: int, target: str) -> list[Record]:
    items: list[Record] = []
    for page in pages:
        page_items = page.get("items")
        if not _is_record_list(page_items):
            raise _incomplete(f"a page of {target} has no list of records", target)
        if page.get("total") != total:
            raise _incomplete(
                f"the total of {target} changed from {total} to {page.get('total')}"
                " while its pages were read",
                target,
            )
        items.extend(page_items)

    if len(items) != total:
        raise _incomplete(
            f"{target} returned {len(items)} records but its total is {total}", target
        )

    ids = [item.get("id") for item in items]
    if len(set(ids)) != len(ids):
        raise _incomplete(f"{target} returned the same record twice", target)
    return items


def _is_record_list(value: object) -> TypeGuard[list[Record]]:
    if not isinstance(value, list):
        return False
    return all(isinstance(item, dict) for item in value)


def _incomplete(reason: str, target: str) -> IncompleteListError:
    return IncompleteListError(
        f"Incomplete MyNotary list: {reason}, so no record was treated as absent;"
        " run the command again",
        method="GET",
        path=target,
        status_code=200,
    )


def _expect_int(
    body: Mapping[str, Any], name: str, target: str, *, minimum: int
) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise MyNotaryError(
            f"MyNotary request GET {target} returned an invalid {name}: {value!r}",
            method="GET",
            path=target,
            status_code=200,
        )
    return value


def _error_body(response: httpx.Response) -> Mapping[str, Any]:
    try:
        body = _decode_json(response.text)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _describe(path: str, params: Mapping[str, Any] | None) -> str:
    """Return the path and query of a request, for logs and error messages."""
    if not params:
        return path
    return str(
        httpx.URL(path, params={key: str(value) for key, value in params.items()})
    )


def _log_request(method: str, target: str, outcome: object, started: float) -> None:
    elapsed_ms = (time.monotonic() - started) * 1000
    logger.info("%s %s %s %.0f ms", method, target, outcome, elapsed_ms)


async def _gather(awaitables: Iterable[Awaitable[_T]]) -> list[_T]:
    """Run awaitables concurrently and return their results in order.

    On the first error the others are cancelled and awaited before it propagates,
    so no task outlives the call.
    """
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _encode_json(value: Any) -> str:
    """Serialize a request body, writing each Decimal with its exact digits."""
    if value is None or isinstance(value, bool | str | int | float):
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a finite number and cannot be sent")
        return str(value)
    if isinstance(value, Mapping):
        members = (
            f"{json.dumps(str(key), ensure_ascii=False)}:{_encode_json(item)}"
            for key, item in value.items()
        )
        return "{" + ",".join(members) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode_json(item) for item in value) + "]"
    raise TypeError(f"{type(value).__name__} cannot be sent as JSON")


def _decode_json(text: str) -> Any:
    return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")
