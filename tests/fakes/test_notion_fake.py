"""The fake Notion API answers notion-client 3.1.0, unchanged, and raw HTTP as Notion does."""

from __future__ import annotations

import http.client
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from notion_client import APIResponseError, Client, RequestTimeoutError, UnknownHTTPResponseError
from notion_client.client import RetryOptions
from notion_client.helpers import collect_paginated_api

from tests.fakes.notion_api import NOTION_VERSION, FakeNotion
from tests.loopback import TLS

# A logger of our own, with a handler that drops everything: notion-client's default one adds
# another console handler per Client and prints a warning for every error these tests provoke.
QUIET = logging.Logger("tests.fakes.notion-sdk")
QUIET.addHandler(logging.NullHandler())
MINUTE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:00\.000Z$")
GATES: dict[str, Any] = {
    "Name": {"title": {}},
    "Gate ID": {"rich_text": {}},
    "Status": {"select": {"options": [{"name": "PASS", "color": "green"}]}},
    "Duration": {"number": {}},
    "Checked": {"date": {}},
    "Reason": {"rich_text": {}},
    "Ok": {"checkbox": {}},
    "Evidence": {"url": {}},
}

SDK = Callable[..., Client]
RAW = Callable[..., httpx.Response]


@pytest.fixture
def sdk(fake_notion: FakeNotion) -> Iterator[SDK]:
    """Build notion-client Clients against the fake: sdk(retries=0, timeout_ms=2000, token=...)."""
    clients: list[Client] = []

    def build(retries: int = 0, timeout_ms: int = 2000, token: str | None = None) -> Client:
        client = Client(
            auth=token or fake_notion.token,
            base_url=fake_notion.url,
            timeout_ms=timeout_ms,
            retry=RetryOptions(max_retries=retries, initial_retry_delay_ms=1),
            logger=QUIET,
            client=httpx.Client(verify=TLS),
        )
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


@pytest.fixture
def notion(sdk: SDK) -> Client:
    return sdk()


@pytest.fixture
def parent(fake_notion: FakeNotion) -> str:
    return fake_notion.add_page("Ops")


@pytest.fixture
def gates(notion: Client, parent: str) -> str:
    """The data source id of a database with every supported property type."""
    db = notion.databases.create(
        parent={"type": "page_id", "page_id": parent},
        title=[{"text": {"content": "Gates"}}],
        initial_data_source={"properties": GATES},
    )
    return str(db["data_sources"][0]["id"])


def text(value: str) -> list[dict[str, Any]]:
    return [{"text": {"content": value}}]


def gate(key: str, **extra: Any) -> dict[str, Any]:
    return {"Name": {"title": text(key)}, "Gate ID": {"rich_text": text(key)}, **extra}


def plain(page: dict[str, Any], name: str) -> str:
    prop = page["properties"][name]
    return "".join(item["plain_text"] for item in prop[prop["type"]])


def api_error(call: Callable[[], Any]) -> APIResponseError:
    with pytest.raises(APIResponseError) as caught:
        call()
    return caught.value


@pytest.fixture
def raw(fake_notion: FakeNotion) -> Iterator[RAW]:
    """Raw requests to the fake, authorised and versioned unless the headers say otherwise
    (a header given as None is left out)."""
    # Plain HTTP: without certificate checks building the client takes 1 ms, not 50.
    with httpx.Client(base_url=fake_notion.url, timeout=5, verify=False) as client:  # noqa: S501

        def send(method: str, path: str, **kwargs: Any) -> httpx.Response:
            headers = {
                "Authorization": f"Bearer {fake_notion.token}",
                "Notion-Version": NOTION_VERSION,
                **kwargs.pop("headers", {}),
            }
            sent = {name: value for name, value in headers.items() if value is not None}
            return client.request(method, path, headers=sent, **kwargs)

        yield send


# --- notion-client against the fake ---------------------------------------------------------------


def test_users_me_is_the_integration_bot(notion: Client, fake_notion: FakeNotion) -> None:
    me = notion.users.me()
    assert (me["object"], me["type"], me["name"]) == ("user", "bot", "opsctl")
    assert "owner" in me["bot"]
    [request] = fake_notion.requests
    assert (request.method, request.path, request.status) == ("GET", "/v1/users/me", 200)


def test_a_database_keeps_its_schema_on_its_data_source(
    notion: Client, fake_notion: FakeNotion, parent: str, gates: str
) -> None:
    [db] = fake_notion.databases_under(parent)
    assert "properties" not in db and db["parent"] == {"type": "page_id", "page_id": parent}
    assert db["data_sources"] == [{"id": gates, "name": "Gates"}]
    assert notion.databases.retrieve(database_id=db["id"])["data_sources"][0]["id"] == gates
    source = notion.data_sources.retrieve(data_source_id=gates)
    assert source["parent"] == {"type": "database_id", "database_id": db["id"]}
    props = source["properties"]
    assert list(props) == list(GATES)
    assert {name: p["type"] for name, p in props.items()} == {
        name: next(iter(config)) for name, config in GATES.items()
    }
    assert props["Name"]["id"] == "title" and props["Reason"]["id"] != "title"
    assert len({p["id"] for p in props.values()}) == len(props)
    assert props["Duration"]["number"] == {"format": "number"}
    [option] = props["Status"]["select"]["options"]
    assert (option["name"], option["color"]) == ("PASS", "green") and option["id"]
    assert fake_notion.schema(gates) == props


def test_properties_given_to_databases_create_are_dropped_by_the_sdk(
    notion: Client, fake_notion: FakeNotion, parent: str
) -> None:
    db = notion.databases.create(
        parent={"type": "page_id", "page_id": parent},
        title=text("Runs"),
        properties=GATES,  # the pre-2025-09-03 spelling: notion-client drops it silently
    )
    assert fake_notion.requests[-1].body is not None
    assert "properties" not in fake_notion.requests[-1].body
    schema = fake_notion.schema(db["data_sources"][0]["id"])
    assert {name: p["type"] for name, p in schema.items()} == {"Name": "title"}


def test_a_schema_needs_exactly_one_title_and_a_shared_parent(
    notion: Client, fake_notion: FakeNotion, parent: str
) -> None:
    def create(page_id: str, properties: dict[str, Any]) -> Any:
        return notion.databases.create(
            parent={"type": "page_id", "page_id": page_id},
            initial_data_source={"properties": properties},
        )

    two = api_error(lambda: create(parent, {"A": {"title": {}}, "B": {"title": {}}}))
    none = api_error(lambda: create(parent, {"A": {"rich_text": {}}}))
    assert two.code == none.code == "validation_error"
    missing = api_error(lambda: create("1" * 32, {"A": {"title": {}}}))
    assert (missing.code, missing.status) == ("object_not_found", 404)
    assert fake_notion.databases_under(parent) == []


def test_create_query_update_and_trash_a_row(
    notion: Client, fake_notion: FakeNotion, gates: str
) -> None:
    parent = {"type": "data_source_id", "data_source_id": gates}
    first = notion.pages.create(
        parent=parent, properties=gate("render/P2.1", Reason={"rich_text": text("slow")})
    )
    notion.pages.create(parent=parent, properties=gate("render/P2.10"))  # equals: no prefix match
    by_key = {"property": "Gate ID", "rich_text": {"equals": "render/P2.1"}}
    [hit] = notion.data_sources.query(data_source_id=gates, filter=by_key)["results"]
    assert hit["id"] == first["id"]
    assert hit["parent"]["data_source_id"] == gates and hit["parent"]["database_id"]
    updated = notion.pages.update(page_id=first["id"], properties={"Ok": {"checkbox": True}})
    assert updated["properties"]["Ok"]["checkbox"] is True
    assert plain(updated, "Reason") == "slow"  # a partial update keeps the other properties
    notion.pages.update(page_id=first["id"], in_trash=True)
    assert notion.data_sources.query(data_source_id=gates, filter=by_key)["results"] == []
    assert len(notion.data_sources.query(data_source_id=gates)["results"]) == 1
    trashed = notion.pages.retrieve(page_id=first["id"])
    assert trashed["in_trash"] is True and trashed["archived"] is True
    [gone] = fake_notion.rows(gates, in_trash=True)
    assert gone["id"] == first["id"] and len(fake_notion.rows(gates)) == 1
    edit = api_error(
        lambda: notion.pages.update(page_id=first["id"], properties={"Ok": {"checkbox": False}})
    )
    assert edit.code == "validation_error" and "archived" in str(edit)
    restored = notion.pages.update(page_id=first["id"], archived=False)
    assert restored["in_trash"] is False and len(fake_notion.rows(gates)) == 2


def test_a_page_shows_every_property_and_full_rich_text(notion: Client, gates: str) -> None:
    page = notion.pages.create(
        parent={"data_source_id": gates}, properties={"Name": {"title": text("x")}}
    )
    props = page["properties"]
    assert set(props) == set(GATES)
    assert props["Reason"] == {"id": props["Reason"]["id"], "type": "rich_text", "rich_text": []}
    assert props["Status"]["select"] is None and props["Duration"]["number"] is None
    assert props["Checked"]["date"] is None and props["Evidence"]["url"] is None
    assert props["Ok"]["checkbox"] is False
    assert props["Name"]["title"] == [
        {
            "type": "text",
            "text": {"content": "x", "link": None},
            "annotations": {
                "bold": False,
                "italic": False,
                "strikethrough": False,
                "underline": False,
                "code": False,
                "color": "default",
            },
            "plain_text": "x",
            "href": None,
        }
    ]
    assert page["url"] == "https://www.notion.so/" + page["id"].replace("-", "")
    assert MINUTE.match(page["created_time"]) and MINUTE.match(page["last_edited_time"])


def test_a_database_id_as_page_parent_means_its_data_source(
    notion: Client, fake_notion: FakeNotion, parent: str, gates: str
) -> None:
    [db] = fake_notion.databases_under(parent)
    page = notion.pages.create(parent={"database_id": db["id"]}, properties=gate("a"))
    assert page["parent"]["data_source_id"] == gates
    wrong = api_error(lambda: notion.pages.retrieve(page_id=db["id"]))
    assert wrong.code == "validation_error" and "is a database, not a page" in str(wrong)


def test_collect_paginated_api_walks_the_pages(
    notion: Client, fake_notion: FakeNotion, gates: str
) -> None:
    made = [fake_notion.seed_row(gates, gate(f"k{i}"))["id"] for i in range(5)]
    results = collect_paginated_api(notion.data_sources.query, data_source_id=gates, page_size=2)
    assert [r["id"] for r in results] == made  # oldest first, the insertion order within a minute
    queries = [r for r in fake_notion.requests if r.path.endswith("/query")]
    assert len(queries) == 3
    assert [q.body.get("start_cursor") if q.body else None for q in queries] == [
        None,
        made[2],
        made[4],
    ]
    big = api_error(lambda: notion.data_sources.query(data_source_id=gates, page_size=101))
    assert big.code == "validation_error"


@pytest.mark.parametrize(
    "properties,message",
    [
        ({"Foo": {"rich_text": text("x")}}, "Foo is not a property that exists."),
        ({"Status": {"rich_text": text("PASS")}}, "Status is expected to be select."),
        ({"Duration": {"number": "5"}}, "Duration is expected to be number."),
        (
            {"Reason": {"rich_text": text("x" * 2001)}},
            "body.properties.Reason.rich_text[0].text.content.length should be ≤ `2000`, "
            "instead was `2001`.",
        ),
        (
            {"Reason": {"rich_text": text("x") * 101}},
            "body.properties.Reason.rich_text.length should be ≤ `100`, instead was `101`.",
        ),
        # JavaScript counts an emoji outside the BMP as two characters.
        (
            {"Reason": {"rich_text": text("😀" * 1001)}},
            "body.properties.Reason.rich_text[0].text.content.length should be ≤ `2000`, "
            "instead was `2002`.",
        ),
        ({"Ok": {"checkbox": "yes"}}, "Ok is expected to be checkbox."),
        ({"Status": {"select": {"name": "A,B"}}}, "commas not allowed"),
    ],
)
def test_invalid_values_are_refused_as_notion_does(
    notion: Client, fake_notion: FakeNotion, gates: str, properties: dict[str, Any], message: str
) -> None:
    error = api_error(
        lambda: notion.pages.create(
            parent={"data_source_id": gates}, properties={**gate("k"), **properties}
        )
    )
    assert (error.code, error.status) == ("validation_error", 400)
    assert message in str(error)
    assert fake_notion.rows(gates) == []
    assert [o["name"] for o in fake_notion.schema(gates)["Status"]["select"]["options"]] == ["PASS"]


def test_limits_that_are_just_met_pass(notion: Client, gates: str) -> None:
    page = notion.pages.create(
        parent={"data_source_id": gates},
        properties=gate("k", Reason={"rich_text": text("é" * 2000) * 100}),
    )
    assert len(plain(page, "Reason")) == 200_000


def test_an_unknown_select_option_is_created(
    notion: Client, fake_notion: FakeNotion, gates: str
) -> None:
    page = notion.pages.create(
        parent={"data_source_id": gates}, properties=gate("k", Status={"select": {"name": "FLAKY"}})
    )
    assert page["properties"]["Status"]["select"]["name"] == "FLAKY"
    options = fake_notion.schema(gates)["Status"]["select"]["options"]
    assert [(o["name"], o["color"]) for o in options] == [("PASS", "green"), ("FLAKY", "default")]
    again = notion.pages.create(
        parent={"data_source_id": gates}, properties=gate("j", Status={"select": {"name": "FLAKY"}})
    )
    assert again["properties"]["Status"]["select"]["id"] == options[1]["id"]
    assert len(fake_notion.schema(gates)["Status"]["select"]["options"]) == 2


def test_dates_come_back_normalised(notion: Client, gates: str) -> None:
    def checked(start: str) -> Any:
        page = notion.pages.create(
            parent={"data_source_id": gates},
            properties=gate("k", Checked={"date": {"start": start}}),
        )
        return page["properties"]["Checked"]["date"]

    assert checked("2026-02-12T16:32:53Z") == {
        "start": "2026-02-12T16:32:53.000+00:00",
        "end": None,
        "time_zone": None,
    }
    assert checked("2026-02-12T16:32:53.25+00:00")["start"] == "2026-02-12T16:32:53.250+00:00"
    assert checked("2026-02-12T18:32:53+02:00")["start"] == "2026-02-12T18:32:53.000+02:00"
    assert checked("2026-02-12")["start"] == "2026-02-12"
    assert api_error(lambda: checked("yesterday")).code == "validation_error"


def test_integral_numbers_come_back_without_a_fraction(notion: Client, gates: str) -> None:
    page = notion.pages.create(
        parent={"data_source_id": gates}, properties=gate("k", Duration={"number": 5.0})
    )
    assert repr(page["properties"]["Duration"]["number"]) == "5"


def test_timestamps_are_truncated_to_the_minute(
    notion: Client, fake_notion: FakeNotion, parent: str, gates: str
) -> None:
    page = notion.pages.create(parent={"data_source_id": gates}, properties=gate("k"))
    [db] = fake_notion.databases_under(parent)
    for stamp in (page["created_time"], page["last_edited_time"], db["created_time"]):
        assert MINUTE.match(stamp), stamp


def test_seeded_rows_are_not_requests_and_keys_are_not_unique(
    notion: Client, fake_notion: FakeNotion, gates: str
) -> None:
    fake_notion.clear_requests()
    newer = fake_notion.seed_row(gates, gate("render/P2.2"), created_time="2026-11-22T10:31:45Z")
    older = fake_notion.seed_row(gates, gate("render/P2.2"), created_time="2026-11-21T09:00:00Z")
    assert newer["created_time"] == "2026-11-22T10:31:00.000Z"
    assert fake_notion.requests == []
    assert [r["id"] for r in fake_notion.rows(gates)] == [older["id"], newer["id"]]
    hits = notion.data_sources.query(
        data_source_id=gates,
        filter={"property": "Gate ID", "rich_text": {"equals": "render/P2.2"}},
        page_size=2,
    )["results"]
    assert [h["id"] for h in hits] == [older["id"], newer["id"]]
    with pytest.raises(ValueError, match="Nope is not a property"):
        fake_notion.seed_row(gates, {"Nope": {"rich_text": []}})


def test_sorts_and_compound_filters(notion: Client, fake_notion: FakeNotion, gates: str) -> None:
    for key, duration, ok in (("a", 3, True), ("b", 1, False), ("c", 2, True), ("d", None, True)):
        fake_notion.seed_row(gates, gate(key, Duration={"number": duration}, Ok={"checkbox": ok}))

    def keys(**kwargs: Any) -> list[str]:
        found = notion.data_sources.query(data_source_id=gates, **kwargs)["results"]
        return [plain(page, "Gate ID") for page in found]

    assert keys() == ["a", "b", "c", "d"]
    assert keys(sorts=[{"property": "Duration", "direction": "descending"}]) == ["a", "c", "b", "d"]
    assert keys(sorts=[{"property": "Duration", "direction": "ascending"}]) == ["b", "c", "a", "d"]
    assert keys(sorts=[{"timestamp": "created_time", "direction": "descending"}]) == [
        "a",  # one minute: ties keep insertion order
        "b",
        "c",
        "d",
    ]
    both = {
        "and": [
            {"property": "Ok", "checkbox": {"equals": True}},
            {"property": "Duration", "number": {"greater_than": 2}},
        ]
    }
    assert keys(filter=both) == ["a"]
    either = {
        "or": [
            {"property": "Gate ID", "rich_text": {"equals": "b"}},
            {"property": "Name", "title": {"contains": "D"}},
        ]
    }
    assert keys(filter=either) == ["b", "d"]
    assert keys(filter={"property": "Duration", "number": {"equals": 2}}) == ["c"]
    unknown = api_error(lambda: keys(filter={"property": "Nope", "rich_text": {"equals": "x"}}))
    assert unknown.code == "validation_error"
    assert str(unknown) == "Could not find property with name or id: Nope"


def test_select_filter_and_sort_by_option_order(
    notion: Client, fake_notion: FakeNotion, gates: str
) -> None:
    for key, status in (("a", "WARN"), ("b", "PASS"), ("c", None)):
        fake_notion.seed_row(
            gates, gate(key, Status={"select": {"name": status} if status else None})
        )
    found = notion.data_sources.query(
        data_source_id=gates, filter={"property": "Status", "select": {"equals": "WARN"}}
    )["results"]
    assert [plain(p, "Gate ID") for p in found] == ["a"]
    ordered = notion.data_sources.query(
        data_source_id=gates, sorts=[{"property": "Status", "direction": "ascending"}]
    )["results"]
    # PASS was the first option, WARN was created after it; an empty value sorts last.
    assert [plain(p, "Gate ID") for p in ordered] == ["b", "a", "c"]


def test_bad_token_is_unauthorized(sdk: SDK, fake_notion: FakeNotion) -> None:
    error = api_error(lambda: sdk(token="ntn_" + "0" * 46).users.me())
    assert (error.code, error.status, str(error)) == ("unauthorized", 401, "API token is invalid.")
    assert [r.status for r in fake_notion.requests] == [401]


def test_unshared_objects_are_not_found(
    notion: Client, fake_notion: FakeNotion, parent: str, gates: str
) -> None:
    [db] = fake_notion.databases_under(parent)
    row = notion.pages.create(parent={"data_source_id": gates}, properties=gate("k"))
    fake_notion.unshare(db["id"])
    error = api_error(lambda: notion.databases.retrieve(database_id=db["id"]))
    assert (error.code, error.status) == ("object_not_found", 404)
    assert str(error) == (
        f"Could not find database with ID: {db['id']}. "
        "Make sure the relevant pages and databases are shared with your integration."
    )
    assert api_error(lambda: notion.data_sources.query(data_source_id=gates)).status == 404
    assert api_error(lambda: notion.pages.retrieve(page_id=row["id"])).code == "object_not_found"


def test_a_429_with_retry_after_is_retried_by_the_sdk(sdk: SDK, fake_notion: FakeNotion) -> None:
    fake_notion.inject(429, "rate_limited", retry_after=0)
    assert sdk(retries=1).users.me()["type"] == "bot"
    assert fake_notion.count() == 2
    assert [r.status for r in fake_notion.requests] == [429, 200]


def test_a_429_is_an_api_response_error_with_its_retry_after(
    notion: Client, fake_notion: FakeNotion
) -> None:
    fake_notion.inject(429, retry_after=2)
    error = api_error(notion.users.me)
    assert (error.code, error.headers["retry-after"]) == ("rate_limited", "2")


def test_a_502_html_page_is_an_unknown_http_response(
    notion: Client, fake_notion: FakeNotion
) -> None:
    fake_notion.inject(502, raw_body="<html>502 Bad Gateway</html>")
    with pytest.raises(UnknownHTTPResponseError) as caught:
        notion.users.me()
    assert caught.value.status == 502 and "<html>" in caught.value.body
    assert caught.value.headers["content-type"].startswith("text/html")


def test_a_529_service_overload_is_an_unknown_http_response_and_not_retried(
    sdk: SDK, fake_notion: FakeNotion
) -> None:
    fake_notion.inject(529, "service_overload", times=3)
    with pytest.raises(UnknownHTTPResponseError) as caught:
        sdk(retries=2).users.me()
    # notion-client knows no "service_overload": the JSON body does not make it an APIResponseError.
    assert not isinstance(caught.value, APIResponseError)
    assert caught.value.status == 529 and '"service_overload"' in caught.value.body
    assert fake_notion.count() == 1


def test_a_409_is_an_api_response_error_and_not_retried(sdk: SDK, fake_notion: FakeNotion) -> None:
    fake_notion.inject(409, "conflict_error", times=3)
    error = api_error(sdk(retries=2).users.me)
    assert (error.code, error.status) == ("conflict_error", 409)
    assert fake_notion.count() == 1


def test_a_500_is_retried_on_get_but_not_on_post(
    sdk: SDK, fake_notion: FakeNotion, gates: str
) -> None:
    client = sdk(retries=1)
    fake_notion.inject(500, method="GET", retry_after=0)
    assert client.users.me()["type"] == "bot"
    fake_notion.inject(500, method="POST", retry_after=0)
    error = api_error(lambda: client.pages.create(parent={"data_source_id": gates}, properties={}))
    assert error.code == "internal_server_error"
    assert [r.status for r in fake_notion.requests[-3:]] == [500, 200, 500]
    assert fake_notion.rows(gates) == []


def test_a_slow_answer_is_a_request_timeout(sdk: SDK, fake_notion: FakeNotion) -> None:
    fake_notion.inject(0, delay_s=1.0)
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError):
        sdk(timeout_ms=150).users.me()
    assert time.monotonic() - started < 0.9


def test_a_create_whose_answer_was_lost_still_happened(
    notion: Client, fake_notion: FakeNotion, gates: str
) -> None:
    fake_notion.inject(504, "gateway_timeout", method="POST", path=r"^/v1/pages$", apply_first=True)
    error = api_error(
        lambda: notion.pages.create(parent={"data_source_id": gates}, properties=gate("k"))
    )
    assert error.code == "gateway_timeout"
    [row] = fake_notion.rows(gates)
    assert plain(row, "Gate ID") == "k"
    assert fake_notion.requests[-1].status == 504


def test_a_slow_create_that_times_out_still_happened(
    sdk: SDK, fake_notion: FakeNotion, gates: str
) -> None:
    fake_notion.inject(0, path=r"^/v1/pages$", delay_s=0.5, apply_first=True)
    with pytest.raises(RequestTimeoutError):
        sdk(timeout_ms=150).pages.create(parent={"data_source_id": gates}, properties=gate("k"))
    assert len(fake_notion.rows(gates)) == 1


def test_faults_match_method_and_path_and_go_in_order(
    notion: Client, fake_notion: FakeNotion, gates: str
) -> None:
    fake_notion.inject(0, method="POST", path=r"^/v1/pages$")  # one create goes through
    fake_notion.inject(503, method="POST", path=r"^/v1/pages$", times=2)

    def create() -> Any:
        return notion.pages.create(parent={"data_source_id": gates}, properties=gate("k"))

    notion.users.me()  # matches neither
    create()
    assert api_error(create).code == "service_unavailable"
    assert api_error(create).code == "service_unavailable"
    create()
    assert [r.status for r in fake_notion.requests[-5:]] == [200, 200, 503, 503, 200]
    assert len(fake_notion.rows(gates)) == 2


def test_the_rate_limit_answers_429_beyond_the_burst(
    notion: Client, fake_notion: FakeNotion
) -> None:
    fake_notion.rate_limit(per_second=5, burst=2)
    errors = []
    for _ in range(6):
        try:
            notion.users.me()
        except APIResponseError as error:
            errors.append(error)
    statuses = [r.status for r in fake_notion.requests]
    assert statuses[:2] == [200, 200] and 429 in statuses[2:]
    assert errors and {e.code for e in errors} == {"rate_limited"}
    assert errors[0].headers["retry-after"] == "1"  # whole seconds, as Notion sends them
    fake_notion.rate_limit(per_second=0, burst=0)
    notion.users.me()


def test_block_children_list_the_databases_of_a_page(
    notion: Client, fake_notion: FakeNotion, parent: str, gates: str
) -> None:
    runs = notion.databases.create(parent={"page_id": parent}, title=text("Runs"))
    listing = notion.blocks.children.list(block_id=parent)
    assert listing["object"] == "list" and listing["has_more"] is False
    blocks = [(b["type"], b["id"], b["child_database"]["title"]) for b in listing["results"]]
    [gates_db] = [d for d in fake_notion.databases_under(parent) if d["id"] != runs["id"]]
    assert blocks == [
        ("child_database", gates_db["id"], "Gates"),
        ("child_database", runs["id"], "Runs"),
    ]
    first = notion.blocks.children.list(block_id=parent, page_size=1)
    assert first["has_more"] is True and first["next_cursor"] == runs["id"]
    notion.databases.update(database_id=gates_db["id"], in_trash=True)
    listing = notion.blocks.children.list(block_id=parent)
    assert [b["id"] for b in listing["results"]] == [runs["id"]]
    assert [d["id"] for d in fake_notion.databases_under(parent)] == [runs["id"]]


def test_data_sources_update_adds_retypes_and_removes_properties(
    notion: Client, fake_notion: FakeNotion, gates: str
) -> None:
    fake_notion.seed_row(gates, gate("k", Duration={"number": 5}))
    source = notion.data_sources.update(
        data_source_id=gates,
        properties={
            "Owner": {"rich_text": {}},
            "Ok": None,
            "Duration": {"rich_text": {}},
            "Status": {"select": {"options": [{"name": "FAIL", "color": "red"}]}},
        },
    )
    props = source["properties"]
    assert "Ok" not in props and props["Owner"]["type"] == "rich_text"
    assert props["Duration"]["type"] == "rich_text"
    assert [o["name"] for o in props["Status"]["select"]["options"]] == ["PASS", "FAIL"]
    [row] = fake_notion.rows(gates)
    assert plain(row, "Duration") == "5" and "Ok" not in row["properties"]
    second_title = api_error(
        lambda: notion.data_sources.update(
            data_source_id=gates, properties={"Other": {"title": {}}}
        )
    )
    assert second_title.code == "validation_error"


def test_columns_changed_in_the_notion_ui(
    notion: Client, fake_notion: FakeNotion, gates: str
) -> None:
    fake_notion.seed_row(gates, gate("k", Duration={"number": 7}))
    fake_notion.drop_property(gates, "Reason")
    fake_notion.retype_property(gates, "Duration", "rich_text")
    props = notion.data_sources.retrieve(data_source_id=gates)["properties"]
    assert "Reason" not in props and props["Duration"]["type"] == "rich_text"
    assert plain(fake_notion.rows(gates)[0], "Duration") == "7"

    def write(properties: dict[str, Any]) -> Any:
        return notion.pages.create(parent={"data_source_id": gates}, properties=properties)

    assert str(api_error(lambda: write({"Reason": {"rich_text": text("x")}}))) == (
        "Reason is not a property that exists."
    )
    assert str(api_error(lambda: write({"Duration": {"number": 1}}))) == (
        "Duration is expected to be rich_text."
    )


def test_a_deleted_propertys_id_is_refused_in_writes_and_filters(
    notion: Client, fake_notion: FakeNotion, gates: str
) -> None:
    # opsctl writes and filters by property id from a kept schema (issue 17): a column deleted
    # in the UI since must be refused as Notion does, not ignored.
    row = fake_notion.seed_row(gates, gate("k"))
    reason = fake_notion.schema(gates)["Reason"]["id"]
    fake_notion.drop_property(gates, "Reason")
    patch = {reason: {"rich_text": text("x")}}
    error = api_error(lambda: notion.pages.update(page_id=row["id"], properties=patch))
    assert (error.status, error.code, str(error)) == (
        400,
        "validation_error",
        f"{reason} is not a property that exists.",
    )
    by_id = {"property": reason, "rich_text": {"equals": "x"}}
    error = api_error(lambda: notion.data_sources.query(data_source_id=gates, filter=by_id))
    assert (error.code, str(error)) == (
        "validation_error",
        f"Could not find property with name or id: {reason}",
    )
    [page] = notion.data_sources.query(data_source_id=gates)["results"]
    assert "Reason" not in page["properties"]  # a row shows the columns its data source has


@pytest.mark.parametrize("suffix,path", [("/", "//v1/users/me"), ("/v1", "/v1/v1/users/me")])
def test_a_base_url_that_is_not_the_bare_origin_is_an_invalid_request_url(
    fake_notion: FakeNotion, suffix: str, path: str
) -> None:
    client = Client(
        auth=fake_notion.token,
        base_url=fake_notion.url + suffix,
        retry=RetryOptions(max_retries=0),
        logger=QUIET,
        client=httpx.Client(verify=TLS),
    )
    error = api_error(client.users.me)
    client.close()
    assert (error.code, error.status) == ("invalid_request_url", 400)
    assert fake_notion.requests[-1].path == path


def test_concurrent_creates_all_land(sdk: SDK, fake_notion: FakeNotion, gates: str) -> None:
    clients = [sdk() for _ in range(4)]

    def create(index: int) -> None:
        for n in range(5):
            clients[index].pages.create(
                parent={"data_source_id": gates}, properties=gate(f"{index}/{n}")
            )

    workers = [threading.Thread(target=create, args=(i,)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)
    rows = fake_notion.rows(gates)
    assert len(rows) == len({r["id"] for r in rows}) == 20
    assert all(r.status == 200 for r in fake_notion.requests)


def test_writes_counts_and_clearing(notion: Client, fake_notion: FakeNotion, gates: str) -> None:
    fake_notion.clear_requests()
    notion.data_sources.query(data_source_id=gates)
    page = notion.pages.create(parent={"data_source_id": gates}, properties=gate("k"))
    api_error(lambda: notion.pages.update(page_id=page["id"], properties={"X": {"number": 1}}))
    assert [(w.method, w.status) for w in fake_notion.writes()] == [("POST", 200), ("PATCH", 400)]
    assert fake_notion.count("post") == 2
    assert fake_notion.count(path_contains="/query") == 1
    assert fake_notion.count("PATCH", "/v1/pages/") == 1
    assert fake_notion.requests[0].at <= fake_notion.requests[-1].at
    fake_notion.clear_requests()
    assert fake_notion.requests == [] and fake_notion.count() == 0


def test_stop_wakes_a_delayed_answer(fake_notion: FakeNotion, raw: RAW) -> None:
    fake_notion.inject(0, delay_s=30)
    answered: list[int] = []
    caller = threading.Thread(
        target=lambda: answered.append(raw("GET", "/v1/users/me").status_code)
    )
    caller.start()
    deadline = time.monotonic() + 2
    while not fake_notion.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    fake_notion.stop()
    caller.join(timeout=5)
    assert time.monotonic() - started < 2 and answered == [200]


def test_a_bug_in_the_fake_is_a_500_and_kept(
    notion: Client, fake_notion: FakeNotion, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("oops")

    monkeypatch.setattr(fake_notion, "_route", lambda method, path: (broken, []))
    assert api_error(notion.users.me).code == "internal_server_error"
    [crash] = fake_notion.crashes
    assert "KeyError: 'oops'" in crash
    fake_notion.crashes.clear()  # or the fixture fails the test


def test_a_stopped_fake_refuses_connections() -> None:
    with FakeNotion() as fake:
        url = fake.url
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/v1/users/me", timeout=2, verify=TLS)


# --- raw HTTP: what the SDK cannot send ----------------------------------------------------------


def test_a_missing_notion_version_is_refused(raw: RAW) -> None:
    response = raw("GET", "/v1/users/me", headers={"Notion-Version": None})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert (body["object"], body["status"], body["code"]) == ("error", 400, "missing_version")
    assert body["message"] and re.fullmatch(r"[0-9a-f-]{36}", body["request_id"])


def test_a_double_slash_path_is_an_invalid_request_url(fake_notion: FakeNotion) -> None:
    # httpx would tidy the path; http.client sends the request line as written, like a base_url
    # with a trailing slash makes notion-client do.
    host, port = fake_notion.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    connection.request(
        "GET",
        "//v1/users/me",
        headers={"Authorization": f"Bearer {fake_notion.token}", "Notion-Version": NOTION_VERSION},
    )
    response = connection.getresponse()
    assert response.status == 400 and b'"invalid_request_url"' in response.read()
    connection.close()
    assert fake_notion.requests[-1].path == "//v1/users/me"


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"", b'{"a": NaN}'])
def test_a_body_that_is_not_a_json_object_is_invalid_json(
    fake_notion: FakeNotion, raw: RAW, content: bytes
) -> None:
    response = raw(
        "POST", "/v1/pages", content=content, headers={"Content-Type": "application/json"}
    )
    assert (response.status_code, response.json()["code"]) == (400, "invalid_json")
    assert fake_notion.requests[-1].body is None


def test_the_old_database_query_endpoint_is_an_invalid_request_url(
    fake_notion: FakeNotion, raw: RAW, parent: str, gates: str
) -> None:
    [db] = fake_notion.databases_under(parent)
    response = raw("POST", f"/v1/databases/{db['id']}/query", json={})
    assert (response.status_code, response.json()["code"]) == (400, "invalid_request_url")
    response = raw("POST", f"/v1/data_sources/{gates}/query", json={})
    assert response.status_code == 200 and response.json()["type"] == "page_or_data_source"


def test_ids_with_or_without_dashes_and_not_uuids(
    fake_notion: FakeNotion, raw: RAW, gates: str
) -> None:
    page = fake_notion.seed_row(gates, gate("k"))
    response = raw("GET", "/v1/pages/" + page["id"].replace("-", ""))
    assert response.status_code == 200 and response.json()["id"] == page["id"]
    response = raw("GET", "/v1/pages/" + page["id"].upper())
    assert response.status_code == 200
    response = raw("GET", "/v1/pages/not-a-uuid")
    assert (response.status_code, response.json()["code"]) == (400, "validation_error")
    response = raw("GET", "/v1/pages/" + "a" * 32)
    assert (response.status_code, response.json()["code"]) == (404, "object_not_found")


def test_another_notion_version_is_refused_not_imitated(raw: RAW) -> None:
    # Not Notion's answer (it would serve the old shapes): the fake speaks 2025-09-03 only.
    response = raw("GET", "/v1/users/me", headers={"Notion-Version": "2022-06-28"})
    assert response.status_code == 400 and "2025-09-03" in response.json()["message"]


def test_the_pipeline_order(fake_notion: FakeNotion, raw: RAW) -> None:
    # An injected fault comes before authentication, authentication before the version check.
    fake_notion.inject(503)
    assert raw("GET", "/v1/users/me", headers={"Authorization": "x"}).status_code == 503
    response = raw("GET", "/v1/nothing", headers={"Authorization": "Bearer x"})
    assert (response.status_code, response.json()["code"]) == (401, "unauthorized")
    response = raw("GET", "/v1/nothing", headers={"Authorization": None, "Notion-Version": None})
    assert response.json()["code"] == "unauthorized"
    response = raw("GET", "/v1/nothing")
    assert (response.status_code, response.json()["code"]) == (400, "invalid_request_url")
    assert [r.status for r in fake_notion.requests] == [503, 401, 401, 400]


# --- edits a person makes in the Notion UI (issue 15: surviving edits) -------------------------


def test_a_renamed_property_keeps_its_id_values_filters_and_writes(
    notion: Client, fake_notion: FakeNotion, gates: str
) -> None:
    fake_notion.seed_row(gates, gate("render/P2.2", Status={"select": {"name": "PASS"}}))
    before = fake_notion.schema(gates)
    key_id, status_id = before["Gate ID"]["id"], before["Status"]["id"]
    fake_notion.rename_property(gates, "Gate ID", "Key")
    fake_notion.rename_property(gates, "Status", "State")
    props = notion.data_sources.retrieve(data_source_id=gates)["properties"]
    assert (props["Key"]["id"], props["State"]["id"]) == (key_id, status_id)
    assert "Gate ID" not in props and list(props).index("Key") == list(before).index("Gate ID")
    by_id = {"property": key_id, "rich_text": {"equals": "render/P2.2"}}
    [row] = notion.data_sources.query(data_source_id=gates, filter=by_id)["results"]
    assert row["properties"]["State"] == {
        "id": status_id,
        "type": "select",
        "select": row["properties"]["State"]["select"],
    }
    assert row["properties"]["State"]["select"]["name"] == "PASS"
    notion.pages.update(page_id=row["id"], properties={status_id: {"select": {"name": "FAIL"}}})
    assert fake_notion.rows(gates)[0]["properties"]["State"]["select"]["name"] == "FAIL"
    by_old_name = {"property": "Gate ID", "rich_text": {"equals": "render/P2.2"}}
    error = api_error(lambda: notion.data_sources.query(data_source_id=gates, filter=by_old_name))
    assert str(error) == "Could not find property with name or id: Gate ID"


def test_a_row_edited_by_hand_is_not_a_request(fake_notion: FakeNotion, gates: str) -> None:
    row = fake_notion.seed_row(gates, gate("k"))
    sent = len(fake_notion.requests)
    edited = fake_notion.edit_row(row["id"], {"Checked": {"date": {"start": "2031-01-01"}}})
    assert edited["properties"]["Checked"]["date"]["start"] == "2031-01-01"
    assert fake_notion.rows(gates)[0]["properties"]["Checked"]["date"]["start"] == "2031-01-01"
    assert len(fake_notion.requests) == sent
    with pytest.raises(ValueError, match="Nope is not a property that exists"):
        fake_notion.edit_row(row["id"], {"Nope": {"checkbox": True}})
