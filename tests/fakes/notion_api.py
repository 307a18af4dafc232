"""A loopback fake of Notion's REST API (version 2025-09-03) that notion-client runs against."""

from __future__ import annotations

import contextlib
import copy
import json
import math
import re
import secrets
import socket
import string
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qs

JSON = dict[str, Any]

NOTION_VERSION = "2025-09-03"
TEXT_LIMIT = 2000
"""Characters per rich text `content` and per URL, counted as JavaScript does (UTF-16 units)."""
RICH_TEXT_ITEMS = 100
PAGE_SIZE_MAX = 100
SUPPORTED_TYPES = ("title", "rich_text", "select", "number", "date", "checkbox", "url")
# Property types Notion has but this fake does not model: refused loudly rather than faked.
UNMODELLED_TYPES = (
    "multi_select",
    "status",
    "people",
    "files",
    "email",
    "phone_number",
    "formula",
    "relation",
    "rollup",
    "created_time",
    "created_by",
    "last_edited_time",
    "last_edited_by",
    "unique_id",
    "verification",
    "button",
    "place",
)
EMPTY_VALUES: JSON = {
    "title": [],
    "rich_text": [],
    "select": None,
    "number": None,
    "date": None,
    "checkbox": False,
    "url": None,
}
COLORS = (
    "default",
    "gray",
    "brown",
    "orange",
    "yellow",
    "green",
    "blue",
    "purple",
    "pink",
    "red",
)
DEFAULT_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "restricted_resource",
    404: "object_not_found",
    409: "conflict_error",
    429: "rate_limited",
    500: "internal_server_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
    529: "service_overload",
}
MESSAGES = {
    "invalid_json": "Error parsing JSON body.",
    "invalid_request_url": "Invalid request URL.",
    "invalid_request": "This request is not supported.",
    "validation_error": "Request body failed validation.",
    "missing_version": (
        "Notion-Version header failed validation: Notion-Version header should be defined, "
        "instead was `undefined`."
    ),
    "unauthorized": "API token is invalid.",
    "restricted_resource": "Insufficient permissions for this endpoint.",
    "object_not_found": "Could not find object.",
    "conflict_error": "Conflict occurred while saving. Please try again.",
    "rate_limited": "You have been rate limited. Please try again in a few minutes.",
    "internal_server_error": "Unexpected error occurred.",
    "bad_gateway": "Bad gateway.",
    "service_unavailable": "Notion is unavailable, please try again later.",
    "gateway_timeout": "Notion timed out while processing the request.",
    "service_overload": "Notion is currently overloaded. Please try again later.",
}
LINKED_TYPES = ("relation", "rollup")
"""Property types whose values point at other pages (see the issue 15 section below)."""
ARCHIVED = "Can't edit block that is archived. You must unarchive the block before editing."
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_UUID = re.compile(
    r"^(?:[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$", re.I
)
_ID_CHARS = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Recorded:
    """One HTTP request as it arrived, with the status it was finally answered with."""

    method: str
    path: str
    """The raw path, without the query string (`//v1/...` stays as sent)."""
    query: dict[str, str]
    body: JSON | None
    """The JSON object sent, or None (no body, not JSON, not an object)."""
    status: int
    """0 while the request is still being answered."""
    at: float
    """time.monotonic() at arrival."""


class ApiError(Exception):
    """A Notion error answer: status, code and message as Notion would send them."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def _invalid(message: str) -> ApiError:
    return ApiError(400, "validation_error", message)


def _unmodelled(what: str) -> ApiError:
    # Not a Notion answer: the fake says plainly that it cannot stand in for Notion here, so a
    # test never passes by accident on behaviour the fake only pretends to have.
    return ApiError(400, "invalid_request", f"FakeNotion does not model {what}.")


def _not_found(kind: str, object_id: str) -> ApiError:
    # Notion says "database" for data sources too (a data_sources.query given a database id
    # answers "Could not find database with ID").
    return ApiError(
        404,
        "object_not_found",
        f"Could not find {kind} with ID: {object_id}. "
        "Make sure the relevant pages and databases are shared with your integration.",
    )


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _js_length(text: str) -> int:
    # Notion runs on JavaScript: an emoji outside the BMP counts twice towards the limits.
    return len(text.encode("utf-16-le")) // 2


def _norm_id(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not _UUID.match(raw):
        raise _invalid(f"{where} should be a valid uuid, instead was `{_show(raw)}`.")
    return str(uuid.UUID(raw))


def _now() -> datetime:
    # Notion truncates page and database timestamps to the minute.
    return datetime.now(UTC).replace(second=0, microsecond=0)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _need_object(body: JSON, key: str, where: str) -> JSON:
    value = body.get(key)
    if value is None:
        raise _invalid(f"{where} should be defined, instead was `undefined`.")
    if not isinstance(value, dict):
        raise _invalid(f"{where} should be an object, instead was `{_show(value)}`.")
    return value


def _json_object(raw: bytes) -> JSON | None:
    def refuse(constant: str) -> Any:
        raise ValueError(constant)  # JSON.parse knows no NaN or Infinity

    try:
        value = json.loads(raw, parse_constant=refuse)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    return value if isinstance(value, dict) else None


def _rich_text(content: str, link: JSON | None = None, annotations: JSON | None = None) -> JSON:
    return {
        "type": "text",
        "text": {"content": content, "link": link},
        "annotations": {
            "bold": False,
            "italic": False,
            "strikethrough": False,
            "underline": False,
            "code": False,
            "color": "default",
            **(annotations or {}),
        },
        "plain_text": content,
        "href": link["url"] if link else None,
    }


def _rich_text_in(value: Any, where: str) -> list[JSON]:
    if not isinstance(value, list):
        raise _invalid(f"{where} should be an array, instead was `{_show(value)}`.")
    if len(value) > RICH_TEXT_ITEMS:
        raise _invalid(
            f"{where}.length should be ≤ `{RICH_TEXT_ITEMS}`, instead was `{len(value)}`."
        )
    out = []
    for index, item in enumerate(value):
        here = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise _invalid(f"{here} should be an object, instead was `{_show(item)}`.")
        kind = item.get("type", "text")
        if kind in ("mention", "equation"):
            raise _unmodelled(f"{kind} rich text")
        text = item.get("text")
        if kind != "text" or not isinstance(text, dict):
            raise _invalid(f"{here}.text should be defined, instead was `undefined`.")
        content = text.get("content")
        if not isinstance(content, str):
            raise _invalid(
                f"{here}.text.content should be a string, instead was `{_show(content)}`."
            )
        if _js_length(content) > TEXT_LIMIT:
            raise _invalid(
                f"{here}.text.content.length should be ≤ `{TEXT_LIMIT}`, "
                f"instead was `{_js_length(content)}`."
            )
        link = text.get("link")
        if link is not None and not (isinstance(link, dict) and isinstance(link.get("url"), str)):
            raise _invalid(f"{here}.text.link should be an object or `null`.")
        annotations = item.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise _invalid(f"{here}.annotations should be an object.")
        out.append(_rich_text(content, {"url": link["url"]} if link else None, annotations))
    return out


def _plain(items: list[JSON]) -> str:
    return "".join(str(item.get("plain_text", "")) for item in items)


def _parse_moment(text: str) -> datetime:
    """A date or datetime string as an aware datetime (UTC when no offset is given)."""
    if _DATE_ONLY.match(text):
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _date_start(raw: Any, where: str, zoned: bool) -> str:
    if not isinstance(raw, str):
        raise _invalid(f"{where} should be a string, instead was `{_show(raw)}`.")
    try:
        if _DATE_ONLY.match(raw):
            date.fromisoformat(raw)
            return raw
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise _invalid(
            f"{where} should be a valid ISO 8601 date string, instead was `{_show(raw)}`."
        ) from None
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{moment.microsecond // 1000:03d}"
    if moment.tzinfo is None and zoned:
        return text  # with a time_zone Notion keeps the wall-clock time
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{text}{sign}{hours:02d}:{mins:02d}"


def _number_out(value: float) -> int | float:
    # JSON.stringify(5.0) is "5": Notion gives integral numbers back without a fraction.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _number_text(value: int | float) -> str:
    return str(_number_out(value))


@dataclass
class _Prop:
    id: str
    name: str
    type: str
    config: JSON

    def out(self) -> JSON:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            self.type: copy.deepcopy(self.config),
        }


@dataclass
class _DataSource:
    id: str
    database_id: str
    title: list[JSON]
    props: dict[str, _Prop]
    created: datetime
    edited: datetime


@dataclass
class _Database:
    id: str
    page_id: str
    title: list[JSON]
    data_source_ids: list[str]
    created: datetime
    edited: datetime
    seq: int
    in_trash: bool = False
    is_inline: bool = False


@dataclass
class _Page:
    id: str
    data_source_id: str | None
    """None: a plain page in the workspace (add_page), whose only property is its title."""
    values: JSON
    """Property id -> value in response shape."""
    created: datetime
    edited: datetime
    seq: int
    in_trash: bool = False


@dataclass
class _Fault:
    status: int
    code: str | None
    times: int
    method: str | None
    path: re.Pattern[str] | None
    retry_after: float | None
    raw_body: str | None
    delay_s: float
    apply_first: bool


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def _json_reply(status: int, data: JSON, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, json.dumps(data, ensure_ascii=False).encode(), headers=headers or {})


def _error_reply(error: ApiError) -> _Reply:
    body = {
        "object": "error",
        "status": error.status,
        "code": error.code,
        "message": error.message,
        "request_id": str(uuid.uuid4()),
    }
    return _json_reply(error.status, body, error.headers)


def _page_size(raw: Any, where: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise _invalid(f"{where} should be a number, instead was `{_show(raw)}`.")
    if raw > PAGE_SIZE_MAX:
        raise _invalid(f"{where} should be ≤ `{PAGE_SIZE_MAX}`, instead was `{raw}`.")
    if raw < 1:
        raise _invalid(f"{where} should be ≥ `1`, instead was `{raw}`.")
    return raw


def _paginate(
    items: list[JSON], start_cursor: Any, page_size: int, where: str
) -> tuple[list[JSON], str | None]:
    """One page of `items` and the next cursor (the id of the first item not returned)."""
    start = 0
    if start_cursor is not None:
        ids = [item["id"] for item in items]
        if not isinstance(start_cursor, str) or start_cursor not in ids:
            raise _invalid(f"{where} provided is invalid: {start_cursor}")
        start = ids.index(start_cursor)
    chunk = items[start : start + page_size]
    more = start + page_size < len(items)
    return chunk, items[start + page_size]["id"] if more else None


def _listing(results: list[JSON], next_cursor: str | None, kind: str) -> JSON:
    return {
        "object": "list",
        "results": results,
        "next_cursor": next_cursor,
        "has_more": next_cursor is not None,
        "type": kind,
        kind: {},
    }


class FakeNotion:
    """Notion on 127.0.0.1 for one test: seed and inspect state, inject faults, count requests."""

    def __init__(self, token: str = "ntn_" + "f" * 46) -> None:  # pragma: allowlist secret
        self.token = token
        self.url = ""
        self.requests: list[Recorded] = []
        self.crashes: list[str] = []
        """Tracebacks of requests the fake itself failed on (answered 500)."""
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._bot_id = str(uuid.uuid4())
        self._workspace_id = str(uuid.uuid4())
        self._pages: dict[str, _Page] = {}
        self._databases: dict[str, _Database] = {}
        self._data_sources: dict[str, _DataSource] = {}
        self._unshared: set[str] = set()
        self._blocks: dict[str, _Block] = {}
        self._faults: list[_Fault] = []
        self._bucket: tuple[float, int] | None = None
        self._tokens = 0.0
        self._refilled = 0.0
        self._seq = 0
        self._routes: list[tuple[str, re.Pattern[str], str | None, Callable[..., JSON]]] = [
            ("GET", re.compile(r"/v1/users/me"), None, self._users_me),
            ("POST", re.compile(r"/v1/databases"), None, self._create_database),
            ("GET", re.compile(r"/v1/databases/([^/]+)"), "database_id", self._get_database),
            ("PATCH", re.compile(r"/v1/databases/([^/]+)"), "database_id", self._update_database),
            (
                "GET",
                re.compile(r"/v1/data_sources/([^/]+)"),
                "data_source_id",
                self._get_data_source,
            ),
            (
                "PATCH",
                re.compile(r"/v1/data_sources/([^/]+)"),
                "data_source_id",
                self._update_data_source,
            ),
            ("POST", re.compile(r"/v1/data_sources/([^/]+)/query"), "data_source_id", self._query),
            ("POST", re.compile(r"/v1/pages"), None, self._create_page),
            ("GET", re.compile(r"/v1/pages/([^/]+)"), "page_id", self._get_page),
            ("PATCH", re.compile(r"/v1/pages/([^/]+)"), "page_id", self._update_page),
            ("GET", re.compile(r"/v1/blocks/([^/]+)/children"), "block_id", self._children),
            (
                "PATCH",
                re.compile(r"/v1/blocks/([^/]+)/children"),
                "block_id",
                self._append_children,
            ),
            ("DELETE", re.compile(r"/v1/blocks/([^/]+)"), "block_id", self._delete_block),
        ]

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeNotion:
        """Serve on a free port of 127.0.0.1; `url` is valid from now on."""
        self._stopping.clear()
        server = _Server(self)
        self._server = server
        # A short poll: stop() waits for the serving loop to notice, and it stops once per test.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.02,), name="fake-notion", daemon=True
        )
        self._thread.start()
        self.url = f"http://127.0.0.1:{server.server_port}"
        return self

    def stop(self) -> None:
        """Stop serving; requests sleeping on an injected delay are woken and answered."""
        self._stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.wait_idle(timeout=5)
            server.hang_up()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeNotion:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- seeding and inspection ----------------------------------------------------------------

    def add_page(self, title: str = "Ops") -> str:
        """A page in the workspace, shared with the integration; returns its id (with dashes)."""
        with self._lock:
            moment = _now()
            page = _Page(
                str(uuid.uuid4()),
                None,
                {"title": [_rich_text(title)]},
                moment,
                moment,
                self._next(),
            )
            self._pages[page.id] = page
            return page.id

    def unshare(self, object_id: str) -> None:
        """The integration loses access to this page, database or data source, and what is in
        it."""
        with self._lock:
            self._unshared.add(self._python_id(object_id))

    def seed_row(
        self, data_source_id: str, properties: JSON, created_time: str | None = None
    ) -> JSON:
        """Add a row (properties in API write format) without going through HTTP: no faults, no
        recording, duplicates welcome. created_time is ISO 8601, truncated to the minute."""
        with self._lock:
            source = self._data_sources[self._python_id(data_source_id)]
            created = _now()
            if created_time is not None:
                created = _parse_moment(created_time).astimezone(UTC)
                created = created.replace(second=0, microsecond=0)
            try:
                page = self._new_row(source, properties, created)
            except ApiError as error:
                raise ValueError(error.message) from None
            return self._page_out(page)

    def rows(self, data_source_id: str, in_trash: bool = False) -> list[JSON]:
        """The rows of a data source in response shape, oldest first: live ones, or only the
        trashed ones with in_trash=True."""
        with self._lock:
            source = self._data_sources[self._python_id(data_source_id)]
            return [
                self._page_out(page)
                for page in self._rows_of(source.id)
                if page.in_trash == in_trash
            ]

    def schema(self, data_source_id: str) -> JSON:
        """Property name -> property config as GET /v1/data_sources/{id} shows it."""
        with self._lock:
            source = self._data_sources[self._python_id(data_source_id)]
            return {name: prop.out() for name, prop in source.props.items()}

    def drop_property(self, data_source_id: str, name: str) -> None:
        """Someone deleted this column in the Notion UI."""
        with self._lock:
            source = self._data_sources[self._python_id(data_source_id)]
            if source.props[name].type == "title":
                raise ValueError("a data source keeps its title property")
            del source.props[name]

    def retype_property(self, data_source_id: str, name: str, new_type: str) -> None:
        """Someone changed this column's type in the Notion UI; values are converted as text."""
        if new_type not in SUPPORTED_TYPES or new_type == "title":
            raise ValueError(f"cannot retype to {new_type!r}")
        with self._lock:
            source = self._data_sources[self._python_id(data_source_id)]
            prop = source.props[name]
            if prop.type == "title":
                raise ValueError("the title property keeps its type")
            old_type = prop.type
            prop.type, prop.config = new_type, self._default_config(new_type)
            self._convert_rows(source, prop, old_type)

    def databases_under(self, page_id: str) -> list[JSON]:
        """Databases not in the trash whose parent is this page, oldest first."""
        with self._lock:
            parent = self._python_id(page_id)
            return [
                self._database_out(db)
                for db in sorted(self._databases.values(), key=lambda db: db.seq)
                if db.page_id == parent and not db.in_trash
            ]

    # --- edits a person makes in the Notion UI (issue 15: surviving edits) ----------------------
    # A property keeps its id when a person renames it (the `id` of a page property value is
    # guaranteed to stay the same when the property's name changes:
    # https://developers.notion.com/reference/page-property-values); a filter's `property` and
    # the keys of a page's `properties` may be the id instead of the name
    # (https://developers.notion.com/reference/filter-data-source-entries,
    # https://developers.notion.com/reference/patch-page). Both are what _find_prop does.

    def rename_property(self, data_source_id: str, name: str, new_name: str) -> None:
        """Someone renamed this column in the Notion UI: same id, same values, a new name."""
        with self._lock:
            source = self._data_sources[self._python_id(data_source_id)]
            if new_name in source.props:
                raise ValueError(f"a property named {new_name!r} exists already")
            source.props = {
                (new_name if key == name else key): prop for key, prop in source.props.items()
            }
            source.props[new_name].name = new_name
            source.edited = _now()

    def edit_row(self, page_id: str, properties: JSON) -> JSON:
        """Someone edited this row in the Notion UI (properties in API write format, keyed by
        name or id): no faults, no recording."""
        with self._lock:
            page = self._pages[self._python_id(page_id)]
            try:
                values, schema = self._values_in(self._schema_of(page), properties, "edit")
            except ApiError as error:
                raise ValueError(error.message) from None
            if page.data_source_id is not None:
                self._data_sources[page.data_source_id].props = schema
            page.values.update(values)
            page.edited = _now()
            return self._page_out(page)

    # --- traffic -------------------------------------------------------------------------------

    def count(self, method: str | None = None, path_contains: str | None = None) -> int:
        """How many requests arrived with this method and a path containing this text."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method.upper())
                and (path_contains is None or path_contains in r.path)
            )

    def writes(self) -> list[Recorded]:
        """Requests that change state if they succeed (whether or not they did): POST, PATCH and
        DELETE, except queries."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.method in ("POST", "PATCH", "DELETE")
                and not (r.method == "POST" and r.path.endswith("/query"))
            ]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # --- faults --------------------------------------------------------------------------------

    def inject(
        self,
        status: int,
        code: str | None = None,
        *,
        times: int = 1,
        method: str | None = None,
        path: str | None = None,
        retry_after: float | None = None,
        raw_body: str | None = None,
        delay_s: float = 0.0,
        apply_first: bool = False,
    ) -> None:
        """Answer the next `times` requests matching `method` and `path` (a regex searched in the
        raw path) with `status`: a JSON error with `code` (by default the usual one for the
        status), or `raw_body` as text. `retry_after` is sent verbatim as Retry-After. The answer
        comes after `delay_s`; status 0 only delays and then answers normally. apply_first:
        perform the request, then answer with the fault. Matching faults are used in the order
        they were injected."""
        if status != 0 and not 100 <= status <= 599:
            raise ValueError(f"status {status} is not an HTTP status")
        if times < 1:
            raise ValueError("times must be at least 1")
        fault = _Fault(
            status=status,
            code=code,
            times=times,
            method=method.upper() if method else None,
            path=re.compile(path) if path is not None else None,
            retry_after=retry_after,
            raw_body=raw_body,
            delay_s=delay_s,
            apply_first=apply_first,
        )
        with self._lock:
            self._faults.append(fault)

    def rate_limit(self, per_second: float, burst: int) -> None:
        """A token bucket over all requests: beyond it, 429 rate_limited with an integer
        Retry-After. per_second <= 0 turns it off."""
        with self._lock:
            if per_second <= 0:
                self._bucket = None
                return
            self._bucket = (per_second, burst)
            self._tokens = float(burst)
            self._refilled = time.monotonic()

    # --- request pipeline ----------------------------------------------------------------------

    def _answer(self, method: str, target: str, headers: dict[str, str], raw: bytes) -> _Reply:
        arrival = time.monotonic()
        # Not urlsplit: it would read "//v1/users/me" as a host named v1.
        path, _, query_text = target.partition("?")
        query = {k: v[0] for k, v in parse_qs(query_text, keep_blank_values=True).items()}
        entry = Recorded(method, path, query, _json_object(raw) if raw else None, 0, arrival)
        with self._lock:
            self.requests.append(entry)
            fault = self._take_fault(method, path)
        if fault is None or fault.status == 0:
            if fault is not None and not fault.apply_first:
                self._stopping.wait(fault.delay_s)
            reply = self._pipeline(method, path, query, headers, raw)
            if fault is not None and fault.apply_first:
                # Done, but the answer comes late: a client that gave up never learns of it.
                self._stopping.wait(fault.delay_s)
        else:
            if fault.apply_first:
                self._pipeline(method, path, query, headers, raw)
            self._stopping.wait(fault.delay_s)
            reply = self._fault_reply(fault)
        with self._lock:
            for index in range(len(self.requests) - 1, -1, -1):
                if self.requests[index] is entry:
                    self.requests[index] = replace(entry, status=reply.status)
                    break
        return reply

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.method is not None and fault.method != method:
                continue
            if fault.path is not None and not fault.path.search(path):
                continue
            fault.times -= 1
            if fault.times == 0:
                self._faults.remove(fault)
            return fault
        return None

    @staticmethod
    def _fault_reply(fault: _Fault) -> _Reply:
        headers = {}
        if fault.retry_after is not None:
            # Sent as asked, so a test can be quick ("0.05"). Notion itself sends whole seconds,
            # and notion-client reads only those: on "0.05" it falls back to its own back-off.
            headers["Retry-After"] = _number_text(fault.retry_after)
        if fault.raw_body is not None:
            html = fault.raw_body.lstrip().startswith("<")
            kind = "text/html; charset=utf-8" if html else "text/plain; charset=utf-8"
            return _Reply(fault.status, fault.raw_body.encode(), kind, headers)
        code = fault.code or DEFAULT_CODES.get(fault.status, "internal_server_error")
        message = MESSAGES.get(code, f"Injected {fault.status} {code}.")
        return _error_reply(ApiError(fault.status, code, message, headers))

    def _pipeline(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], raw: bytes
    ) -> _Reply:
        try:
            self._admit(headers, path)
            body: JSON = {}
            if method in ("POST", "PATCH"):
                parsed = _json_object(raw)
                if parsed is None:
                    raise ApiError(400, "invalid_json", MESSAGES["invalid_json"])
                body = parsed
            handler, args = self._route(method, path)
            with self._lock:
                result = handler(*args, query=query, body=body)
            return _json_reply(200, {**result, "request_id": str(uuid.uuid4())})
        except ApiError as error:
            return _error_reply(error)
        except Exception:
            # A bug of the fake: answered as Notion answers its own, and kept for the fixture to
            # fail the test on, since a client that retries 500s would hide it.
            self.crashes.append(traceback.format_exc())
            message = "FakeNotion crashed; see FakeNotion.crashes."
            return _error_reply(ApiError(500, "internal_server_error", message))

    def _admit(self, headers: dict[str, str], path: str) -> None:
        wait = self._spend_token()
        if wait is not None:
            retry = {"Retry-After": str(math.ceil(wait))}
            raise ApiError(429, "rate_limited", MESSAGES["rate_limited"], retry)
        if headers.get("authorization") != f"Bearer {self.token}":
            raise ApiError(401, "unauthorized", MESSAGES["unauthorized"])
        version = headers.get("notion-version")
        if version is None:
            raise ApiError(400, "missing_version", MESSAGES["missing_version"])
        if version != NOTION_VERSION:
            raise _unmodelled(f"Notion-Version {version} (only {NOTION_VERSION})")
        if path.startswith("//"):
            raise ApiError(400, "invalid_request_url", MESSAGES["invalid_request_url"])

    def _spend_token(self) -> float | None:
        """None if the request may go on, else the seconds until a token is free."""
        with self._lock:
            if self._bucket is None:
                return None
            rate, burst = self._bucket
            now = time.monotonic()
            self._tokens = min(float(burst), self._tokens + (now - self._refilled) * rate)
            self._refilled = now
            if self._tokens >= 1:
                self._tokens -= 1
                return None
            return (1 - self._tokens) / rate

    def _route(self, method: str, path: str) -> tuple[Callable[..., JSON], list[str]]:
        for verb, pattern, id_name, handler in self._routes:
            match = pattern.fullmatch(path)
            if match and verb == method:
                ids = [_norm_id(raw, f"path.{id_name}") for raw in match.groups()]
                return handler, ids
        # Includes the pre-2025-09-03 POST /v1/databases/{id}/query, as Notion answers it.
        raise ApiError(400, "invalid_request_url", MESSAGES["invalid_request_url"])

    # --- lookups -------------------------------------------------------------------------------

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    @staticmethod
    def _python_id(object_id: str) -> str:
        if not _UUID.match(object_id):
            raise ValueError(f"not a Notion id: {object_id!r}")
        return str(uuid.UUID(object_id))

    def _visible(self, object_id: str) -> bool:
        """Sharing is inherited: a row of a database under an unshared page is unshared too."""
        current: str | None = object_id
        while current is not None:
            if current in self._unshared:
                return False
            if current in self._pages:
                page = self._pages[current]
                current = page.data_source_id
            elif current in self._data_sources:
                current = self._data_sources[current].database_id
            elif current in self._databases:
                current = self._databases[current].page_id
            else:
                current = None
        return True

    def _database(self, database_id: str) -> _Database:
        db = self._databases.get(database_id)
        if db is None or not self._visible(db.id):
            raise _not_found("database", database_id)
        return db

    def _data_source(self, data_source_id: str) -> _DataSource:
        source = self._data_sources.get(data_source_id)
        if source is None or not self._visible(source.id):
            raise _not_found("database", data_source_id)
        return source

    def _page(self, page_id: str) -> _Page:
        if page_id in self._databases and self._visible(page_id):
            raise _invalid(
                f"Provided ID {page_id} is a database, not a page. "
                f"Use the retrieve database API instead, `/v1/databases/{page_id}`."
            )
        page = self._pages.get(page_id)
        if page is None or not self._visible(page.id):
            raise _not_found("page", page_id)
        return page

    def _rows_of(self, data_source_id: str) -> list[_Page]:
        rows = [p for p in self._pages.values() if p.data_source_id == data_source_id]
        return sorted(rows, key=lambda page: (page.created, page.seq))

    def _schema_of(self, page: _Page) -> dict[str, _Prop]:
        if page.data_source_id is None:
            return {"title": _Prop("title", "title", "title", {})}
        return self._data_sources[page.data_source_id].props

    @staticmethod
    def _find_prop(props: dict[str, _Prop], key: str) -> _Prop | None:
        if key in props:
            return props[key]
        return next((prop for prop in props.values() if prop.id == key), None)

    # --- shapes --------------------------------------------------------------------------------

    def _user(self) -> JSON:
        return {"object": "user", "id": self._bot_id}

    def _database_out(self, db: _Database) -> JSON:
        return {
            "object": "database",
            "id": db.id,
            "created_time": _stamp(db.created),
            "last_edited_time": _stamp(db.edited),
            "created_by": self._user(),
            "last_edited_by": self._user(),
            "title": copy.deepcopy(db.title),
            "description": [],
            "icon": None,
            "cover": None,
            "parent": {"type": "page_id", "page_id": db.page_id},
            "is_inline": db.is_inline,
            "in_trash": db.in_trash,
            "is_locked": False,
            "data_sources": [
                {"id": ds_id, "name": _plain(self._data_sources[ds_id].title)}
                for ds_id in db.data_source_ids
            ],
            "url": f"https://www.notion.so/{db.id.replace('-', '')}",
            "public_url": None,
        }

    def _data_source_out(self, source: _DataSource) -> JSON:
        db = self._databases[source.database_id]
        return {
            "object": "data_source",
            "id": source.id,
            "created_time": _stamp(source.created),
            "last_edited_time": _stamp(source.edited),
            "created_by": self._user(),
            "last_edited_by": self._user(),
            "title": copy.deepcopy(source.title),
            "description": [],
            "icon": None,
            "cover": None,
            "properties": {name: prop.out() for name, prop in source.props.items()},
            "parent": {"type": "database_id", "database_id": db.id},
            "database_parent": {"type": "page_id", "page_id": db.page_id},
            "is_inline": db.is_inline,
            "archived": db.in_trash,
            "in_trash": db.in_trash,
            "url": f"https://www.notion.so/{source.id.replace('-', '')}",
            "public_url": None,
        }

    def _page_out(self, page: _Page) -> JSON:
        properties = {}
        for name, prop in self._schema_of(page).items():
            if prop.type in LINKED_TYPES:
                properties[name] = self._linked_value_out(page, prop)
                continue
            value = page.values.get(prop.id, EMPTY_VALUES[prop.type])
            properties[name] = {"id": prop.id, "type": prop.type, prop.type: copy.deepcopy(value)}
        if page.data_source_id is None:
            parent: JSON = {"type": "workspace", "workspace": True}
        else:
            parent = {
                "type": "data_source_id",
                "data_source_id": page.data_source_id,
                "database_id": self._data_sources[page.data_source_id].database_id,
            }
        return {
            "object": "page",
            "id": page.id,
            "created_time": _stamp(page.created),
            "last_edited_time": _stamp(page.edited),
            "created_by": self._user(),
            "last_edited_by": self._user(),
            "cover": None,
            "icon": None,
            "parent": parent,
            "archived": page.in_trash,
            "in_trash": page.in_trash,
            "is_locked": False,
            "properties": properties,
            "url": f"https://www.notion.so/{page.id.replace('-', '')}",
            "public_url": None,
        }

    def _block_out(self, object_id: str) -> JSON:
        base = {"object": "block", "id": object_id, "has_children": False}
        if object_id in self._databases:
            db = self._databases[object_id]
            return {
                **base,
                "parent": {"type": "page_id", "page_id": db.page_id},
                "created_time": _stamp(db.created),
                "last_edited_time": _stamp(db.edited),
                "created_by": self._user(),
                "last_edited_by": self._user(),
                "archived": db.in_trash,
                "in_trash": db.in_trash,
                "type": "child_database",
                "child_database": {"title": _plain(db.title)},
            }
        page = self._pages[object_id]
        title = next(
            (
                _plain(page.values.get(p.id, []))
                for p in self._schema_of(page).values()
                if p.type == "title"
            ),
            "",
        )
        return {
            **base,
            "parent": self._page_out(page)["parent"],
            "created_time": _stamp(page.created),
            "last_edited_time": _stamp(page.edited),
            "created_by": self._user(),
            "last_edited_by": self._user(),
            "archived": page.in_trash,
            "in_trash": page.in_trash,
            "type": "child_page",
            "child_page": {"title": title},
        }

    # --- schema --------------------------------------------------------------------------------

    def _new_prop_id(self, props: dict[str, _Prop]) -> str:
        taken = {prop.id for prop in props.values()}
        while True:
            candidate = "".join(secrets.choice(_ID_CHARS) for _ in range(4))
            if candidate not in taken and candidate != "title":
                return candidate

    @staticmethod
    def _default_config(kind: str) -> JSON:
        if kind == "number":
            return {"format": "number"}
        if kind == "select":
            return {"options": []}
        return {}

    def _option_in(self, raw: Any, where: str) -> JSON:
        if not isinstance(raw, dict):
            raise _invalid(f"{where} should be an object, instead was `{_show(raw)}`.")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise _invalid(
                f"{where}.name should be a non-empty string, instead was `{_show(name)}`."
            )
        if "," in name:
            raise _invalid(f"Invalid select option, commas not allowed: {name}")
        if _js_length(name) > 100:
            raise _invalid(f"{where}.name.length should be ≤ `100`, instead was `{len(name)}`.")
        color = raw.get("color", "default")
        if color not in COLORS:
            raise _invalid(f"{where}.color should be one of {', '.join(COLORS)}.")
        return {"id": self._new_option_id(), "name": name, "color": color}

    @staticmethod
    def _new_option_id() -> str:
        return "".join(secrets.choice(_ID_CHARS) for _ in range(4))

    def _prop_in(self, name: str, raw: Any, where: str) -> tuple[str, JSON]:
        """The type and config of one property in a schema write."""
        here = f"{where}.{name}"
        if not isinstance(raw, dict):
            raise _invalid(f"{here} should be an object or `null`, instead was `{_show(raw)}`.")
        kinds = [k for k in raw if k in SUPPORTED_TYPES or k in UNMODELLED_TYPES]
        kind = raw.get("type") or (kinds[0] if len(kinds) == 1 else None)
        if kind is None:
            if "name" in raw:
                raise _unmodelled("renaming a property")
            raise _invalid(f"{here} should name exactly one property type, e.g. `rich_text`.")
        if kind in LINKED_TYPES:
            return kind, self._link_config_in(kind, raw.get(kind), here)
        if kind in UNMODELLED_TYPES:
            raise _unmodelled(f"{kind} properties")
        if kind not in SUPPORTED_TYPES:
            raise _invalid(f"{here}.type should be a property type, instead was `{_show(kind)}`.")
        config = raw.get(kind, {})
        if not isinstance(config, dict):
            raise _invalid(f"{here}.{kind} should be an object, instead was `{_show(config)}`.")
        if kind == "number":
            fmt = config.get("format", "number")
            if not isinstance(fmt, str):
                raise _invalid(f"{here}.number.format should be a string.")
            return kind, {"format": fmt}
        if kind == "select":
            options_raw = config.get("options", [])
            if not isinstance(options_raw, list):
                raise _invalid(f"{here}.select.options should be an array.")
            options = [
                self._option_in(option, f"{here}.select.options[{index}]")
                for index, option in enumerate(options_raw)
            ]
            names = [option["name"] for option in options]
            if len(set(names)) != len(names):
                raise _invalid(f"{here}.select.options contains duplicate names.")
            return kind, {"options": options}
        return kind, {}

    def _schema_in(self, raw: Any, where: str) -> dict[str, _Prop]:
        if not isinstance(raw, dict):
            raise _invalid(f"{where} should be an object, instead was `{_show(raw)}`.")
        props: dict[str, _Prop] = {}
        for name, value in raw.items():
            if value is None:
                raise _invalid(f"{where}.{name} should be an object, instead was `null`.")
            kind, config = self._prop_in(name, value, where)
            prop_id = "title" if kind == "title" else self._new_prop_id(props)
            props[name] = _Prop(prop_id, name, kind, config)
        titles = [prop.name for prop in props.values() if prop.type == "title"]
        if not titles:
            raise _invalid("Title property is missing: a data source needs exactly one.")
        if len(titles) > 1:
            raise _invalid(f"Multiple title properties provided: {', '.join(titles)}.")
        return props

    # --- values --------------------------------------------------------------------------------

    def _values_in(
        self, schema: dict[str, _Prop], raw: Any, where: str
    ) -> tuple[JSON, dict[str, _Prop]]:
        """Validate a page properties write: the values by property id and the schema as it
        becomes (select options named for the first time are created, as Notion does)."""
        if not isinstance(raw, dict):
            raise _invalid(f"{where} should be an object, instead was `{_show(raw)}`.")
        work = copy.deepcopy(schema)
        values: JSON = {}
        for key, value in raw.items():
            prop = self._find_prop(work, key)
            # A column deleted in the UI (named or by its id) or a value of another type is a
            # 400 validation_error (https://developers.notion.com/reference/errors: "The request
            # body does not match the schema for the expected parameters"); opsctl reads the
            # schema again on it when its copy was kept (opsctl/notion/kept.py).
            if prop is None:
                raise _invalid(f"{key} is not a property that exists.")
            values[prop.id] = self._value_in(prop, value, f"{where}.{prop.name}")
        return values, work

    def _value_in(self, prop: _Prop, raw: Any, where: str) -> Any:
        expected = _invalid(f"{prop.name} is expected to be {prop.type}.")
        if not isinstance(raw, dict) or prop.type not in raw:
            raise expected
        if raw.get("type", prop.type) != prop.type:
            raise expected
        value = raw[prop.type]
        here = f"{where}.{prop.type}"
        if prop.type in ("title", "rich_text"):
            return _rich_text_in(value, here)
        if prop.type == "number":
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise expected
            return _number_out(value)
        if prop.type == "checkbox":
            if not isinstance(value, bool):
                raise expected
            return value
        if prop.type == "url":
            if value is None:
                return None
            if not isinstance(value, str):
                raise expected
            if not value:
                raise _invalid(f"{here}.length should be ≥ `1`, instead was `0`.")
            if _js_length(value) > TEXT_LIMIT:
                raise _invalid(
                    f"{here}.length should be ≤ `{TEXT_LIMIT}`, instead was `{_js_length(value)}`."
                )
            return value
        if prop.type in LINKED_TYPES:
            return self._linked_value_in(prop, value, here)
        if prop.type == "date":
            return self._date_in(value, here)
        return self._select_in(prop, value, here)

    def _date_in(self, value: Any, here: str) -> JSON | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise _invalid(f"{here} should be an object or `null`, instead was `{_show(value)}`.")
        zone = value.get("time_zone")
        if zone is not None and not isinstance(zone, str):
            raise _invalid(f"{here}.time_zone should be a string or `null`.")
        start = _date_start(value.get("start"), f"{here}.start", zone is not None)
        end = value.get("end")
        end_out = None if end is None else _date_start(end, f"{here}.end", zone is not None)
        return {"start": start, "end": end_out, "time_zone": zone}

    def _select_in(self, prop: _Prop, value: Any, here: str) -> JSON | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise _invalid(f"{here} should be an object or `null`, instead was `{_show(value)}`.")
        options: list[JSON] = prop.config.setdefault("options", [])
        if "name" not in value and "id" in value:
            found = next((o for o in options if o["id"] == value["id"]), None)
            if found is None:
                raise _invalid(f"{here}.id is not an option of {prop.name}: {value['id']}")
            return dict(found)
        found = next((o for o in options if o["name"] == value.get("name")), None)
        if found is None:
            found = self._option_in(value, here)
            options.append(found)
        return dict(found)

    def _new_row(self, source: _DataSource, raw: Any, created: datetime) -> _Page:
        values, schema = self._values_in(source.props, raw, "body.properties")
        source.props = schema
        page = _Page(str(uuid.uuid4()), source.id, values, created, _now(), self._next())
        page.edited = max(page.edited, created)
        self._pages[page.id] = page
        self._mirror_duals(page, {})
        return page

    def _convert_rows(self, source: _DataSource, prop: _Prop, old_type: str) -> None:
        """Carry the values of a retyped property over, through their text, as Notion roughly
        does (a number 5 becomes the text "5"; text that is no number becomes empty)."""
        for page in self._rows_of(source.id):
            if prop.id not in page.values:
                continue
            text = self._value_text(old_type, page.values.pop(prop.id))
            if text:
                page.values[prop.id] = self._value_from_text(prop, text)

    @staticmethod
    def _value_text(kind: str, value: Any) -> str:
        if value is None or value == []:
            return ""
        if kind in ("title", "rich_text"):
            return _plain(value)
        if kind == "select":
            return str(value["name"])
        if kind == "number":
            return _number_text(value)
        if kind == "checkbox":
            return "Yes" if value else ""
        if kind == "date":
            return str(value["start"])
        return str(value)

    def _value_from_text(self, prop: _Prop, text: str) -> Any:
        if prop.type in ("title", "rich_text"):
            return [_rich_text(text[:TEXT_LIMIT])]
        if prop.type == "number":
            try:
                number = float(text)
            except ValueError:
                return None
            return _number_out(number) if math.isfinite(number) else None
        if prop.type == "select":
            return self._select_in(prop, {"name": text.replace(",", "")}, "convert")
        if prop.type == "checkbox":
            return text.strip().lower() in ("yes", "true", "1", "checked")
        if prop.type == "date":
            try:
                return {
                    "start": _date_start(text, "convert", False),
                    "end": None,
                    "time_zone": None,
                }
            except ApiError:
                return None
        return text[:TEXT_LIMIT]

    # --- filters and sorts ---------------------------------------------------------------------

    def _filter(
        self, props: dict[str, _Prop], raw: Any, where: str, depth: int
    ) -> Callable[[_Page], bool]:
        if not isinstance(raw, dict):
            raise _invalid(f"{where} should be an object, instead was `{_show(raw)}`.")
        for joiner in ("and", "or"):
            if joiner in raw:
                if depth >= 2:
                    raise _invalid("Compound filters can be nested at most two levels deep.")
                parts_raw = raw[joiner]
                if not isinstance(parts_raw, list):
                    raise _invalid(f"{where}.{joiner} should be an array.")
                parts = [
                    self._filter(props, part, f"{where}.{joiner}[{i}]", depth + 1)
                    for i, part in enumerate(parts_raw)
                ]
                if joiner == "and":
                    return lambda page: all(part(page) for part in parts)
                return lambda page: any(part(page) for part in parts)
        if "timestamp" in raw:
            stamp = raw["timestamp"]
            if stamp not in ("created_time", "last_edited_time"):
                raise _invalid(f"{where}.timestamp should be `created_time` or `last_edited_time`.")
            test = self._date_condition(raw.get(stamp), f"{where}.{stamp}")
            if stamp == "created_time":
                return lambda page: test(_stamp(page.created))
            return lambda page: test(_stamp(page.edited))
        if "property" not in raw:
            raise _invalid(f"{where} should be a property, timestamp or compound filter.")
        key = raw["property"]
        prop = self._find_prop(props, key) if isinstance(key, str) else None
        if prop is None:
            raise _invalid(f"Could not find property with name or id: {key}")
        prop_id = prop.id
        text_like = ("title", "rich_text", "url")
        kinds = [k for k in raw if k != "property"]
        if len(kinds) != 1:
            raise _invalid(f"{where} should have exactly one filter condition.")
        kind = kinds[0]
        compatible = kind == prop.type or (kind in text_like and prop.type in text_like)
        if not compatible:
            raise _invalid(
                f"{where}.{kind} does not match the type of property {prop.name} ({prop.type})."
            )
        condition = raw[kind]
        here = f"{where}.{kind}"
        if prop.type in text_like:
            text_test = self._text_condition(condition, here)
            if prop.type == "url":
                return lambda page: text_test(page.values.get(prop_id) or "")
            return lambda page: text_test(_plain(page.values.get(prop_id) or []))
        if prop.type == "number":
            number_test = self._number_condition(condition, here)
            return lambda page: number_test(page.values.get(prop_id))
        if prop.type == "checkbox":
            op, operand = self._condition(condition, here, ("equals", "does_not_equal"))
            if not isinstance(operand, bool):
                raise _invalid(f"{here}.{op} should be a boolean.")
            want = operand if op == "equals" else not operand
            return lambda page: bool(page.values.get(prop_id, False)) == want
        if prop.type == "date":
            date_test = self._date_condition(condition, here)
            return lambda page: date_test((page.values.get(prop_id) or {}).get("start"))
        select_test = self._select_condition(condition, here)
        return lambda page: select_test(page.values.get(prop_id))

    @staticmethod
    def _condition(raw: Any, where: str, ops: tuple[str, ...]) -> tuple[str, Any]:
        if not isinstance(raw, dict) or len(raw) != 1:
            raise _invalid(f"{where} should hold exactly one of: {', '.join(ops)}.")
        op, operand = next(iter(raw.items()))
        if op not in ops:
            raise _invalid(f"{where}.{op} is not a filter condition here; use one of {ops}.")
        if op in ("is_empty", "is_not_empty") and operand is not True:
            raise _invalid(f"{where}.{op} should be `true`.")
        return op, operand

    def _text_condition(self, raw: Any, where: str) -> Callable[[str], bool]:
        ops = (
            "equals",
            "does_not_equal",
            "contains",
            "does_not_contain",
            "starts_with",
            "ends_with",
            "is_empty",
            "is_not_empty",
        )
        op, operand = self._condition(raw, where, ops)
        if op == "is_empty":
            return lambda text: text == ""
        if op == "is_not_empty":
            return lambda text: text != ""
        if not isinstance(operand, str):
            raise _invalid(f"{where}.{op} should be a string, instead was `{_show(operand)}`.")
        wanted = operand.casefold()
        tests: dict[str, Callable[[str], bool]] = {
            "equals": lambda text: text == operand,
            "does_not_equal": lambda text: text != operand,
            "contains": lambda text: wanted in text.casefold(),
            "does_not_contain": lambda text: wanted not in text.casefold(),
            "starts_with": lambda text: text.casefold().startswith(wanted),
            "ends_with": lambda text: text.casefold().endswith(wanted),
        }
        return tests[op]

    def _number_condition(self, raw: Any, where: str) -> Callable[[Any], bool]:
        ops = (
            "equals",
            "does_not_equal",
            "greater_than",
            "less_than",
            "greater_than_or_equal_to",
            "less_than_or_equal_to",
            "is_empty",
            "is_not_empty",
        )
        op, operand = self._condition(raw, where, ops)
        if op == "is_empty":
            return lambda value: value is None
        if op == "is_not_empty":
            return lambda value: value is not None
        if isinstance(operand, bool) or not isinstance(operand, int | float):
            raise _invalid(f"{where}.{op} should be a number, instead was `{_show(operand)}`.")
        tests: dict[str, Callable[[Any], bool]] = {
            "equals": lambda v: v is not None and v == operand,
            "does_not_equal": lambda v: v is None or v != operand,
            "greater_than": lambda v: v is not None and v > operand,
            "less_than": lambda v: v is not None and v < operand,
            "greater_than_or_equal_to": lambda v: v is not None and v >= operand,
            "less_than_or_equal_to": lambda v: v is not None and v <= operand,
        }
        return tests[op]

    def _select_condition(self, raw: Any, where: str) -> Callable[[Any], bool]:
        ops = ("equals", "does_not_equal", "is_empty", "is_not_empty")
        op, operand = self._condition(raw, where, ops)
        if op == "is_empty":
            return lambda value: value is None
        if op == "is_not_empty":
            return lambda value: value is not None
        if not isinstance(operand, str):
            raise _invalid(f"{where}.{op} should be a string, instead was `{_show(operand)}`.")
        if op == "equals":
            return lambda value: value is not None and value["name"] == operand
        return lambda value: value is None or value["name"] != operand

    def _date_condition(self, raw: Any, where: str) -> Callable[[str | None], bool]:
        ops = (
            "equals",
            "before",
            "after",
            "on_or_before",
            "on_or_after",
            "is_empty",
            "is_not_empty",
            "past_week",
            "past_month",
            "past_year",
            "next_week",
            "next_month",
            "next_year",
            "this_week",
        )
        op, operand = self._condition(raw, where, ops)
        if op == "is_empty":
            return lambda start: start is None
        if op == "is_not_empty":
            return lambda start: start is not None
        if op.startswith(("past_", "next_", "this_")):
            raise _unmodelled(f"relative date filters ({op})")
        try:
            pivot = _parse_moment(operand) if isinstance(operand, str) else None
        except ValueError:
            pivot = None
        if pivot is None:
            raise _invalid(f"{where}.{op} should be an ISO 8601 date, instead was `{operand}`.")
        by_day = bool(_DATE_ONLY.match(operand))

        def test(start: str | None) -> bool:
            if start is None:
                return False
            moment = _parse_moment(start)
            left: Any = moment.astimezone(UTC).date() if by_day else moment
            right: Any = pivot.date() if by_day else pivot
            return {
                "equals": left == right,
                "before": left < right,
                "after": left > right,
                "on_or_before": left <= right,
                "on_or_after": left >= right,
            }[op]

        return test

    def _sorted(self, source: _DataSource, rows: list[_Page], raw: Any) -> list[_Page]:
        if not isinstance(raw, list):
            raise _invalid(f"body.sorts should be an array, instead was `{_show(raw)}`.")
        keys: list[tuple[Callable[[_Page], Any], bool]] = []
        for index, sort in enumerate(raw):
            where = f"body.sorts[{index}]"
            if not isinstance(sort, dict):
                raise _invalid(f"{where} should be an object.")
            direction = sort.get("direction", "ascending")
            if direction not in ("ascending", "descending"):
                raise _invalid(f"{where}.direction should be `ascending` or `descending`.")
            keys.append((self._sort_key(source, sort, where), direction == "descending"))
        # Stable sorts from the last key to the first; empty values stay at the bottom either way.
        for key, descending in reversed(keys):
            filled = [(page, key(page)) for page in rows]
            present = [pair for pair in filled if pair[1] is not None]
            empty = [pair[0] for pair in filled if pair[1] is None]
            present.sort(key=lambda pair: pair[1], reverse=descending)
            rows = [pair[0] for pair in present] + empty
        return rows

    def _sort_key(self, source: _DataSource, sort: JSON, where: str) -> Callable[[_Page], Any]:
        if "timestamp" in sort:
            if sort["timestamp"] == "created_time":
                return lambda page: page.created
            if sort["timestamp"] == "last_edited_time":
                return lambda page: page.edited
            raise _invalid(f"{where}.timestamp should be `created_time` or `last_edited_time`.")
        key = sort.get("property")
        prop = self._find_prop(source.props, key) if isinstance(key, str) else None
        if prop is None:
            raise _invalid(f"Could not find sort property with name or id: {key}")
        prop_id, kind = prop.id, prop.type

        def value_key(page: _Page) -> Any:
            value = page.values.get(prop_id, EMPTY_VALUES[kind])
            if kind in ("title", "rich_text"):
                return _plain(value or []).casefold() or None
            if kind == "url":
                return value.casefold() if value else None
            if kind == "select":
                # Notion orders a select by the order of its options, not by name.
                ids = [option["id"] for option in source.props[prop.name].config["options"]]
                return ids.index(value["id"]) if value and value["id"] in ids else None
            if kind == "date":
                return _parse_moment(value["start"]) if value else None
            if kind == "checkbox":
                return bool(value)
            return value

        return value_key

    # --- endpoints -----------------------------------------------------------------------------

    def _users_me(self, *, query: dict[str, str], body: JSON) -> JSON:
        return {
            "object": "user",
            "id": self._bot_id,
            "name": "opsctl",
            "avatar_url": None,
            "type": "bot",
            "bot": {
                "owner": {"type": "workspace", "workspace": True},
                "workspace_name": "Ops",
                "workspace_id": self._workspace_id,
                "workspace_limits": {"max_file_upload_size_in_bytes": 5 * 1024 * 1024},
            },
        }

    def _create_database(self, *, query: dict[str, str], body: JSON) -> JSON:
        parent = _need_object(body, "parent", "body.parent")
        if parent.get("type", "page_id") != "page_id" or "page_id" not in parent:
            if parent.get("type") in ("workspace", "database_id") or "workspace" in parent:
                raise _unmodelled(f"databases whose parent is not a page ({_show(parent)})")
            raise _invalid("body.parent.page_id should be defined, instead was `undefined`.")
        page_id = _norm_id(parent["page_id"], "body.parent.page_id")
        page = self._page(page_id)
        if page.in_trash:
            raise _invalid(ARCHIVED)
        title = _rich_text_in(body.get("title", []), "body.title")
        initial = body.get("initial_data_source")
        if initial is not None and not isinstance(initial, dict):
            raise _invalid("body.initial_data_source should be an object.")
        # Without initial_data_source Notion gives the data source a lone "Name" title column.
        raw_props = (initial or {}).get("properties", {"Name": {"title": {}}})
        props = self._schema_in(raw_props, "body.initial_data_source.properties")
        is_inline = body.get("is_inline", False)
        if not isinstance(is_inline, bool):
            raise _invalid("body.is_inline should be a boolean.")
        moment = _now()
        db = _Database(
            str(uuid.uuid4()), page_id, title, [], moment, moment, self._next(), is_inline=is_inline
        )
        source = _DataSource(str(uuid.uuid4()), db.id, copy.deepcopy(title), props, moment, moment)
        self._link_schema(source, source.props)
        db.data_source_ids.append(source.id)
        self._databases[db.id] = db
        self._data_sources[source.id] = source
        return self._database_out(db)

    def _get_database(self, database_id: str, *, query: dict[str, str], body: JSON) -> JSON:
        return self._database_out(self._database(database_id))

    def _update_database(self, database_id: str, *, query: dict[str, str], body: JSON) -> JSON:
        db = self._database(database_id)
        if "properties" in body:
            raise _invalid(
                "body.properties is not a database field since 2025-09-03: "
                "update the schema with PATCH /v1/data_sources/{id}."
            )
        title = _rich_text_in(body["title"], "body.title") if "title" in body else None
        trash = body.get("in_trash", body.get("archived"))
        if trash is not None and not isinstance(trash, bool):
            raise _invalid("body.in_trash should be a boolean.")
        inline = body.get("is_inline")
        if inline is not None and not isinstance(inline, bool):
            raise _invalid("body.is_inline should be a boolean.")
        if title is not None:
            db.title = title
        if trash is not None:
            db.in_trash = trash
        if inline is not None:
            db.is_inline = inline
        db.edited = _now()
        return self._database_out(db)

    def _get_data_source(self, data_source_id: str, *, query: dict[str, str], body: JSON) -> JSON:
        return self._data_source_out(self._data_source(data_source_id))

    def _update_data_source(
        self, data_source_id: str, *, query: dict[str, str], body: JSON
    ) -> JSON:
        source = self._data_source(data_source_id)
        title = _rich_text_in(body["title"], "body.title") if "title" in body else None
        raw = body.get("properties", {})
        if not isinstance(raw, dict):
            raise _invalid(f"body.properties should be an object, instead was `{_show(raw)}`.")
        work = copy.deepcopy(source.props)
        retyped: list[tuple[str, str]] = []
        for key, value in raw.items():
            existing = self._find_prop(work, key)
            if value is None:
                if existing is None:
                    raise _invalid(f"{key} is not a property that exists.")
                if existing.type == "title":
                    raise _invalid("Cannot delete the title property of a data source.")
                del work[existing.name]
                continue
            kind, config = self._prop_in(key, value, "body.properties")
            if "name" in value and value["name"] != (existing.name if existing else key):
                raise _unmodelled("renaming a property")
            if existing is None:
                if kind == "title":
                    raise _invalid("Cannot create a second title property.")
                work[key] = _Prop(self._new_prop_id(work), key, kind, config)
            elif existing.type == kind:
                if kind == "select":
                    # Options already there stay; new names are added after them.
                    names = {option["name"] for option in existing.config["options"]}
                    existing.config["options"] += [
                        o for o in config["options"] if o["name"] not in names
                    ]
                else:
                    existing.config = config
            else:
                if "title" in (kind, existing.type):
                    raise _invalid("Cannot change the type of the title property.")
                retyped.append((existing.name, existing.type))
                existing.type, existing.config = kind, config
        self._link_schema(source, work)
        source.props = work
        for name, old_type in retyped:
            if name in work:
                self._convert_rows(source, work[name], old_type)
        if title is not None:
            source.title = title
        source.edited = _now()
        return self._data_source_out(source)

    def _query(self, data_source_id: str, *, query: dict[str, str], body: JSON) -> JSON:
        source = self._data_source(data_source_id)
        page_size = _page_size(body.get("page_size", PAGE_SIZE_MAX), "body.page_size")
        rows = [
            page
            for page in self._rows_of(source.id)
            if not page.in_trash and self._visible(page.id)
        ]
        if body.get("filter") is not None:
            test = self._filter(source.props, body["filter"], "body.filter", 0)
            rows = [page for page in rows if test(page)]
        if body.get("sorts") is not None:
            rows = self._sorted(source, rows, body["sorts"])
        results = [self._page_out(page) for page in rows]
        chunk, cursor = _paginate(results, body.get("start_cursor"), page_size, "start_cursor")
        return _listing(chunk, cursor, "page_or_data_source")

    def _create_page(self, *, query: dict[str, str], body: JSON) -> JSON:
        parent = _need_object(body, "parent", "body.parent")
        if "data_source_id" in parent:
            source = self._data_source(
                _norm_id(parent["data_source_id"], "body.parent.data_source_id")
            )
        elif "database_id" in parent:
            db = self._database(_norm_id(parent["database_id"], "body.parent.database_id"))
            source = self._data_sources[db.data_source_ids[0]]
        elif "page_id" in parent:
            raise _unmodelled("pages whose parent is a page")
        else:
            raise _invalid("body.parent.data_source_id should be defined, instead was `undefined`.")
        if self._databases[source.database_id].in_trash:
            raise _invalid(ARCHIVED)
        blocks = self._page_children_in(body)  # validated before the page is made
        page = self._new_row(source, body.get("properties", {}), _now())
        self._add_content(page.id, blocks, page.created)
        return self._page_out(page)

    def _get_page(self, page_id: str, *, query: dict[str, str], body: JSON) -> JSON:
        return self._page_out(self._page(page_id))

    def _update_page(self, page_id: str, *, query: dict[str, str], body: JSON) -> JSON:
        page = self._page(page_id)
        trash = body.get("in_trash", body.get("archived"))
        if trash is not None and not isinstance(trash, bool):
            raise _invalid(f"body.in_trash should be a boolean, instead was `{_show(trash)}`.")
        raw = body.get("properties")
        values: JSON = {}
        schema = self._schema_of(page)
        if raw is not None:
            # A row of a database in the trash is in the trash with it: its edits are refused
            # as _create_page refuses a new row there.
            source = self._data_sources.get(page.data_source_id or "")
            gone = source is not None and self._databases[source.database_id].in_trash
            if (page.in_trash or gone) and trash is not False:
                raise _invalid(ARCHIVED)
            values, schema = self._values_in(schema, raw, "body.properties")
        if page.data_source_id is not None:
            self._data_sources[page.data_source_id].props = schema
        before = dict(page.values)
        page.values.update(values)
        self._mirror_duals(page, before)
        if trash is not None:
            page.in_trash = trash
        page.edited = _now()
        return self._page_out(page)

    def _children(self, block_id: str, *, query: dict[str, str], body: JSON) -> JSON:
        block = self._blocks.get(block_id)
        nested = block is not None and not block.in_trash and self._visible(self._block_page(block))
        if not nested and (block_id not in self._pages or not self._visible(block_id)):
            raise _not_found("block", block_id)
        try:
            page_size = _page_size(int(query.get("page_size", PAGE_SIZE_MAX)), "query.page_size")
        except ValueError:
            raise _invalid(
                f"query.page_size should be a number, instead was `{query['page_size']}`."
            ) from None
        children = [
            self._block_out(db.id)
            for db in sorted(self._databases.values(), key=lambda db: db.seq)
            if db.page_id == block_id and not db.in_trash and self._visible(db.id)
        ] + [self._content_block_out(block) for block in self._content_of(block_id)]
        chunk, cursor = _paginate(children, query.get("start_cursor"), page_size, "start_cursor")
        return _listing(chunk, cursor, "block")

    def _delete_block(self, block_id: str, *, query: dict[str, str], body: JSON) -> JSON:
        if block_id in self._databases and self._visible(block_id):
            db = self._databases[block_id]
            db.in_trash, db.edited = True, _now()
        elif block_id in self._pages and self._visible(block_id):
            page = self._pages[block_id]
            page.in_trash, page.edited = True, _now()
        elif block_id in self._blocks and self._visible(self._block_page(self._blocks[block_id])):
            self._blocks[block_id].in_trash = True
            return self._content_block_out(self._blocks[block_id])
        else:
            raise _not_found("block", block_id)
        return self._block_out(block_id)

    # --- page content, relations and rollups (issue 15) ----------------------------------------
    # Blocks in pages: https://developers.notion.com/reference/block,
    # https://developers.notion.com/reference/patch-block-children (at most 100 children per
    # array, "up to two levels of nesting in a single request"), and the 1000 block elements per
    # request of https://developers.notion.com/reference/request-limits. Relation and rollup
    # properties: https://developers.notion.com/reference/property-object#relation (2025-09-03:
    # a relation names the related `data_source_id`; `dual_property` adds the synced property to
    # the related data source) and https://developers.notion.com/reference/page-property-values
    # (a page lists at most 25 relation references, `has_more` says when there are more; a
    # rollup is computed by Notion and cannot be written).

    def content(self, page_id: str) -> list[JSON]:
        """A page's blocks as GET /v1/blocks/{id}/children returns them, each with its nested
        blocks under `children` (what a person sees when opening the page)."""
        with self._lock:
            return [self._block_tree(b) for b in self._content_of(self._python_id(page_id))]

    def _content_of(self, parent_id: str) -> list[_Block]:
        blocks = [b for b in self._blocks.values() if b.parent_id == parent_id and not b.in_trash]
        return sorted(blocks, key=lambda block: block.seq)

    def _block_tree(self, block: _Block) -> JSON:
        return {
            **self._content_block_out(block),
            "children": [self._block_tree(child) for child in self._content_of(block.id)],
        }

    def _block_page(self, block: _Block) -> str:
        """The page a content block belongs to (sharing is the page's)."""
        parent = block.parent_id
        while parent in self._blocks:
            parent = self._blocks[parent].parent_id
        return parent

    def _content_block_out(self, block: _Block) -> JSON:
        if block.parent_id in self._blocks:
            parent: JSON = {"type": "block_id", "block_id": block.parent_id}
        else:
            parent = {"type": "page_id", "page_id": block.parent_id}
        return {
            "object": "block",
            "id": block.id,
            "parent": parent,
            "created_time": _stamp(block.created),
            "last_edited_time": _stamp(block.created),
            "created_by": self._user(),
            "last_edited_by": self._user(),
            "has_children": bool(self._content_of(block.id)),
            "archived": block.in_trash,
            "in_trash": block.in_trash,
            "type": block.type,
            block.type: copy.deepcopy(block.data),
        }

    def _blocks_in(self, raw: Any, where: str, depth: int, counted: list[int]) -> list[JSON]:
        """Validate one array of new blocks (depth 0: the request's own `children`)."""
        if not isinstance(raw, list):
            raise _invalid(f"{where} should be an array, instead was `{_show(raw)}`.")
        if len(raw) > BLOCK_CHILDREN_MAX:
            raise _invalid(
                f"{where}.length should be ≤ `{BLOCK_CHILDREN_MAX}`, instead was `{len(raw)}`."
            )
        specs = []
        for index, item in enumerate(raw):
            here = f"{where}[{index}]"
            counted[0] += 1
            if counted[0] > BLOCKS_PER_REQUEST:
                raise _invalid(
                    f"The request holds more than {BLOCKS_PER_REQUEST} block elements; "
                    "send them in several requests."
                )
            if not isinstance(item, dict):
                raise _invalid(f"{here} should be an object, instead was `{_show(item)}`.")
            kind = item.get("type") or next((k for k in item if k in CONTENT_BLOCKS), None)
            if not isinstance(kind, str):
                raise _invalid(f"{here} should name a block type, e.g. `paragraph`.")
            if kind not in CONTENT_BLOCKS:
                raise _unmodelled(f"{kind} blocks")
            data = item.get(kind, {})
            if not isinstance(data, dict):
                raise _invalid(f"{here}.{kind} should be an object, instead was `{_show(data)}`.")
            specs.append(self._block_in(kind, data, f"{here}.{kind}", depth, counted))
        return specs

    def _block_in(self, kind: str, data: JSON, here: str, depth: int, counted: list[int]) -> JSON:
        out: JSON = {}
        if kind != "divider":
            out = {
                "rich_text": _rich_text_in(data.get("rich_text", []), f"{here}.rich_text"),
                "color": data.get("color", "default"),
            }
        if kind.startswith("heading_"):
            out["is_toggleable"] = bool(data.get("is_toggleable", False))
        children = data.get("children")
        if children is None:
            return {"type": kind, "data": out, "children": []}
        takes = kind in NESTING_BLOCKS or out.get("is_toggleable", False)
        if depth >= NESTING_LEVELS or not takes:
            raise _invalid(
                f"{here}.children should be not present, instead was `{_show(children)}`."
            )
        nested = self._blocks_in(children, f"{here}.children", depth + 1, counted)
        return {"type": kind, "data": out, "children": nested}

    def _add_content(self, parent_id: str, specs: list[JSON], moment: datetime) -> list[_Block]:
        made = []
        for spec in specs:
            block = _Block(str(uuid.uuid4()), parent_id, spec["type"], spec["data"], moment)
            block.seq = self._next()
            self._blocks[block.id] = block
            self._add_content(block.id, spec["children"], moment)
            made.append(block)
        return made

    def _page_children_in(self, body: JSON) -> list[JSON]:
        """The blocks a new page is made with (validated before the page exists)."""
        if body.get("children") is None:
            return []
        return self._blocks_in(body["children"], "body.children", 0, [0])

    def _append_children(self, block_id: str, *, query: dict[str, str], body: JSON) -> JSON:
        if block_id in self._blocks:
            block = self._blocks[block_id]
            if block.in_trash or not self._visible(self._block_page(block)):
                raise _not_found("block", block_id)
            depth_taken = 1  # the parent is itself a nested block: one level less to nest
        elif block_id in self._pages and self._visible(block_id):
            if self._pages[block_id].in_trash:
                raise _invalid(ARCHIVED)
            depth_taken = 0
        else:
            raise _not_found("block", block_id)
        if body.get("after") is not None or body.get("position") is not None:
            raise _unmodelled("appending after a given block")
        if body.get("children") is None:
            raise _invalid("body.children should be defined, instead was `undefined`.")
        specs = self._blocks_in(body["children"], "body.children", depth_taken, [0])
        made = self._add_content(block_id, specs, _now())
        return _listing([self._content_block_out(b) for b in made], None, "block")

    def _link_config_in(self, kind: str, raw: Any, here: str) -> JSON:
        """The configuration of a relation or rollup property in a schema write."""
        if not isinstance(raw, dict):
            raise _invalid(f"{here}.{kind} should be an object, instead was `{_show(raw)}`.")
        if kind == "rollup":
            return self._rollup_config_in(raw, f"{here}.rollup")
        if "database_id" in raw and "data_source_id" not in raw:
            # 2025-09-03: "the request object must only contain data_source_id".
            raise _invalid(
                f"{here}.relation.data_source_id should be defined, instead was `undefined`."
            )
        target = self._data_source(
            _norm_id(raw.get("data_source_id"), f"{here}.relation.data_source_id")
        )
        config: JSON = {"database_id": target.database_id, "data_source_id": target.id}
        if isinstance(raw.get("single_property"), dict):
            return {**config, "type": "single_property", "single_property": {}}
        dual = raw.get("dual_property")
        if not isinstance(dual, dict):
            raise _invalid(f"{here}.relation should hold `single_property` or `dual_property`.")
        name = dual.get("synced_property_name") or ""
        return {
            **config,
            "type": "dual_property",
            "dual_property": {"synced_property_name": name, "synced_property_id": ""},
        }

    @staticmethod
    def _rollup_config_in(raw: JSON, here: str) -> JSON:
        function = raw.get("function")
        if function not in ROLLUP_FUNCTIONS:
            raise _unmodelled(f"the rollup function {_show(function)}")
        relation = raw.get("relation_property_name") or raw.get("relation_property_id")
        rolled = raw.get("rollup_property_name") or raw.get("rollup_property_id")
        if not isinstance(relation, str) or not isinstance(rolled, str):
            raise _invalid(
                f"{here} should name its relation_property_name and rollup_property_name."
            )
        return {
            "function": function,
            "relation_property_name": relation,
            "rollup_property_name": rolled,
        }

    def _link_schema(self, source: _DataSource, props: dict[str, _Prop]) -> None:
        """Pin each rollup to the ids of its relation and rolled-up property; give every new
        dual relation its synced property in the related data source."""
        for prop in props.values():
            if prop.type == "rollup" and "relation_property_id" not in prop.config:
                self._pin_rollup(prop, props)
        for prop in props.values():
            dual = prop.config.get("dual_property") if prop.type == "relation" else None
            if dual is not None and not dual["synced_property_id"]:
                self._add_synced(source, props, prop)

    def _pin_rollup(self, prop: _Prop, props: dict[str, _Prop]) -> None:
        config = prop.config
        relation = self._find_prop(props, config["relation_property_name"])
        if relation is None or relation.type != "relation":
            name = config["relation_property_name"]
            raise _invalid(f"{name} is not a relation property of this data source.")
        target = self._data_sources[relation.config["data_source_id"]]
        rolled = self._find_prop(target.props, config["rollup_property_name"])
        if rolled is None or rolled.type in ("relation", "rollup"):
            raise _invalid(
                f"{config['rollup_property_name']} is not a property the rollup can show."
            )
        config.update(
            relation_property_name=relation.name,
            relation_property_id=relation.id,
            rollup_property_name=rolled.name,
            rollup_property_id=rolled.id,
        )

    def _add_synced(self, source: _DataSource, props: dict[str, _Prop], prop: _Prop) -> None:
        target_id = prop.config["data_source_id"]
        target_props = props if target_id == source.id else self._data_sources[target_id].props
        dual = prop.config["dual_property"]
        name = dual["synced_property_name"] or f"Related to {_plain(source.title)} ({prop.name})"
        if name in target_props:
            raise _invalid(f"A property named {name} already exists in the related data source.")
        synced = _Prop(
            self._new_prop_id(target_props),
            name,
            "relation",
            {
                "database_id": source.database_id,
                "data_source_id": source.id,
                "type": "dual_property",
                "dual_property": {"synced_property_name": prop.name, "synced_property_id": prop.id},
            },
        )
        target_props[name] = synced
        dual.update(synced_property_name=name, synced_property_id=synced.id)

    def _linked_value_in(self, prop: _Prop, value: Any, here: str) -> list[str]:
        if prop.type == "rollup":
            raise _invalid(
                f"{prop.name} is a rollup property: Notion computes it; it cannot be written."
            )
        if not isinstance(value, list):
            raise _invalid(f"{here} should be an array, instead was `{_show(value)}`.")
        if len(value) > RELATION_ITEMS:
            raise _invalid(
                f"{here}.length should be ≤ `{RELATION_ITEMS}`, instead was `{len(value)}`."
            )
        ids: list[str] = []
        for index, item in enumerate(value):
            raw = item.get("id") if isinstance(item, dict) else None
            page_id = _norm_id(raw, f"{here}[{index}].id")
            page = self._pages.get(page_id)
            if (
                page is None
                or page.data_source_id != prop.config["data_source_id"]
                or not self._visible(page_id)
            ):
                raise _invalid(f"{here}[{index}].id: no page {page_id} in the related data source.")
            if page_id not in ids:
                ids.append(page_id)
        return ids

    def _mirror_duals(self, page: _Page, before: JSON) -> None:
        """A dual relation written on one side shows on the other: the related pages' synced
        property gains (or loses) this page."""
        if page.data_source_id is None:
            return
        for prop in self._schema_of(page).values():
            dual = prop.config.get("dual_property") if prop.type == "relation" else None
            if dual is None or prop.id not in page.values:
                continue
            old, new = set(before.get(prop.id) or []), set(page.values[prop.id] or [])
            for other_id in old ^ new:
                other = self._pages[other_id]
                theirs = [
                    i for i in other.values.get(dual["synced_property_id"]) or [] if i != page.id
                ]
                other.values[dual["synced_property_id"]] = theirs + (
                    [page.id] if other_id in new else []
                )

    def _linked_value_out(self, page: _Page, prop: _Prop) -> JSON:
        if prop.type == "relation":
            ids = list(page.values.get(prop.id) or [])
            shown = [{"id": i} for i in ids[:RELATION_SHOWN]]
            return {
                "id": prop.id,
                "type": "relation",
                "relation": shown,
                "has_more": len(ids) > RELATION_SHOWN,
            }
        config = prop.config
        related = [self._pages[i] for i in page.values.get(config["relation_property_id"]) or []]
        values = [p.values.get(config["rollup_property_id"]) for p in related if not p.in_trash]
        function = config["function"]
        rollup: JSON
        if function == "count":
            rollup = {"type": "number", "number": len(values)}
        elif function in ("latest_date", "earliest_date"):
            dates = [v for v in values if isinstance(v, dict) and v.get("start")]
            pick = max if function == "latest_date" else min
            found = pick(dates, key=lambda d: _parse_moment(d["start"])) if dates else None
            rollup = {"type": "date", "date": copy.deepcopy(found)}
        else:  # show_original
            relation = next(
                p for p in self._schema_of(page).values() if p.id == config["relation_property_id"]
            )
            target = self._data_sources[relation.config["data_source_id"]]
            kind = next(
                p.type for p in target.props.values() if p.id == config["rollup_property_id"]
            )
            rollup = {
                "type": "array",
                "array": [{"type": kind, kind: copy.deepcopy(v)} for v in values],
            }
        return {"id": prop.id, "type": "rollup", "rollup": {**rollup, "function": function}}


# --- page content, relations and rollups (issue 15): module-level parts -----------------------

BLOCK_CHILDREN_MAX = 100
"""Block children per array in one request (patch-block-children)."""
BLOCKS_PER_REQUEST = 1000
"""Block elements in one request, nested ones included (request-limits)."""
NESTING_LEVELS = 2
"""Nested children a request may hold below its own `children` array (patch-block-children)."""
RELATION_ITEMS = 100
"""Related pages in one relation write (request-limits)."""
RELATION_SHOWN = 25
"""Relation references a page object lists before `has_more` (page-property-values)."""
CONTENT_BLOCKS = (
    "paragraph",
    "heading_1",
    "heading_2",
    "heading_3",
    "bulleted_list_item",
    "numbered_list_item",
    "quote",
    "callout",
    "toggle",
    "divider",
)
NESTING_BLOCKS = (
    "paragraph",
    "bulleted_list_item",
    "numbered_list_item",
    "quote",
    "callout",
    "toggle",
)
"""Blocks that may hold children (a heading only when toggleable)."""
ROLLUP_FUNCTIONS = ("count", "latest_date", "earliest_date", "show_original")
"""The rollup functions this fake computes (Notion has more)."""


@dataclass
class _Block:
    id: str
    parent_id: str
    """A page's id, or another block's."""
    type: str
    data: JSON
    """The type object in response shape (rich_text, color...)."""
    created: datetime
    seq: int = 0
    in_trash: bool = False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # notion-client's httpx keeps connections alive
    # Headers and body leave in one write, without Nagle: otherwise every answer on a kept-alive
    # connection waits out the client's delayed ACK (about 40 ms).
    wbufsize = -1
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def _serve(self) -> None:
        server = cast(_Server, self.server)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        raw = self.rfile.read(length) if length > 0 else b""
        # http.server has already collapsed a leading "//" in self.path; the request line has not.
        parts = self.requestline.split(" ")
        target = parts[1] if len(parts) >= 2 else self.path
        headers = {name.lower(): value for name, value in self.headers.items()}
        with server.busy:
            server.in_flight += 1
        try:
            reply = server.fake._answer(self.command, target, headers, raw)
            self._reply(reply)
        finally:
            with server.busy:
                server.in_flight -= 1
                server.busy.notify_all()

    def _reply(self, reply: _Reply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
            self.wfile.flush()
        except OSError:
            # The client gave up (an injected delay beyond its timeout): nobody to answer.
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeNotion) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self.busy = threading.Condition()
        self.in_flight = 0
        """Requests being answered: stop() lets them finish before it hangs up."""

    def wait_idle(self, timeout: float) -> None:
        with self.busy:
            self.busy.wait_for(lambda: self.in_flight == 0, timeout=timeout)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def hang_up(self) -> None:
        """End kept-alive connections so their handler threads do not outlive the fake."""
        with self._open_lock:
            open_sockets, self._open = list(self._open), set()
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up is not the fake's problem
