"""The JSON API on real workers: documents, errors, token, OpenAPI; and two workers of
one group answering the same state and CAP feed for every gate."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import orjson
import pytest

from tests.support import ev, message, poll, produce

pytestmark = pytest.mark.integration

GATES = ("huu-nghi", "tan-thanh", "chi-ma", "coc-nam", "dong-dang-rail")


def get(url: str, token: str | None = None, method: str = "GET") -> tuple[int, dict]:
    req = urllib.request.Request(url, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return exc.code, orjson.loads(body) if body.startswith(b"{") else {}


def call(url: str, method: str = "GET", **headers: str) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of any request; header names use ``_`` for ``-``."""
    req = urllib.request.Request(url, method=method,
                                 headers={k.replace("_", "-"): v for k, v in headers.items()})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def cap_links(w) -> list[str]:  # type: ignore[no-untyped-def]
    """The message links of a worker's CAP feed."""
    from xml.etree import ElementTree as ET  # noqa: S405 - the worker's own output

    status, _h, body = call(f"{w.url}/api/v1/cap.atom")
    assert status == 200, body[:300]
    atom = "{http://www.w3.org/2005/Atom}"
    return [link.get("href") or "" for link in ET.fromstring(body).iter(atom + "link")  # noqa: S314
            if link.get("type") == "application/cap+xml"]


def cap_types(w) -> list[str]:  # type: ignore[no-untyped-def]
    """The msgType of each message a worker's CAP feed links to, fetched from it."""
    out = []
    for href in cap_links(w):
        status, _h, body = call(href)
        assert status == 200, body[:300]
        out.append(body.split(b"<msgType>")[1].split(b"<")[0].decode())
    return out


def traffic(t0: int) -> list[tuple[bytes, bytes]]:
    """Gate i gets i + 2 vehicles waiting (dong-dang-rail: 6)."""
    out = []
    for i, gate in enumerate(GATES):
        for v in range(i + 2):
            out.append(message(ev(f"{gate[:2]}-{v}", "queued", t0 + v, gate,
                                  event_id=f"{gate}-{v}", cargo=None)))
    return out


def test_api_documents_errors_token_and_openapi(bootstrap, worker_factory, test_id):
    token = "s3cret-token"
    w = worker_factory(GATEWATCH_API_TOKEN=token,
                       GATEWATCH_API_CORS_ORIGINS="https://ops.example.vn")
    w.wait_ready()
    produce(bootstrap, f"{test_id}-gate.events", traffic(int(time.time() * 1000) - 60_000))
    assert get(f"{w.url}/api/v1/gates")[0] == 401
    assert get(f"{w.url}/api/v1/gates", "wrong")[1]["error"]["code"] == "unauthorized"

    def waiting_all() -> dict | None:
        status, doc = get(f"{w.url}/api/v1/gates", token)
        gates = {g["gate_id"]: g for g in doc.get("gates", [])}
        done = all(g["waiting"] and g["waiting"]["total"] == i + 2
                   for i, g in enumerate(gates[x] for x in GATES))
        return gates if status == 200 and done else None
    gates = poll(waiting_all, 30, "every gate's waiting count in the API")
    hn = gates["huu-nghi"]
    assert hn["congestion"] == "normal" and hn["name"].startswith("Cửa khẩu")
    assert hn["estimated_wait_seconds"] is None  # nothing crossed: unknown, not a number
    assert hn["last_event_at"].endswith("Z")
    status, one = get(f"{w.url}/api/v1/gates/chi-ma", token)
    assert status == 200 and one["waiting"]["total"] == 4 and "windows" in one
    assert get(f"{w.url}/api/v1/gates/mong-cai", token)[1]["error"]["code"] == "unknown_gate"
    assert get(f"{w.url}/api/v1/gates/mong-cai", token)[0] == 404
    bad = get(f"{w.url}/api/v1/gates/huu-nghi/windows?from=2021-12-21T00:00:00Z"
              "&to=2021-12-20T00:00:00Z", token)
    assert bad == (400, {"error": {"code": "bad_range", "message": "from must not be after to"}})
    assert get(f"{w.url}/api/v1/gates/huu-nghi/windows?size=501", token)[0] == 400
    assert get(f"{w.url}/api/v1/gates/huu-nghi/windows?from=yesterday", token)[0] == 400
    status, wins = get(f"{w.url}/api/v1/gates/huu-nghi/windows?size=5", token)
    assert status == 200 and wins["size"] == 5 and isinstance(wins["windows"], list)
    assert wins["owned"] is True  # the books are read per request, not before the rebuild
    # an unencoded + before the offset arrives as a space: read as +, there only
    status, wins = get(f"{w.url}/api/v1/gates/huu-nghi/windows"
                       "?from=2021-12-20T08:00:00+07:00&to=2021-12-21T08:00:00%2B07:00", token)
    assert status == 200, wins
    assert (wins["from"], wins["to"]) == ("2021-12-20T01:00:00.000Z", "2021-12-21T01:00:00.000Z")
    status, err = get(f"{w.url}/api/v1/gates/huu-nghi/windows?to=", token)  # present, empty
    assert status == 400 and err["error"]["code"] == "bad_timestamp"
    assert "2021-12-20T08:00:00%2B07:00" in err["error"]["message"]
    assert get(f"{w.url}/api/v1/gates/huu-nghi/windows?from=", token)[0] == 400
    # the scheme is case-insensitive (RFC 7235); a 401 says which scheme it wants
    for scheme in ("bearer", "BEARER"):
        assert call(f"{w.url}/api/v1/alerts", Authorization=f"{scheme} {token}")[0] == 200
    status, hdrs, _ = call(f"{w.url}/api/v1/alerts", Authorization=f"Basic {token}")
    assert status == 401 and hdrs["WWW-Authenticate"].startswith("Bearer")
    # read-only: any other method is a JSON 405 naming the allowed ones, token or not
    for method, path in (("POST", "/api/v1/gates"), ("DELETE", "/api/v1/gates/huu-nghi"),
                         ("TRACE", "/api/v1/alerts"), ("PUT", "/api/v1/gates/x/windows")):
        status, hdrs, body = call(w.url + path, method)
        assert status == 405 and hdrs["Allow"] == "GET, HEAD, OPTIONS", (method, path)
        assert orjson.loads(body)["error"]["code"] == "method_not_allowed"
    # a browser's CORS preflight carries no token: 204, CORS headers for a listed origin only
    for path in ("/api/v1/gates", "/api/v1/gates/huu-nghi/windows", "/api/v1/alerts"):
        status, hdrs, body = call(w.url + path, "OPTIONS", Origin="https://ops.example.vn",
                                  Access_Control_Request_Method="GET",
                                  Access_Control_Request_Headers="authorization")
        assert (status, body) == (204, b""), path
        assert hdrs["Access-Control-Allow-Origin"] == "https://ops.example.vn"
        assert hdrs["Access-Control-Allow-Methods"] == "GET, OPTIONS"
        assert hdrs["Access-Control-Allow-Headers"] == "Authorization"
        assert int(hdrs["Access-Control-Max-Age"]) > 0
    status, hdrs, _ = call(f"{w.url}/api/v1/gates", "OPTIONS", Origin="https://evil.example",
                           Access_Control_Request_Method="GET")
    assert status == 204 and not [h for h in hdrs if h.lower().startswith("access-control")]
    assert get(f"{w.url}/api/v1/alerts", token) == (200, {"alerts": []})
    for origin, allowed in (("https://ops.example.vn", "https://ops.example.vn"),
                            ("https://evil.example", None)):
        req = urllib.request.Request(f"{w.url}/api/v1/alerts", headers={
            "Origin": origin, "Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.headers.get("Access-Control-Allow-Origin") == allowed
    status, spec = get(f"{w.url}/openapi.json")
    assert status == 200
    from openapi_spec_validator import validate

    validate(spec)
    assert set(spec["paths"]) == {"/api/v1/gates", "/api/v1/gates/{gate_id}",
                                  "/api/v1/gates/{gate_id}/windows",
                                  "/api/v1/gates/{gate_id}/forecast", "/api/v1/alerts",
                                  "/api/v1/cap.atom", "/api/v1/cap/{identifier}.xml",
                                  "/api/v1/gates/{gate_id}/history",
                                  "/api/v1/gates/{gate_id}/patterns",
                                  "/api/v1/advisories", "/api/v1/recommendations",
                                  "/api/v1/public/gates"}
    # every 4xx answered above is documented on its path, with its code
    windows = spec["paths"]["/api/v1/gates/{gate_id}/windows"]
    codes = windows["get"]["responses"]["400"]["content"]["application/json"]["schema"][
        "properties"]["error"]["properties"]["code"]["enum"]
    assert {"bad_range", "bad_timestamp", "bad_size"} <= set(codes)
    assert {"401", "404"} <= set(windows["get"]["responses"]) and "options" in windows
    assert all("405" in item["description"] for item in spec["paths"].values())
    assert spec["security"] == [{"bearer": []}]  # this worker has a token


def test_any_of_two_workers_answers_for_every_gate(bootstrap, worker_factory, test_id):
    w1 = worker_factory(GATEWATCH_ALERT_RAISE_HOLD_SECONDS="1")
    w2 = worker_factory(GATEWATCH_ALERT_RAISE_HOLD_SECONDS="1")
    w1.wait_ready(timeout=90)
    w2.wait_ready(timeout=90)
    produce(bootstrap, f"{test_id}-gate.events", traffic(int(time.time() * 1000) - 60_000))

    def state(w) -> dict | None:  # type: ignore[no-untyped-def]
        status, doc = get(f"{w.url}/api/v1/gates")
        if status != 200:
            return None
        return {g["gate_id"]: (g["congestion"], g["waiting"] and g["waiting"]["total"])
                for g in doc["gates"]}

    expected = {g: ("normal", i + 2) for i, g in enumerate(GATES)}
    poll(lambda: state(w1) == expected and state(w2) == expected, 90,
         "both workers answering the same state for every gate")
    for gate in GATES:
        a, b = get(f"{w1.url}/api/v1/gates/{gate}")[1], get(f"{w2.url}/api/v1/gates/{gate}")[1]
        assert a["waiting"] == b["waiting"] and a["congestion"] == b["congestion"]

    def local(w) -> set[str]:  # type: ignore[no-untyped-def]
        req = urllib.request.Request(f"{w.url}/api/v1/gates",
                                     headers={"X-Gatewatch-Forwarded": "1"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return {g["gate_id"] for g in orjson.loads(r.read())["gates"] if g["owned"]}
    mine1, mine2 = local(w1), local(w2)
    print(f"worker 1 holds {sorted(mine1)}, worker 2 holds {sorted(mine2)}")
    assert mine1 | mine2 == set(GATES) and not mine1 & mine2  # each gate held exactly once

    # the CAP feed: either worker lists the alert of a gate the other holds, and serves its
    # messages, the one the feed replaced included (from the holder's incident records)
    t = int(time.time() * 1000) - 50_000
    hn = [message(ev(f"29C-{v:05d}", "queued", t + v, "huu-nghi", event_id=f"cap-{v}",
                     cargo=None)) for v in range(1200)]
    produce(bootstrap, f"{test_id}-gate.events", hn[:700])  # > the bundled warning, 600
    poll(lambda: cap_types(w1) == cap_types(w2) == ["Alert"], 90,
         "the Alert in both workers' CAP feeds")
    [alert] = cap_links(w1)
    produce(bootstrap, f"{test_id}-gate.events", hn[700:])  # > critical, 1100
    poll(lambda: cap_types(w1) == cap_types(w2) == ["Update"], 90,
         "the Update in both workers' CAP feeds")
    for w in (w1, w2):
        status, _h, body = call(alert.replace(w1.url, w.url))
        assert status == 200 and b"<msgType>Alert</msgType>" in body, body[:300]
