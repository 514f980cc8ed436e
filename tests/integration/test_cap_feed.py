"""The CAP feed through a real worker: an alert raised by real events appears in
/api/v1/cap.atom as an ``Alert``, escalates to an ``Update`` and resolves to a ``Cancel``;
every CAP message the feed links to is fetched and validated against the official OASIS
CAP 1.2 schema, and the messages the feed replaced stay fetchable while their incident
is listed; ETag revalidation answers 304."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from xml.etree import ElementTree as ET  # noqa: S405 - parsing the worker's own output

import pytest

from tests.support import cap_errors, ev, gates_yaml, message, poll, produce

pytestmark = pytest.mark.integration

ATOM = "{http://www.w3.org/2005/Atom}"
CAP = "{urn:oasis:names:tc:emergency:cap:1.2}"
GATES = gates_yaml({"huu-nghi": "{warning: 5, critical: 10, warning_clear: 3, critical_clear: 8}"}
                   ) + "    lat: 21.9706\n    lon: 106.7044\n"


def messages(w, seen: dict[str, bytes]) -> list[ET.Element]:
    """The feed's CAP messages, each fetched by its link and schema-validated."""
    status, body = w.get("/api/v1/cap.atom")
    assert status == 200, body[:300]
    feed = ET.fromstring(body)  # noqa: S314
    for tag in ("id", "title", "updated", "author"):
        assert feed.find(ATOM + tag) is not None, tag
    out = []
    for entry in feed.findall(ATOM + "entry"):
        link = entry.find(ATOM + "link")
        assert link is not None and link.get("type") == "application/cap+xml"
        href = link.get("href") or ""
        assert href.startswith(w.url + "/api/v1/cap/")
        status, xml = w.get(href[len(w.url):])
        assert status == 200, xml[:300]
        assert cap_errors(xml) == [], xml[:500]
        seen[href] = xml
        out.append(ET.fromstring(xml))  # noqa: S314
    return out


def msg_types(w, seen: dict[str, bytes]) -> list[str]:
    return [m.findtext(CAP + "msgType") or "" for m in messages(w, seen)]


def test_alert_update_and_cancel_in_the_cap_feed(bootstrap, worker_factory, test_id,
                                                 tmp_path):
    gates = tmp_path / "gates.yaml"
    gates.write_text(GATES)
    w = worker_factory(GATEWATCH_GATES=str(gates), GATEWATCH_ALERT_RAISE_HOLD_SECONDS="1",
                       GATEWATCH_ALERT_CLEAR_HOLD_SECONDS="2",
                       GATEWATCH_CAP_SENDER="gatewatch@langson.test")
    w.wait_ready()
    seen: dict[str, bytes] = {}
    assert msg_types(w, seen) == []
    topic = f"{test_id}-gate.events"
    now = int(time.time() * 1000)

    def queue(ids: range, t: int) -> None:
        produce(bootstrap, topic, [message(ev(f"29C-{i:05d}", "queued", t + i,
                                              event_id=f"q{i}")) for i in ids])

    queue(range(7), now - 60_000)
    poll(lambda: msg_types(w, seen) == ["Alert"], 60, "an Alert in the CAP feed")
    [alert] = messages(w, seen)
    original = (f"gatewatch@langson.test,{alert.findtext(CAP + 'identifier')},"
                f"{alert.findtext(CAP + 'sent')}")
    infos = alert.findall(CAP + "info")
    assert [i.findtext(CAP + "language") for i in infos] == ["vi-VN", "en-US"]
    assert "Hữu Nghị" in (infos[0].findtext(CAP + "description") or "")
    assert infos[1].findtext(CAP + "area/" + CAP + "circle") == "21.9706,106.7044 3.0"

    # conditional GET: unchanged feed → 304
    req = urllib.request.Request(w.url + "/api/v1/cap.atom")
    with urllib.request.urlopen(req, timeout=5) as resp:
        tag = resp.headers["ETag"]
        assert resp.headers["Last-Modified"] and resp.headers["Content-Type"].startswith(
            "application/atom+xml")
    req.add_header("If-None-Match", tag)
    with pytest.raises(urllib.error.HTTPError) as not_modified:
        urllib.request.urlopen(req, timeout=5)  # noqa: S310 - loopback test URL
    assert not_modified.value.code == 304

    queue(range(7, 12), now - 50_000)  # 12 waiting > critical 10
    poll(lambda: msg_types(w, seen) == ["Update"], 60, "an Update in the CAP feed")
    [update] = messages(w, seen)
    assert update.findtext(CAP + "references") == original
    assert update.findtext(CAP + "info/" + CAP + "severity") == "Severe"

    produce(bootstrap, topic, [message(ev(f"29C-{i:05d}", "crossed", now + i,
                                          event_id=f"c{i}", cargo=None)) for i in range(12)])
    poll(lambda: msg_types(w, seen) == ["Cancel"], 60, "a Cancel in the CAP feed")
    [cancel] = messages(w, seen)
    assert cancel.findtext(CAP + "references") == original
    assert cancel.findtext(CAP + "info/" + CAP + "urgency") == "Past"
    assert len(seen) >= 3  # Alert, Update and Cancel each fetched and valid
    # the Alert and Update the feed replaced stay fetchable while their incident is listed
    # (a reader that read the feed just before a change follows its links after it)
    for href, xml in seen.items():
        assert w.get(href[len(w.url):]) == (200, xml), href
    assert w.get("/api/v1/cap/gatewatch.nope.xml")[0] == 404
