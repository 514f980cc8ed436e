"""Hostile input never crashes the decoder: every message is either a valid event or a
rejection with one of the documented reasons, and the original bytes are kept."""

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.streams.codec import Decoder
from gatewatch.streams.records import REJECT_REASONS, CrossingEvent, Rejection
from tests.support import T0

DEC = Decoder(["huu-nghi", "tan-thanh"], max_bytes=4096)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children,
                                                                        max_size=4),
    max_leaves=20)
FIELDS = ["event_id", "gate_id", "vehicle_id", "type", "direction", "occurred_at", "cargo",
          "lane"]
hostile_docs = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=5),
    json_values | st.sampled_from(["huu-nghi", "queued", "crossed", "export",
                                   "2021-12-20T08:00:00+07:00", "9999-12-31T23:59:59Z",
                                   "0001-01-01T00:00:00Z", "x" * 100,
                                   "2021-12-01T07:04:59.999+07:00",  # within the skew
                                   "2021-11-30T23:59:60Z", "2021-12-01t00:00:00z",
                                   "huu-nghi\n"]),
    max_size=10)


def check(raw: bytes, key: bytes | None) -> None:
    res = DEC.decode(raw, key, T0)
    if isinstance(res, Rejection):
        assert res.reason in REJECT_REASONS and res.raw == raw and res.detail
        # a gate is named only when it is a configured one (bounded metric labels)
        if res.reason == "from_the_future":
            assert res.gate_id in ("huu-nghi", "tan-thanh") and key in (None, res.gate_id.encode())
        else:
            assert res.gate_id is None
    else:
        assert isinstance(res, CrossingEvent) and res.gate_id in ("huu-nghi", "tan-thanh")
        assert res.occurred_at_ms <= T0 + 300_000


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=600), st.none() | st.binary(max_size=20))
def test_random_bytes(raw, key):
    check(raw, key)


@settings(max_examples=1500, deadline=None)
@given(hostile_docs, st.sampled_from([None, b"huu-nghi", b"tan-thanh", b"x"]))
def test_hostile_json_documents(doc, key):
    check(orjson.dumps(doc), key)


def test_deep_and_huge_json():
    deep = b"[" * 100_000 + b"]" * 100_000
    check(deep, b"huu-nghi")
    huge = orjson.dumps({"event_id": "x" * 1_000_000})
    assert DEC.decode(huge, None, T0).reason == "too_large"  # type: ignore[union-attr]
    nested = b'{"a":' * 2000 + b"1" + b"}" * 2000
    check(nested, None)
    check(b'{"event_id": "e", "gate_id": 123456789012345678901234567890}', b"huu-nghi")
