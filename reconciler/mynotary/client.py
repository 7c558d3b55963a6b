"""Async client for the MyNotary requests listed in ``docs/mynotary-api.md``.

Numbers travel as exact decimals both ways: request bodies write each Decimal with
its digits, and responses read every number with a fraction as Decimal. At most
``max_in_flight`` requests are open at once, across all calls of one client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable
from collections.abc import Iterable
from collections.abc import Mapping
from decimal import Decimal
from types import TracebackType
from typing import Any
from typing import TypeGuard
from typing import TypeVar

import httpx

from reconciler.errors import RemoteError
from reconciler.mynotary.adapter import PROGRAMME_TYPE

logger = logging.getLogger(__name__)

Record = dict[str, Any]

_T = TypeVar("_T")


class MyNotaryError(RemoteError):
    """A MyNotary request failed with an error status, or got no response at all.

    ``status_code`` is None when no response arrived (connection error or timeout).
    """

    def __init__(
        self, message: str, *, method: str, path: str, status_code: int | None
    ) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.status_code = status_code


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


class MyNotaryClient:
    """Client of one MyNotary organization, acting as one MyNotary user.

    Use it as an async context manager, or call ``aclose``. ``transport`` replaces
    the network, for the sandbox app and tests. ``timeout`` is in seconds.
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
        page_size: int = 100,
        max_in_flight: int = 10,
    ) -> None:
        if page_size < 1 or max_in_flight < 1:
            raise ValueError(
                f"page_size ({page_size}) and max_in_flight ({max_in_flight})"
                " must be at least 1"
            )

        self.organization_id = organization_id
        self.creator_id = creator_id
        self.page_size = page_size
        self._api_key = api_key
        self._timeout = timeout
        self._slots = asyncio.Semaphore(max_in_flight)

        headers = {"accept": "application/json"}
        if api_key is not None:
            headers["x-api-key"] = api_key
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            transport=transport,
            timeout=timeout,
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
        self, programme_ids: Iterable[int]
    ) -> dict[int, list[Record]]:
        """Return the lot records of several programmes, read concurrently."""
        ids = list(dict.fromkeys(programme_ids))

        lists = await _gather(self.list_lots(programme_id) for programme_id in ids)

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

        A create is not idempotent, so a caller that gets an error whose outcome is
        unknown looks the record up by its natural key before sending it again.
        """
        body = {
            "organizationId": self.organization_id,
            "creatorId": self.creator_id,
            "type": type,
            "programmeId": programme_id,
            "externalReference": external_reference,
            "questions": questions,
        }
        return await self._request_record("POST", "/records", body=body)

    async def update_record(
        self, record_id: int, version: int, questions: Mapping[str, Any]
    ) -> Record:
        """Replace the given questions of a record if it is still at ``version``.

        A question set to None is removed. Raises VersionConflictError if the
        record has changed since that version was read.
        """
        body = {"version": version, "questions": questions}
        return await self._request_record("PATCH", f"/records/{record_id}", body=body)

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
        """Send one request and return its 2xx response, or raise a MyNotaryError.

        Every request goes through here, one slot of ``max_in_flight`` each.
        """
        target = _describe(path, params)
        content = None if body is None else _encode_json(body).encode("utf-8")
        headers = {} if body is None else {"content-type": "application/json"}

        async with self._slots:
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

    def _transport_error(
        self, method: str, target: str, error: httpx.RequestError
    ) -> MyNotaryError:
        if isinstance(error, httpx.TimeoutException):
            reason = f"timed out after {self._timeout} s"
        else:
            reason = f"{type(error).__name__}: {error}"
        return MyNotaryError(
            f"MyNotary request {method} {target} failed: {self._redact(reason)}",
            method=method,
            path=target,
            status_code=None,
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
        return MyNotaryError(message, method=method, path=target, status_code=status)

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
