"""The CAP feed over real alert records (fired, escalated, deescalated, resolved, made by
the Processor with explicit times and encoded by the worker's own ``encode_alert``):
every message is validated against the official OASIS CAP 1.2 schema, and the Atom index
feed's structure is checked."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET  # noqa: S405 - parsing our own output

import orjson
import pytest

from gatewatch.alerts.cap import (
    ATOM_NS,
    CAP_NS,
    CAP_TYPE,
    KEEP_RESOLVED_MS,
    KEEP_SUPERSEDED,
    Notice,
    alert_notice,
    alert_order,
    atom_feed,
    cap_entries,
    cap_message,
    find_message,
    incident_records,
)
from gatewatch.alerts.evaluator import encode_alert
from gatewatch.core.processor import Processor, SourceRecord
from gatewatch.errors import ConfigError
from gatewatch.gates import load_gates, parse_gates
from gatewatch.settings import Settings
from gatewatch.streams.codec import encode_event
from gatewatch.streams.records import CrossingEvent
from tests.support import MIN, T0, cap_errors, ev

SENDER = "gatewatch@langson.example"
C = f"{{{CAP_NS}}}"
A = f"{{{ATOM_NS}}}"
GATES = load_gates()  # the bundled Lạng Sơn gates, with their coordinates
_offsets = iter(range(10**9))


def lifecycle() -> list[dict[str, Any]]:
    """Hữu Nghị (bundled thresholds 600/1100) fires warning, escalates to critical, comes
    back to warning and resolves; the gate.alerts records of each change, in order.
    The later 500 trucks cross before the first 700 (last in, first out): reconciliation
    would rightly find the 700 overtaken past any gate's limit, so it is off here."""
    p = Processor(GATES, Settings(reconcile=False))
    out: list[dict[str, Any]] = []

    def step(events: list[CrossingEvent], now: int) -> None:
        fx = p.apply_batch([SourceRecord("gate.events", 0, next(_offsets), e.occurred_at_ms,
                                         e.gate_id.encode(), encode_event(e))
                            for e in events], now)
        for c in fx.alerts + p.tick(now).alerts:
            gate = GATES.get(c.alert.gate_id)
            assert gate is not None
            out.append(orjson.loads(encode_alert(c, gate, "http://127.0.0.1:6066/runbook")))

    t = T0
    for batch, crossed, minutes in ((range(0, 700), False, 3), (range(700, 1200), False, 3),
                                    (range(700, 1200), True, 8), (range(0, 700), True, 8)):
        step([ev(f"V{i}", "crossed" if crossed else "queued", t) for i in batch], t)
        for k in range(1, minutes + 1):
            step([], t + k * MIN)
        t += (minutes + 2) * MIN
    return out


RECORDS = lifecycle()


def parse(doc: bytes) -> ET.Element:
    return ET.fromstring(doc)  # noqa: S314 - our own output


def test_the_lifecycle_gives_the_four_changes():
    assert [(r["change"], r["severity"]) for r in RECORDS] == [
        ("fired", "warning"), ("escalated", "critical"), ("deescalated", "warning"),
        ("resolved", "warning")]


@pytest.mark.parametrize("upto", range(1, 5))
def test_every_message_is_valid_cap_1_2_with_the_right_type_and_references(upto):
    seen = RECORDS[:upto]
    now = T0 + 60 * MIN
    [n] = cap_entries(seen, gates=GATES, now_ms=now)
    xml = cap_message(n, SENDER)
    assert cap_errors(xml) == []
    root = parse(xml)
    msg_type = {"fired": "Alert", "escalated": "Update", "deescalated": "Update",
                "resolved": "Cancel"}[seen[-1]["change"]]
    assert root.findtext(C + "msgType") == msg_type
    assert root.findtext(C + "status") == "Actual" and root.findtext(C + "scope") == "Public"
    assert root.findtext(C + "sender") == SENDER
    # the original Alert, as the first change published it
    [first] = cap_entries(RECORDS[:1], gates=GATES, now_ms=now)
    original = parse(cap_message(first, SENDER))
    ref = (f"{SENDER},{original.findtext(C + 'identifier')},"
           f"{original.findtext(C + 'sent')}")
    if msg_type == "Alert":
        assert root.find(C + "references") is None
    else:
        assert root.findtext(C + "references") == ref
        assert root.findtext(C + "identifier") != original.findtext(C + "identifier")


def test_identifiers_are_stable_per_change_and_distinct_across_changes():
    ids = []
    for upto in range(1, 5):
        [a] = cap_entries(RECORDS[:upto], gates=GATES, now_ms=T0 + 60 * MIN)
        [b] = cap_entries(RECORDS[:upto], gates=GATES, now_ms=T0 + 90 * MIN)
        assert a.identifier == b.identifier and cap_message(a, SENDER) == cap_message(b, SENDER)
        ids.append(a.identifier)
    assert len(set(ids)) == 4
    assert all(i.startswith("gatewatch.huu-nghi.congestion.20211201T") for i in ids)


def test_info_blocks_in_vietnamese_and_english_with_mapping_and_area():
    for upto, expect in ((1, ("Expected", "Moderate", "Observed")),
                         (2, ("Immediate", "Severe", "Observed")),
                         (4, ("Past", "Minor", "Observed"))):
        [n] = cap_entries(RECORDS[:upto], gates=GATES, now_ms=T0 + 60 * MIN)
        infos = parse(cap_message(n, SENDER)).findall(C + "info")
        assert [i.findtext(C + "language") for i in infos] == ["vi-VN", "en-US"]
        for info, lang in zip(infos, ("vi", "en"), strict=True):
            assert (info.findtext(C + "urgency"), info.findtext(C + "severity"),
                    info.findtext(C + "certainty")) == expect
            assert info.findtext(C + "category") == "Transport"
            assert info.findtext(C + "description") == RECORDS[upto - 1]["message"][lang]
            area = info.find(C + "area")
            assert area is not None
            gate = GATES.get("huu-nghi")
            assert gate is not None
            assert area.findtext(C + "areaDesc") == (gate.name if lang == "vi" else gate.name_en)
            assert area.findtext(C + "circle") == f"{gate.lat:.4f},{gate.lon:.4f} 3.0"
    vi = infos[0].findtext(C + "headline") or ""
    assert "Hữu Nghị" in vi and "ĐÃ HẾT" in vi


def test_a_cancel_stays_24_hours_then_leaves_the_feed():
    resolved_ms = T0 + 25 * MIN
    assert RECORDS[-1]["resolved_at"] == "2021-12-01T00:25:00.000Z"
    assert len(cap_entries(RECORDS, gates=GATES, now_ms=resolved_ms + KEEP_RESOLVED_MS)) == 1
    assert cap_entries(RECORDS, gates=GATES, now_ms=resolved_ms + KEEP_RESOLVED_MS + 1) == []


def test_no_data_alerts_stay_out_and_records_from_several_workers_merge():
    no_data = dict(RECORDS[0], alert_id="huu-nghi:no_data", kind="no_data")
    # a stale firing copy (another worker's view at its start) loses to the resolve
    merged = cap_entries([RECORDS[3], RECORDS[0], no_data, RECORDS[1]], gates=GATES,
                         now_ms=T0 + 60 * MIN)
    assert [n.msg_type for n in merged] == ["Cancel"]


def kept(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a worker keeps of ``records`` (read or written in any order, some twice)."""
    return [d for docs in incident_records(records, id_field="alert_id", order=alert_order
                                           ).values() for d in docs]


def test_the_messages_the_feed_replaced_stay_fetchable_while_their_incident_is_listed():
    """A reader that read the feed at the Update and fetches its link after the resolve
    (the race a CI run hit) still gets the Update, and the Alert before it; another
    incident's, or one that has left the feed, is not found."""
    now = T0 + 60 * MIN
    records = kept([RECORDS[3], RECORDS[1], RECORDS[0], RECORDS[2], RECORDS[1]])
    assert [r["change"] for r in records] == ["fired", "escalated", "deescalated", "resolved"]
    listed = cap_entries(records, gates=GATES, now_ms=now)
    assert [n.msg_type for n in listed] == ["Cancel"]
    every = [alert_notice(r, GATES) for r in records]
    for r in RECORDS:
        n = alert_notice(r, GATES)
        assert n is not None and find_message(n.identifier, listed, every) == n
    # without the replaced records (as before the fix) the Update is not found
    update = next(n for n in every if n is not None and n.msg_type == "Update")
    assert find_message(update.identifier, listed, []) is None
    # a Cancel older than 24 h has left the feed, and its incident's messages with it
    late = T0 + 25 * MIN + KEEP_RESOLVED_MS + 1
    assert find_message(update.identifier, cap_entries(records, gates=GATES, now_ms=late),
                        every) is None
    assert find_message("gatewatch.huu-nghi.congestion.nope", listed, every) is None


def test_a_new_incident_replaces_the_records_kept_of_the_last_and_a_flapping_one_is_bounded():
    later = [dict(r, started_at="2021-12-02T00:00:00.000Z",
                  updated_at=f"2021-12-02T00:{i // 60:02d}:{i % 60:02d}.000Z",
                  change="escalated" if i % 2 else "deescalated")
             for i, r in enumerate([RECORDS[1]] * (KEEP_SUPERSEDED + 10))]
    records = kept([*RECORDS, *later])
    assert len(records) == KEEP_SUPERSEDED + 1
    assert records == later[-KEEP_SUPERSEDED - 1:]  # the latest incident's, newest kept


def test_the_atom_index_feed_lists_one_entry_per_message_linking_to_it():
    other = dict(RECORDS[1], alert_id="chi-ma:congestion", gate_id="chi-ma")
    notices = cap_entries([RECORDS[2], other], gates=GATES, now_ms=T0 + 60 * MIN)
    feed = parse(atom_feed(notices, base_url="http://127.0.0.1:6066/", sender=SENDER,
                           now_ms=T0 + 60 * MIN))
    assert feed.tag == A + "feed"
    for tag in ("id", "title", "updated", "author"):
        assert feed.find(A + tag) is not None, tag
    entries = feed.findall(A + "entry")
    assert len(entries) == 2
    for entry, n in zip(entries, notices, strict=True):
        for tag in ("id", "title", "updated", "summary"):
            assert (entry.findtext(A + tag) or "").strip(), tag
        link = entry.find(A + "link")
        assert link is not None and link.get("type") == CAP_TYPE
        assert link.get("href") == f"http://127.0.0.1:6066/api/v1/cap/{n.identifier}.xml"
    assert feed.findtext(A + "updated") == max(r["updated_at"] for r in (RECORDS[2], other))


def test_advisories_join_the_feed_as_notices():
    advisory = Notice(key="tan-thanh:advisory:export", gate_id="tan-thanh", change="fired",
                      started_ms=T0, sent_ms=T0, event={"vi": "Khuyến cáo", "en": "Advisory"},
                      headline={"vi": "Tạm dừng gửi hàng", "en": "Hold shipments"},
                      description={"vi": "...", "en": "..."},
                      area={"vi": "Tân Thanh", "en": "Tan Thanh"},
                      cap=("Immediate", "Severe", "Likely", "Avoid"), lat=21.9, lon=106.6)
    notices = cap_entries(RECORDS[:1], [advisory], gates=GATES, now_ms=T0 + 60 * MIN)
    assert advisory in notices and len(notices) == 2
    assert all(cap_errors(cap_message(n, SENDER)) == [] for n in notices)


def test_the_schema_check_can_fail():
    [n] = cap_entries(RECORDS[:1], gates=GATES, now_ms=T0 + 60 * MIN)
    xml = cap_message(n, SENDER)
    bad_time = xml.replace(b"-00:00</sent>", b"Z</sent>", 1)
    assert bad_time != xml and cap_errors(bad_time)
    bad_type = xml.replace(b"<msgType>Alert<", b"<msgType>Warning<")
    assert bad_type != xml and cap_errors(bad_type)


_GATE = """version: 1
gates:
  - id: g
    name: G
    yard_capacity: 10
    thresholds: {warning: 2, critical: 5}
"""


@pytest.mark.parametrize(("extra", "key", "reason"), [
    ("    lat: 91\n    lon: 106\n", "gates[0].lat", "must be in [-90, 90]"),
    ("    lat: 21\n    lon: 181\n", "gates[0].lon", "must be in [-180, 180]"),
    ("    lat: 21\n", "gates[0].lon", "give both or neither"),
    ("    lon: '106'\n    lat: 21\n", "gates[0].lon", "must be a number"),
])
def test_gate_coordinates_are_validated(extra, key, reason):
    with pytest.raises(ConfigError) as err:
        parse_gates(_GATE + extra, "g.yaml")
    assert key in str(err.value) and reason in str(err.value) and "g.yaml" in str(err.value)


def test_every_bundled_road_gate_has_coordinates_in_lang_son():
    for gate in GATES.gates:
        assert gate.lat is not None and gate.lon is not None
        assert 21.5 < gate.lat < 22.2 and 106.3 < gate.lon < 107.3, gate.gate_id
