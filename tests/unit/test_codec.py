import re
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.core.processor import SourceRecord
from gatewatch.streams.codec import Decoder, encode_event, format_ms, parse_timestamp_ms
from gatewatch.streams.records import CrossingEvent, Rejection
from tests.support import T0, ev, message, processor

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
        "huu-nghi", "12C04567", "queued", "perishable", "L2")  # normalised


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
    ({**GOOD, "occurred_at": "2031-01-01T00:00:00Z"}, b"huu-nghi", None, "from_the_future"),
    ({**GOOD, "event_id": "huu-nghi\n"}, b"huu-nghi", None, "invalid_value"),
    ({**GOOD, "vehicle_id": "huu-nghi\n"}, b"huu-nghi", None, "invalid_value"),
    ({**GOOD, "vehicle_id": "12C\x00-04567"}, b"huu-nghi", None, "invalid_value"),
    ({**GOOD, "lane": "L2\r\n"}, b"huu-nghi", None, "invalid_value"),
    ({**GOOD, "gate_id": "huu-nghi\n"}, b"huu-nghi\n", None, "unknown_gate"),
    ({**GOOD, "gate_id": "huu-nghi\n"}, None, None, "unknown_gate"),
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


def utc_ms(*fields: int, ms: int = 0) -> int:
    """Epoch milliseconds of a UTC date-time, computed by datetime (not the codec)."""
    delta = datetime(*fields, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return delta // timedelta(milliseconds=1) + ms


@pytest.mark.parametrize("text,expected", [
    # RFC 3339 section 5.8, its own examples
    ("1985-04-12T23:20:50.52Z", utc_ms(1985, 4, 12, 23, 20, 50, ms=520)),
    ("1996-12-19T16:39:57-08:00", utc_ms(1996, 12, 20, 0, 39, 57)),
    ("1990-12-31T23:59:60Z", utc_ms(1990, 12, 31, 23, 59, 59, ms=999)),
    ("1990-12-31T15:59:60-08:00", utc_ms(1990, 12, 31, 23, 59, 59, ms=999)),
    ("1937-01-01T12:00:27.87+00:20", utc_ms(1937, 1, 1, 11, 40, 27, ms=870)),
    # "T" and "Z" in lower case (5.6's note); a space for "T" (an application's choice)
    ("1985-04-12t23:20:50.52z", utc_ms(1985, 4, 12, 23, 20, 50, ms=520)),
    ("1985-04-12 23:20:50.52Z", utc_ms(1985, 4, 12, 23, 20, 50, ms=520)),
    # fractions are of a second, digits after the third truncated (never rounded up)
    ("2021-12-20T08:15:00.5+07:00", utc_ms(2021, 12, 20, 1, 15, 0, ms=500)),
    ("2021-12-20T08:15:00.05+07:00", utc_ms(2021, 12, 20, 1, 15, 0, ms=50)),
    ("2021-12-20T08:15:00.005+07:00", utc_ms(2021, 12, 20, 1, 15, 0, ms=5)),
    ("2021-12-20T08:15:00.9999999+07:00", utc_ms(2021, 12, 20, 1, 15, 0, ms=999)),
    ("2021-12-20T08:15:00.123456789012+07:00", utc_ms(2021, 12, 20, 1, 15, 0, ms=123)),
    # -00:00 is UTC with an unknown local offset (RFC 3339 4.3)
    ("2021-12-20T01:15:00-00:00", utc_ms(2021, 12, 20, 1, 15, 0)),
    ("2021-12-20T00:00:00+23:59", utc_ms(2021, 12, 19, 0, 1, 0)),
    # leap years and leap seconds at other month ends
    ("2020-02-29T00:00:00Z", utc_ms(2020, 2, 29)),
    ("2000-02-29T00:00:00Z", utc_ms(2000, 2, 29)),
    ("2016-12-31T23:59:60.5Z", utc_ms(2016, 12, 31, 23, 59, 59, ms=999)),
    ("2017-01-01T08:59:60+09:00", utc_ms(2016, 12, 31, 23, 59, 59, ms=999)),
    ("2015-06-30T23:59:60Z", utc_ms(2015, 6, 30, 23, 59, 59, ms=999)),
])
def test_rfc3339_date_times_are_read_exactly(text, expected):
    assert parse_timestamp_ms(text) == expected


@pytest.mark.parametrize("text", [
    "2021-W50-1T08:15:00+07:00",          # week date
    "2021-354T08:15:00+07:00",            # ordinal date
    "20211220T081500Z",                   # basic format
    "2021-12-20T08:15+07:00",             # no seconds
    "2021-12-20T08:15:00,5+07:00",        # comma fraction
    "2021-12-20T08:15:00.+07:00",         # empty fraction
    "2021-12-20T08:15:00+07",             # offset without minutes
    "2021-12-20T08:15:00+0700",           # offset without colon
    "2021-12-20T08:15:00+07:00:30",       # offset with seconds
    "2021-12-20T08:15:00",                # no offset
    "2021-12-20T08:15:00UTC",
    "2021-12-20T08:15:00+24:00",          # offset hour 24
    "2021-12-20T08:15:00+07:60",          # offset minute 60
    "2021-02-30T00:00:00Z",               # Feb 30
    "2021-02-29T00:00:00Z",               # not a leap year
    "1900-02-29T00:00:00Z",               # not a leap year (century)
    "2021-04-31T00:00:00Z",
    "2021-13-01T00:00:00Z",               # month 13
    "2021-00-01T00:00:00Z",
    "2021-12-00T00:00:00Z",
    "2021-12-20T24:00:00Z",               # hour 24
    "2021-12-20T23:60:00Z",
    "2021-12-20T23:59:61Z",
    "2021-12-20T12:30:60Z",               # a leap second only at 23:59:60 UTC ...
    "2021-12-30T23:59:60Z",               # ... on the last day of a month
    "1990-12-31T23:59:60+01:00",          # 22:59:60 UTC
    "2021-12-20T08:15:00Z\n",             # trailing newline
    " 2021-12-20T08:15:00Z",
    "2021-12-20T08:15:00Z ",
    "2021-12-20_08:15:00Z",
    "+2021-12-20T08:15:00Z",
    "２０２１-12-20T08:15:00Z",            # full-width digits
    "2021-12-20T08:15:00.٥Z",             # Arabic-Indic digit
    "2021-12-20",
    "",
])
def test_timestamps_that_are_not_rfc3339_are_refused(text):
    assert parse_timestamp_ms(text) is None


# strictly RFC 3339 texts of any instant and offset, checked against datetime
instants = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
offsets = st.integers(-(23 * 60 + 59), 23 * 60 + 59)


@settings(max_examples=1000, deadline=None)
@given(instants, offsets, st.sampled_from(["T", "t", " "]), st.integers(0, 6))
def test_any_instant_at_any_offset_reads_back_to_its_millisecond(local, offset, sep, digits):
    sign = "-" if offset < 0 else "+"
    zone = f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    frac = f".{local.microsecond:06d}"[:digits + 1] if digits else ""
    text = (f"{local.year:04d}-{local.month:02d}-{local.day:02d}{sep}{local.hour:02d}:"
            f"{local.minute:02d}:{local.second:02d}{frac}{zone}")
    utc = local.replace(tzinfo=UTC) - timedelta(minutes=offset)
    expected = ((utc - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1) * 1000
                + int(f"{local.microsecond:06d}"[:digits].ljust(3, "0")[:3]))
    assert parse_timestamp_ms(text) == expected
    if offset == 0:
        assert parse_timestamp_ms(text[:-6] + "Z") == expected


STRICT = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
                    r"(\.[0-9]+)?([Zz]|([+-])([0-9]{2}):([0-9]{2}))")


def reference_ms(text: str) -> int | None:
    """RFC 3339 section 5.6 written plainly (a regex, then datetime), to compare with."""
    m = STRICT.fullmatch(text)
    if m is None:
        return None
    y, mo, d, h, mi, sec = (int(g) for g in m.groups()[:6])
    frac, sign, oh, om = m[7], m[9], m[10], m[11]
    if h > 23 or mi > 59 or sec > 60 or (sign and (int(oh) > 23 or int(om) > 59)):
        return None
    try:
        local = datetime(y, mo, d, h, mi, min(sec, 59))
    except ValueError:
        return None
    offset = timedelta(hours=int(oh), minutes=int(om)) * (1 if sign == "+" else -1) \
        if sign else timedelta(0)
    utc = local - offset
    if sec == 60:
        end = utc + timedelta(seconds=1)
        if (end.hour, end.minute, end.second, end.day) != (0, 0, 0, 1):
            return None
        return (utc - datetime(1970, 1, 1)) // timedelta(milliseconds=1) + 999
    return ((utc - datetime(1970, 1, 1)) // timedelta(milliseconds=1)
            + (int(frac[1:4].ljust(3, "0")) if frac else 0))


@settings(max_examples=3000, deadline=None)
@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)),
       st.sampled_from(["Z", "z", "+07:00", "-08:00", "+00:20", "-00:00", "+23:59"]),
       st.sampled_from(["", ".5", ".52", ".123", ".123456", ".1234567890"]),
       st.lists(st.tuples(st.integers(0, 40), st.sampled_from(
           list("0123456789-:.+Zz Tt,W٥\n") + ["", "60", "23:59:60", "02-29", "02-30"])),
           max_size=3))
def test_edited_timestamps_are_read_like_the_rfc_says(instant, zone, frac, edits):
    """Valid date-times with random edits: the parser and the plain reference agree."""
    text = instant.strftime("%Y-%m-%dT%H:%M:%S") + frac + zone
    for pos, piece in edits:
        text = text[:pos] + piece + text[pos + 1:]
    assert parse_timestamp_ms(text) == reference_ms(text), text


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=40) | st.text(alphabet="0123456789-:.+ZzTt ,W٥", max_size=40))
def test_timestamp_parser_never_raises(text):
    res = parse_timestamp_ms(text)
    assert res is None or isinstance(res, int)


def at(ms: int, skew_ms: int = 300_000) -> CrossingEvent | Rejection:
    doc = {**GOOD, "occurred_at": format_ms(ms)}
    dec = Decoder(["huu-nghi", "tan-thanh"], max_bytes=2048, max_future_skew_ms=skew_ms)
    return dec.decode(orjson.dumps(doc), b"huu-nghi", NOW)


def test_events_ahead_of_the_clock_within_the_skew_are_accepted():
    for ahead_s in (0, 1, 299, 300):
        res = at(NOW + ahead_s * 1000)
        assert isinstance(res, CrossingEvent), (ahead_s, res)
        assert res.occurred_at_ms == NOW + ahead_s * 1000


def test_events_beyond_the_skew_are_from_the_future_and_name_their_gate():
    res = at(NOW + 301_000)
    assert isinstance(res, Rejection)
    assert (res.reason, res.gate_id, res.key) == ("from_the_future", "huu-nghi", b"huu-nghi")
    assert "301 s ahead" in res.detail
    res = at(NOW + 1, skew_ms=0)
    assert isinstance(res, Rejection) and res.reason == "from_the_future"
    assert isinstance(at(NOW + 3_600_000, skew_ms=3_600_000), CrossingEvent)


def test_a_camera_writing_local_time_with_z_is_seven_hours_ahead_and_rejected():
    # 08:00 in Lạng Sơn is 01:00Z; the camera writes "08:00Z", 7 h in the future
    wall = T0 + 3_600_000  # 2021-12-01T01:00:00Z
    dec = Decoder(["huu-nghi"])
    local = orjson.dumps({**GOOD, "occurred_at": "2021-12-01T08:00:00.250+07:00"})
    wrong = orjson.dumps({**GOOD, "occurred_at": "2021-12-01T08:00:00.250Z"})
    good = dec.decode(local, b"huu-nghi", wall)
    assert isinstance(good, CrossingEvent) and good.occurred_at_ms == wall + 250
    res = dec.decode(wrong, b"huu-nghi", wall)
    assert isinstance(res, Rejection)
    assert (res.reason, res.gate_id, res.raw) == ("from_the_future", "huu-nghi", wrong)


def test_only_rejections_of_a_configured_gate_carry_it():
    future = {**GOOD, "occurred_at": "2031-01-01T00:00:00Z"}
    assert decode({**future, "gate_id": "mong-cai"}, key=b"mong-cai").gate_id is None
    assert decode(future, key=b"tan-thanh").reason == "key_mismatch"
    assert decode({**GOOD, "type": "parked"}).gate_id is None
    assert decode({**GOOD, "occurred_at": "1999-12-31T23:59:59Z"}).gate_id is None


def test_the_processor_takes_the_skew_from_its_settings():
    p = processor(max_future_skew_seconds=10)

    def rec(t_ms: int) -> SourceRecord:
        key, value = message(ev("12C-04567", "queued", t_ms))
        return SourceRecord("gate.events", 0, t_ms, t_ms, key, value)

    fx = p.apply_batch([rec(T0 + 10_000), rec(T0 + 11_000)], T0)
    assert fx.processed == 1
    assert [(d.rejection.reason, d.rejection.gate_id) for d in fx.dead_letters] == [
        ("from_the_future", "huu-nghi")]
