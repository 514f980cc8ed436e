"""The API's pure edges: range parsing, the bearer token, CORS headers, which peer is this
worker, and an OpenAPI document that lists every 4xx the code can answer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gatewatch.web.api as api
from gatewatch.streams.codec import parse_timestamp_ms
from gatewatch.web.api import (
    ALLOW,
    MAX_PAGE,
    ApiError,
    authorized,
    cors_headers,
    is_self,
    openapi,
    parse_range,
    peer_urls,
)

NOW = parse_timestamp_ms("2021-12-20T08:00:00Z") or 0
DAY = 86_400_000
PLUS7 = parse_timestamp_ms("2021-12-20T08:00:00+07:00")


def refused(query: dict[str, str]) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse_range(query, NOW)
    assert info.value.status == 400
    return info.value


# --- from / to / size --------------------------------------------------------------------

def test_defaults_are_the_last_24_hours_and_100_rows():
    assert parse_range({}, NOW) == (NOW - DAY, NOW, 100)
    assert parse_range({"to": "2021-12-20T08:00:00+07:00"}, NOW) == (PLUS7 - DAY, PLUS7, 100)


def test_an_unencoded_plus_before_the_offset_arrives_as_a_space_and_is_read_as_plus():
    # ?from=2021-12-20T08:00:00+07:00 typed as is: the query string decodes + as a space
    assert parse_range({"from": "2021-12-20T08:00:00 07:00", "to": "2021-12-21T00:00:00Z"},
                       NOW)[0] == PLUS7
    assert parse_range({"to": "2021-12-20T08:00:00.250 07:00"}, NOW)[1] == PLUS7 + 250
    assert parse_range({"to": "2021-12-20T08:00:00+07:00"}, NOW)[1] == PLUS7  # %2B


@pytest.mark.parametrize("raw", [
    "2021-12-20T08:00:00  07:00",   # two spaces
    "2021-12-20T08:00:00 0700",     # not an hh:mm offset
    "2021-12-20T08:00:00Z 07:00",   # a second offset
    "2021 12-20T08:00:00+07:00",    # a space elsewhere
    "2021-12-20T08:00:00 07:00 ",
])
def test_a_space_anywhere_else_is_refused(raw):
    assert refused({"to": raw}).code == "bad_timestamp"


@pytest.mark.parametrize("name", ["from", "to"])
def test_a_present_but_empty_from_or_to_is_refused(name):
    err = refused({name: ""})
    assert err.code == "bad_timestamp" and err.message.startswith(f"{name} is empty")


def test_the_error_message_shows_the_encoded_form_that_works():
    msg = refused({"from": "yesterday"}).message
    assert "2021-12-20T08:00:00%2B07:00" in msg and "+07:00 " not in msg
    example = msg.split("e.g. ")[1].split(" ")[0].replace("%2B", "+")
    assert parse_timestamp_ms(example) == PLUS7  # the example in the message parses


def test_from_after_to_is_bad_range():
    err = refused({"from": "2021-12-21T00:00:00Z", "to": "2021-12-20T00:00:00Z"})
    assert (err.code, err.message) == ("bad_range", "from must not be after to")


@pytest.mark.parametrize("raw", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"])
def test_timestamps_outside_what_rfc3339_can_write_are_a_400_not_a_crash(raw):
    assert refused({"to": raw}).code == "bad_timestamp"


def test_the_default_from_stays_within_the_writable_years():
    frm, to, _ = parse_range({"to": "0001-01-01T12:00:00Z"}, NOW)
    assert frm == api.MIN_MS and to == api.MIN_MS + 12 * 3_600_000


@pytest.mark.parametrize("raw", ["", "0", "501", "1_0", "٣", " 5", "+5", "5.0", "1e2",
                                 "9" * 5000])
def test_size_must_be_plain_ascii_digits_within_the_page(raw):
    assert refused({"size": raw}).code == "bad_size"


def test_size_bounds_are_accepted():
    assert parse_range({"size": "1"}, NOW)[2] == 1
    assert parse_range({"size": str(MAX_PAGE)}, NOW)[2] == MAX_PAGE


# --- the bearer token ----------------------------------------------------------------------

@pytest.mark.parametrize("header", ["Bearer s3cret", "bearer s3cret", "BEARER s3cret",
                                    "Bearer  s3cret ", " Bearer s3cret"])
def test_the_bearer_scheme_is_case_insensitive(header):
    assert authorized(header, "s3cret")


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Bearer wrong",
                                    "Bearer s3cret2", "Basic s3cret", "Bearers3cret",
                                    "Bearer s3crét", "Bearer \udcff\ud800"])
def test_anything_else_is_refused_without_raising(header):
    assert not authorized(header, "s3cret")


def test_no_token_configured_lets_everyone_in():
    assert authorized(None, "") and authorized("Bearer x", "")


def test_the_token_is_compared_in_constant_time(monkeypatch):
    calls = []

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return a == b
    monkeypatch.setattr("gatewatch.web.api.hmac.compare_digest", spy)
    assert authorized("bearer s3cret", "s3cret") and not authorized("Bearer nope", "s3cret")
    assert calls == [(b"s3cret", b"s3cret"), (b"nope", b"s3cret")]


# --- CORS ------------------------------------------------------------------------------------

def test_cors_headers_only_for_an_allowed_origin():
    allowed = ("https://ops.example.vn",)
    assert cors_headers("https://ops.example.vn", allowed) == {
        "Access-Control-Allow-Origin": "https://ops.example.vn", "Vary": "Origin"}
    assert cors_headers("https://evil.example", allowed) == {}
    assert cors_headers(None, allowed) == {} and cors_headers("https://a", ()) == {}
    assert cors_headers("https://a", ("*",))["Access-Control-Allow-Origin"] == "*"


# --- which peer is this worker ------------------------------------------------------------

@pytest.mark.parametrize("url", ["http://10.1.2.3:6066", "10.1.2.3:6066", "http://10.1.2.3:6066/",
                                 "HTTP://10.1.2.3:6066"])
def test_this_worker_is_recognised(url):
    assert is_self(url, "10.1.2.3", 6066)


@pytest.mark.parametrize("url", ["http://110.1.2.3:6066", "110.1.2.3:6066",
                                 "http://10.1.2.3:16066", "http://10.1.2.3:606",
                                 "http://x10.1.2.3:6066", "http://10.1.2.3", "http://10.1.2.3:x",
                                 "http://10.1.2.3.example:6066"])
def test_a_peer_whose_url_merely_ends_like_this_one_is_not_self(url):
    assert not is_self(url, "10.1.2.3", 6066)


def test_host_names_compare_case_insensitively_and_ipv6_with_or_without_brackets():
    assert is_self("http://Worker-1.GW:6066", "worker-1.gw", 6066)
    assert is_self("http://[::1]:6066", "::1", 6066)
    assert is_self("http://[::1]:6066", "[::1]", 6066)
    assert is_self("http://gw:80", "gw", 80) and is_self("http://gw", "gw", 80)


def test_peer_urls_keeps_every_other_worker():
    meta = ["http://10.1.2.3:6066", "110.1.2.3:6066", "http://10.1.2.3:6067/"]
    assert peer_urls(meta, "10.1.2.3", 6066) == ["http://110.1.2.3:6066",
                                                 "http://10.1.2.3:6067"]


# --- the OpenAPI document lists every 4xx ----------------------------------------------------

def raised_codes() -> set[tuple[int, str]]:
    """Every ``ApiError(status, "code", ...)`` written in gatewatch/web/api.py."""
    tree = ast.parse(Path(api.__file__).read_text("utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ApiError":
            status, code = node.args[0], node.args[1]
            assert isinstance(status, ast.Constant) and isinstance(code, ast.Constant)
            found.add((status.value, code.value))
    return found


def documented(spec: dict) -> dict[tuple[str, str], dict[str, set[str]]]:
    """(path, method) -> status -> the error codes its JSON schema allows."""
    out: dict[tuple[str, str], dict[str, set[str]]] = {}
    for path, item in spec["paths"].items():
        for method in ("get", "options"):
            for status, resp in item[method]["responses"].items():
                schema = resp.get("content", {}).get("application/json", {}).get("schema", {})
                codes = schema.get("properties", {}).get("error", {}).get(
                    "properties", {}).get("code", {}).get("enum", [])
                out.setdefault((path, method), {})[status] = set(codes)
    return out


def test_every_error_the_api_raises_is_documented_with_its_code():
    spec = openapi("1", token_required=True)
    docs = documented(spec)
    codes_by_status: dict[str, set[str]] = {}
    for statuses in docs.values():
        for status, codes in statuses.items():
            codes_by_status.setdefault(status, set()).update(codes)
    codes_by_status.setdefault("405", set()).update(
        spec["components"]["responses"]["MethodNotAllowed"]["content"]["application/json"][
            "schema"]["properties"]["error"]["properties"]["code"]["enum"])
    raised = raised_codes()
    assert {(405, "method_not_allowed"), (400, "bad_range"), (401, "unauthorized"),
            (404, "unknown_gate")} <= raised
    for status, code in raised:
        assert code in codes_by_status.get(str(status), set()), (status, code)


def test_each_path_documents_its_own_4xx():
    docs = documented(openapi("1", token_required=True))
    windows = docs[("/api/v1/gates/{gate_id}/windows", "get")]
    assert windows["400"] == {"bad_timestamp", "bad_range", "bad_size"}
    assert windows["404"] == {"unknown_gate"} and windows["401"] == {"unauthorized"}
    assert "404" in docs[("/api/v1/gates/{gate_id}", "get")]
    public = docs.pop(("/api/v1/public/gates", "get"))
    assert "401" not in public and public["429"] == {"rate_limited"}  # open data: no token
    for (path, method), statuses in docs.items():
        if method == "get":
            assert "401" in statuses and "400" in statuses, path
        if "{gate_id}" not in path and "{identifier}" not in path:  # only those can be unknown
            assert "404" not in statuses, path
    spec = openapi("1")
    for path, item in spec["paths"].items():
        assert "405" in item["description"] and ALLOW in item["description"], path
        assert "204" in item["options"]["responses"] and item["options"]["security"] == []


def test_the_token_requirement_is_in_the_document_only_when_configured():
    assert openapi("1", token_required=True)["security"] == [{"bearer": []}]
    assert "security" not in openapi("1")


def test_the_document_is_valid_openapi():
    from openapi_spec_validator import validate

    validate(openapi("1"))
    validate(openapi("1", token_required=True))
