"""The public gate feed's pure parts: rows from gate documents (no plate, stale flag),
the JSON Schema, CSV, ETag / If-None-Match, Last-Modified and the per-client bucket."""

from __future__ import annotations

import csv
import io

import jsonschema
import pytest

from gatewatch.core.congestion import GateAlerts, Thresholds
from gatewatch.core.signals import Counts, GateSignals
from gatewatch.gates import load_gates
from gatewatch.web.api import gate_doc
from gatewatch.web.public import (
    CSV_COLUMNS,
    TokenBucket,
    etag_of,
    last_modified,
    not_modified,
    public_doc,
    public_row,
    schema,
    to_csv,
    wants_csv,
)

GATES = load_gates()
T0 = 1_640_000_000_000


def doc(gate_id: str, has_data: bool = True, waiting: int = 7, last_ms: int = T0) -> dict:
    gate = GATES.get(gate_id)
    assert gate is not None
    s = GateSignals(gate_id, has_data, 3.0, waiting, 2, gate.yard_capacity,
                    Counts(crossings_export=9), last_event_ms=last_ms)
    ga = GateAlerts(gate_id, Thresholds(10, 20, 9, 18), 21600, 900)
    adv = {"export": {"advice": "slow_down"}}
    return gate_doc(gate, s, ga, adv)


def rows(**kw) -> list[dict]:
    return [public_row(g, doc(g.gate_id, **kw)) for g in GATES.gates]


def test_rows_validate_against_the_versioned_schema():
    body = public_doc(rows(), "2021-12-14T00:00:00.000Z")
    jsonschema.validate(body, schema(), format_checker=jsonschema.FormatChecker())
    hn = body["gates"][0]
    assert (hn["waiting"], hn["level"], hn["stale"], hn["lanes"]) == (9, "normal", False, 8)
    assert hn["advisory"] == {"export": "slow_down", "import": None}
    assert hn["expected_wait_seconds"] == 3600.0  # 9 waiting / 9 crossed an hour
    cn = body["gates"][3]
    assert cn["advisory"] == {"export": "slow_down"}  # coc-nam: exports only
    assert cn["open_hours"] == {"from": "00:00", "to": "24:00",
                                "timezone": "Asia/Ho_Chi_Minh"}
    stale = public_doc(rows(has_data=False), "2021-12-14T00:00:00.000Z")
    jsonschema.validate(stale, schema())
    assert all(r["stale"] and r["waiting"] is None and r["level"] == "no_data"
               for r in stale["gates"])


def test_a_row_from_a_malformed_peer_document_still_validates():
    gate = GATES.gates[0]
    jsonschema.validate(public_doc([public_row(gate, {})], "2021-12-14T00:00:00.000Z"),
                        schema())
    with pytest.raises(jsonschema.ValidationError):  # the schema can fail
        jsonschema.validate({"schema_version": 2, "generated_at": "x", "gates": []}, schema())


def test_no_vehicle_data_in_a_row():
    keys = set().union(*(r.keys() for r in rows()))
    assert keys == {"gate_id", "name", "name_en", "kind", "waiting", "expected_wait_seconds",
                    "level", "advisory", "accepts", "lanes", "open_hours", "last_update",
                    "stale"}


def test_csv_has_a_header_and_one_line_per_gate():
    text = to_csv(rows())
    table = list(csv.reader(io.StringIO(text)))
    assert tuple(table[0]) == CSV_COLUMNS and len(table) == 1 + len(GATES.gates)
    first = dict(zip(CSV_COLUMNS, table[1], strict=True))
    assert first["gate_id"] == "huu-nghi" and first["waiting"] == "9"
    assert first["advisory_export"] == "slow_down" and first["stale"] == "false"
    assert first["name"] == "Cửa khẩu Quốc tế Hữu Nghị" and text.endswith("\r\n")


def test_a_formula_looking_cell_is_defused():
    row = rows()[0] | {"name": "=HYPERLINK(\"x\")"}
    assert "'=HYPERLINK" in to_csv([row])


def test_etag_changes_with_the_content_only():
    a, b = rows(), rows()
    assert etag_of(a) == etag_of(b) and etag_of(a).startswith('"v1-')
    assert etag_of(rows(waiting=8)) != etag_of(a)
    tag = etag_of(a)
    assert not_modified(tag, tag) and not_modified(f'W/{tag}', tag)
    assert not_modified(f'"other", {tag}', tag) and not_modified("*", tag)
    assert not not_modified('"other"', tag) and not not_modified(None, tag)


def test_last_modified_is_the_newest_update():
    assert last_modified(rows(last_ms=T0), 0) == "Mon, 20 Dec 2021 11:33:20 GMT"
    assert last_modified([], T0) == "Mon, 20 Dec 2021 11:33:20 GMT"


@pytest.mark.parametrize("query,accept,expected", [
    ({}, None, False), ({}, "text/csv", True), ({}, "text/csv, application/json", False),
    ({"format": "csv"}, None, True), ({"format": "JSON"}, "text/csv", False),
    ({"format": "xml"}, None, None),
])
def test_format_from_query_or_accept(query, accept, expected):
    assert wants_csv(query, accept) is expected


def test_token_bucket_per_client_with_explicit_times():
    b = TokenBucket(rate_per_minute=3)
    assert [b.take("1.2.3.4", T0) for _ in range(3)] == [0, 0, 0]
    assert b.take("1.2.3.4", T0) == 20          # one token a 20 s
    assert b.take("5.6.7.8", T0) == 0           # another client has its own bucket
    assert b.take("1.2.3.4", T0 + 19_000) == 1
    assert b.take("1.2.3.4", T0 + 21_000) == 0   # refilled (a refused try costs nothing)
    small = TokenBucket(1, max_clients=2)
    for i in range(5):
        small.take(f"c{i}", T0)
    assert small.take("c0", T0) == 0             # forgotten: the table stays bounded
