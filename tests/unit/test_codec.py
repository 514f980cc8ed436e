import orjson
import pytest

from gatewatch.streams.codec import Decoder, encode_event, format_ms, parse_timestamp_ms
from gatewatch.streams.records import CrossingEvent, Rejection
from tests.support import T0

NOW = T0 + 3_600_000
GOOD = {"event_id": "e-1", "gate_id": "huu-nghi", "vehicle_id": "12C-04567", "type": "queued",
        "direction": "export", "occurred_at": "2021-12-01T07:00:00.500+07:00",
        "cargo": "perishable", "lane": "L2"}


def decode(doc: object, key: bytes | None = b"huu-nghi", raw: bytes | None = None):
    d = Decoder(["huu-nghi", "tan-thanh"], max_bytes=2048)
    return d.decode(raw if raw is not None else orjson.dumps(doc), key, NOW)


def test_valid_event_decodes_with_fraction_as_milliseconds():
    res = decode(GOOD)
    assert isinstance(res, CrossingEvent)
    assert res.occurred_at_ms == T0 + 500
    assert (res.gate_id, res.vehicle_id, res.type, res.cargo, res.lane) == (
        "huu-nghi", "12C-04567", "queued", "perishable", "L2")


def test_round_trip_through_encoder():
    res = decode(GOOD)
    assert isinstance(res, CrossingEvent)
    again = decode(None, raw=encode_event(res))
    assert again == res


@pytest.mark.parametrize("doc,key,raw,reason", [
    (None, b"huu-nghi", b"x" * 3000, "too_large"),
    (None, b"huu-nghi", b"\xff\xfe\x00", "not_utf8"),
    (None, b"huu-nghi", b'{"event_id": ', "not_json"),
    ([1, 2], b"huu-nghi", None, "not_object"),
    ({k: v for k, v in GOOD.items() if k != "vehicle_id"}, b"huu-nghi", None, "missing_field"),
    ({**GOOD, "vehicle_id": 12345}, b"huu-nghi", None, "wrong_type"),
    ({**GOOD, "type": "parked"}, b"huu-nghi", None, "invalid_value"),
    ({**GOOD, "direction": "sideways"}, b"huu-nghi", None, "invalid_value"),
    ({**GOOD, "event_id": "x" * 65}, b"huu-nghi", None, "invalid_value"),
    ({**GOOD, "cargo": "gold"}, b"huu-nghi", None, "invalid_value"),
    ({**GOOD, "occurred_at": "yesterday"}, b"huu-nghi", None, "bad_timestamp"),
    ({**GOOD, "occurred_at": "2021-12-01T07:00:00"}, b"huu-nghi", None, "bad_timestamp"),
    ({**GOOD, "occurred_at": "1970-01-01T00:00:00Z"}, b"huu-nghi", None,
     "timestamp_out_of_range"),
    ({**GOOD, "occurred_at": "2031-01-01T00:00:00Z"}, b"huu-nghi", None,
     "timestamp_out_of_range"),
    ({**GOOD, "gate_id": "mong-cai"}, b"mong-cai", None, "unknown_gate"),
    (GOOD, b"tan-thanh", None, "key_mismatch"),
])
def test_rejections_carry_reason_and_original_bytes(doc, key, raw, reason):
    res = decode(doc, key=key, raw=raw)
    assert isinstance(res, Rejection), res
    assert res.reason == reason
    assert res.raw == (raw if raw is not None else orjson.dumps(doc))
    assert res.key == key
    assert res.detail


def test_null_value_is_rejected_not_raised():
    res = Decoder(["huu-nghi"]).decode(None, b"huu-nghi", NOW)
    assert isinstance(res, Rejection) and res.reason == "not_json"


def test_missing_key_is_accepted():
    assert isinstance(decode(GOOD, key=None), CrossingEvent)


def test_timestamp_helpers():
    assert parse_timestamp_ms("2021-12-01T00:00:00Z") == T0
    assert parse_timestamp_ms("2021-12-01T07:00:00.123456+07:00") == T0 + 123
    assert parse_timestamp_ms("2021-12-01") is None
    assert format_ms(T0 + 5) == "2021-12-01T00:00:00.005Z"
