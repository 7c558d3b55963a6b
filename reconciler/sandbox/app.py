"""The sandbox's HTTP API: the requests of ``docs/mynotary-api.md`` over a RecordStore.

Every error response has the body ``{"error": CODE, "message": TEXT}`` and the
contract's status code.

Middleware added with ``app.add_middleware`` wraps the API key check and the routes,
so it sees every request and every response, errors included.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp
from starlette.types import Receive
from starlette.types import Scope
from starlette.types import Send

from reconciler.mynotary.adapter import DWELLING_LOT_TYPE
from reconciler.mynotary.adapter import OTHER_LOT_TYPE
from reconciler.mynotary.adapter import PROGRAMME_TYPE
from reconciler.sandbox.store import RecordNotFound
from reconciler.sandbox.store import RecordStore
from reconciler.sandbox.store import VersionConflict
from reconciler.sandbox.store import dumps_json
from reconciler.sandbox.store import loads_json

Endpoint = Callable[[Request], Awaitable[Response]]

MAX_PAGE_SIZE = 100

RECORD_TYPES = (PROGRAMME_TYPE, DWELLING_LOT_TYPE, OTHER_LOT_TYPE)
LOT_TYPES = (DWELLING_LOT_TYPE, OTHER_LOT_TYPE)

_CREATE_FIELDS = (
    "organizationId",
    "creatorId",
    "type",
    "programmeId",
    "externalReference",
    "questions",
)
_UPDATE_FIELDS = ("version", "questions")
_HTTP_ERROR_CODES = {404: "not_found", 405: "method_not_allowed"}
_LIST_PARAMETERS = (
    "organizationId",
    "type",
    "programmeId",
    "externalReference",
    "numeroLot",
    "page",
    "pageSize",
)


# SQLite integers are 64-bit: larger ids can name no record.
_MAX_ID = 2**63 - 1


class JSONResponse(Response):
    """A JSON response that writes decimals as numbers with their exact digits."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps_json(content).encode("utf-8")


class ApiError(Exception):
    """An error response: HTTP status, error code, message and extra body members."""

    def __init__(self, status_code: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.extra = extra

    def to_response(self) -> JSONResponse:
        """Return the error as a response with the contract's body."""
        body = {"error": self.code, "message": self.message, **self.extra}
        return JSONResponse(body, status_code=self.status_code)


def _invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_request", message)


@dataclass(frozen=True)
class _CreateRequest:
    organization_id: int
    creator_id: int
    type: str
    programme_id: int | None
    external_reference: str | None
    questions: dict[str, Any]


@dataclass(frozen=True)
class _UpdateRequest:
    version: int
    questions: dict[str, Any]


@dataclass(frozen=True)
class _ListQuery:
    organization_id: int
    type: str | None
    programme_id: int | None
    external_reference: str | None
    numero_lot: str | None
    page: int
    page_size: int


class _ApiKeyMiddleware:
    """Reject with 401 every request whose ``x-api-key`` header is not the API key."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self._app = app
        self._api_key = api_key.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._is_authorized(scope):
            await self._app(scope, receive, send)
            return

        error = ApiError(401, "unauthorized", "missing or invalid x-api-key header")
        await error.to_response()(scope, receive, send)

    def _is_authorized(self, scope: Scope) -> bool:
        sent = Headers(scope=scope).get("x-api-key")
        if sent is None:
            return False
        return hmac.compare_digest(sent.encode("utf-8"), self._api_key)


class _RecordsApi:
    """The endpoints of the contract, over one store."""

    def __init__(self, store: RecordStore) -> None:
        self._store = store

    async def create(self, request: Request) -> Response:
        """POST /records: create a record and return it with status 201."""
        body = await _read_body(request)
        create = _parse_create(body)

        self._check_programme(create)
        record = self._store.create(
            create.organization_id,
            create.creator_id,
            create.type,
            create.programme_id,
            create.external_reference,
            create.questions,
        )

        return JSONResponse(record, status_code=201)

    async def list(self, request: Request) -> Response:
        """GET /records: return one page of an organization's records that match."""
        query = _parse_list_query(request.query_params)

        items, total = self._store.list(
            query.organization_id,
            type=query.type,
            programme_id=query.programme_id,
            external_reference=query.external_reference,
            numero_lot=query.numero_lot,
            page=query.page,
            page_size=query.page_size,
            as_stored=True,
        )

        body = {
            "items": items,
            "total": total,
            "page": query.page,
            "pageSize": query.page_size,
        }
        return JSONResponse(body)

    async def get(self, request: Request) -> Response:
        """GET /records/{id}: return one record, or 404 if it does not exist."""
        record_id: int = request.path_params["id"]

        record = None
        if record_id <= _MAX_ID:
            record = self._store.get(record_id, as_stored=True)
        if record is None:
            raise ApiError(404, "not_found", f"record {record_id} does not exist")

        return JSONResponse(record)

    async def update(self, request: Request) -> Response:
        """PATCH /records/{id}: merge questions if the version is unchanged."""
        record_id: int = request.path_params["id"]
        body = await _read_body(request)
        update = _parse_update(body)
        if record_id > _MAX_ID:
            raise ApiError(404, "not_found", f"record {record_id} does not exist")

        try:
            record = self._store.update(record_id, update.version, update.questions)
        except RecordNotFound as error:
            raise ApiError(404, "not_found", str(error)) from None
        except VersionConflict as error:
            raise ApiError(
                409,
                "version_conflict",
                str(error),
                currentVersion=error.current_version,
            ) from None

        return JSONResponse(record)

    def _check_programme(self, create: _CreateRequest) -> None:
        if create.type not in LOT_TYPES:
            if create.programme_id is not None:
                raise _invalid(f"programmeId must be null for a {create.type} record")
            return

        if create.programme_id is None:
            raise _invalid(
                f"programmeId is missing: a {create.type} record needs the id"
                " of its programme record"
            )

        programme = self._store.get(create.programme_id)
        if not _is_programme_of(programme, create.organization_id):
            raise _invalid(
                f"programmeId {create.programme_id} is not a programme record"
                f" of organization {create.organization_id}"
            )


def _is_programme_of(record: Mapping[str, Any] | None, organization_id: int) -> bool:
    if record is None:
        return False
    return bool(
        record["type"] == PROGRAMME_TYPE and record["organizationId"] == organization_id
    )


async def _read_body(request: Request) -> dict[str, Any]:
    raw = await request.body()

    try:
        body = loads_json(raw)
    except (ValueError, RecursionError):
        raise _invalid("request body is not valid JSON") from None

    if not isinstance(body, dict):
        raise _invalid("request body must be a JSON object")
    return body


def _check_fields(body: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise _invalid(
            f"unknown field {unknown[0]!r}; expected fields: {', '.join(allowed)}"
        )


def _body_int(body: Mapping[str, Any], name: str, *, required: bool) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise _invalid(f"{name} is missing")
        return None

    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"{name} must be an integer, got {dumps_json(value)}")
    if abs(value) > _MAX_ID:
        raise _invalid(f"{name} must be at most {_MAX_ID}, got {value}")
    return value


def _body_text(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise _invalid(f"{name} must be a string or null, got {dumps_json(value)}")
    return value


def _body_questions(body: Mapping[str, Any], *, required: bool) -> dict[str, Any]:
    value = body.get("questions")
    if value is None and not required:
        return {}

    if not isinstance(value, dict):
        raise _invalid(f"questions must be a JSON object, got {dumps_json(value)}")
    return value


def _record_type(value: Any) -> str:
    if value not in RECORD_TYPES:
        raise _invalid(
            f"type must be one of {', '.join(RECORD_TYPES)}, got {dumps_json(value)}"
        )
    return str(value)


def _parse_create(body: Mapping[str, Any]) -> _CreateRequest:
    _check_fields(body, _CREATE_FIELDS)
    organization_id = _body_int(body, "organizationId", required=True)
    creator_id = _body_int(body, "creatorId", required=True)

    if body.get("type") is None:
        raise _invalid("type is missing")

    assert organization_id is not None and creator_id is not None
    return _CreateRequest(
        organization_id=organization_id,
        creator_id=creator_id,
        type=_record_type(body["type"]),
        programme_id=_body_int(body, "programmeId", required=False),
        external_reference=_body_text(body, "externalReference"),
        questions=_body_questions(body, required=False),
    )


def _parse_update(body: Mapping[str, Any]) -> _UpdateRequest:
    _check_fields(body, _UPDATE_FIELDS)
    version = _body_int(body, "version", required=True)

    assert version is not None
    return _UpdateRequest(
        version=version, questions=_body_questions(body, required=True)
    )


def _query_int(params: QueryParams, name: str) -> int | None:
    text = params.get(name)
    if text is None:
        return None

    try:
        value = int(text)
    except ValueError:
        raise _invalid(f"{name} must be an integer, got {text!r}") from None
    if abs(value) > _MAX_ID:
        raise _invalid(f"{name} must be at most {_MAX_ID}, got {text}")
    return value


def _page_number(params: QueryParams) -> int:
    page = _query_int(params, "page")
    if page is None:
        return 1
    if page < 1:
        raise _invalid(f"page must be at least 1, got {page}")
    return page


def _page_size(params: QueryParams) -> int:
    page_size = _query_int(params, "pageSize")
    if page_size is None:
        return MAX_PAGE_SIZE
    if page_size < 1:
        raise _invalid(f"pageSize must be at least 1, got {page_size}")

    # The contract caps larger page sizes instead of rejecting them.
    return min(page_size, MAX_PAGE_SIZE)


def _parse_list_query(params: QueryParams) -> _ListQuery:
    _check_parameters(params)
    organization_id = _query_int(params, "organizationId")
    if organization_id is None:
        raise _invalid("organizationId is missing: listing needs an organization")

    record_type = params.get("type")
    return _ListQuery(
        organization_id=organization_id,
        type=None if record_type is None else _record_type(record_type),
        programme_id=_query_int(params, "programmeId"),
        external_reference=params.get("externalReference"),
        numero_lot=params.get("numeroLot"),
        page=_page_number(params),
        page_size=_page_size(params),
    )


def _check_parameters(params: QueryParams) -> None:
    unknown = sorted(set(params.keys()) - set(_LIST_PARAMETERS))
    if unknown:
        raise _invalid(
            f"unknown query parameter {unknown[0]!r};"
            f" expected parameters: {', '.join(_LIST_PARAMETERS)}"
        )


async def _answer_api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return error.to_response()


async def _answer_http_exception(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    code = _HTTP_ERROR_CODES.get(error.status_code, "http_error")
    message = f"{request.method} {request.url.path}: {error.detail}"
    response = ApiError(error.status_code, code, message).to_response()
    response.headers.update(error.headers or {})
    return response


def _route(path: str, endpoints: Mapping[str, Endpoint]) -> Route:
    """Return one route for ``path`` that calls the endpoint of each method.

    With one route per path, a 405 response lists every allowed method in ``Allow``.
    """

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await endpoints[method](request)

    return Route(path, dispatch, methods=list(endpoints))


def create_app(store: RecordStore, *, api_key: str | None = None) -> Starlette:
    """Return the sandbox API over ``store``.

    With ``api_key`` set, every request must carry it in the ``x-api-key`` header,
    or gets 401. The caller keeps ownership of ``store`` and closes it.
    """
    api = _RecordsApi(store)
    routes = [
        _route("/records", {"GET": api.list, "POST": api.create}),
        _route("/records/{id:int}", {"GET": api.get, "PATCH": api.update}),
    ]

    middleware = []
    if api_key is not None:
        middleware.append(Middleware(_ApiKeyMiddleware, api_key=api_key))

    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            ApiError: _answer_api_error,
            HTTPException: _answer_http_exception,
        },
    )
