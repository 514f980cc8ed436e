"""Advisory records: what the worker publishes on ``gate.advisories``, with their texts.

The decisions are made in the pure core (:mod:`gatewatch.core.advisories`, driven by
:meth:`gatewatch.core.processor.Processor.tick`). Each
:class:`~gatewatch.core.advisories.AdvisoryChange` becomes one JSON record, key = the
advisory id ``gate_id:direction`` (the topic is compacted: each advisory keeps its
latest record):

=========================  ============================================================
``advisory_id``            ``gate_id:direction``
``gate_id``, ``gate_name``, ``gate_name_en``, ``direction`` (``export`` | ``import``)
``advice``                 ``normal`` | ``slow_down`` | ``hold_shipments``
``previous``               the advice before this change
``change``                 ``raised`` | ``lowered`` | ``cleared``
``since``                  when the advice took effect (RFC 3339 UTC)
``started_at``             when the advice last left ``normal`` (the incident's start)
``figures``                ``backlog``, ``clearances_per_day``, ``arrivals_per_day``,
                           ``days_to_drain`` (null: does not drain),
                           ``expected_wait_seconds`` (null: unknown),
                           ``keeps_seconds``, ``perishable``,
                           ``exceeds_keep_time``, ``yard_full_chance``, ``source``
                           (``forecast`` | ``last_hour``)
``message``                ``{"vi": ..., "en": ...}``
=========================  ============================================================

``gatewatch notify`` pushes them to Alertmanager as ``alertname=GateShipmentAdvisory``
(resolved when the advice is back to ``normal``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import orjson

from gatewatch.alerts.cap import KEEP_RESOLVED_MS, Notice, latest_by
from gatewatch.alerts.texts import format_duration
from gatewatch.core.advisories import ADVICE, Advisory, AdvisoryChange, AdvisoryFigures
from gatewatch.gates import GateConfig, GateSet
from gatewatch.streams.codec import format_ms, parse_timestamp_ms

__all__ = ["ADVICE_TEXT", "CAP_ADVICE", "SEVERITY", "TEMPLATES", "advisory_doc",
           "advisory_notices", "advisory_order", "advisory_states", "as_alert_record",
           "encode_advisory", "latest_advisories", "render_advisory"]

ADVICE_TEXT: Final = {
    "vi": {"normal": "BÌNH THƯỜNG", "slow_down": "GIẢM TỐC ĐỘ GỬI HÀNG",
           "hold_shipments": "TẠM DỪNG GỬI HÀNG"},
    "en": {"normal": "NORMAL", "slow_down": "SLOW DOWN", "hold_shipments": "HOLD SHIPMENTS"},
}
_DIRECTION: Final = {"vi": {"export": "xuất khẩu", "import": "nhập khẩu"},
                     "en": {"export": "export", "import": "import"}}

#: advice -> language -> template; fields: gate, direction, advice, backlog, clear,
#: arrive, drain, wait, keeps
TEMPLATES: Final[dict[str, dict[str, str]]] = {
    "hold_shipments": {
        "vi": "[{advice}] {gate} ({direction}): {backlog} xe đang chờ, thông quan ~{clear} "
              "xe/ngày, đến ~{arrive} xe/ngày. Xe gửi bây giờ sẽ chờ {wait}, lâu hơn thời "
              "gian hàng giữ được ({keeps}). Đề nghị tạm dừng gửi hàng.",
        "en": "[{advice}] {gate} ({direction}): {backlog} vehicles waiting, ~{clear} "
              "cleared/day, ~{arrive} arriving/day. A truck sent now would wait {wait}, "
              "longer than its cargo keeps ({keeps}). Hold shipments.",
    },
    "slow_down": {
        "vi": "[{advice}] {gate} ({direction}): {backlog} xe đang chờ, thông quan ~{clear} "
              "xe/ngày, đến ~{arrive} xe/ngày; giải toả hết sau {drain}. Chờ dự kiến {wait}. "
              "Đề nghị giảm và giãn thời gian gửi hàng.",
        "en": "[{advice}] {gate} ({direction}): {backlog} vehicles waiting, ~{clear} "
              "cleared/day, ~{arrive} arriving/day; drains in {drain}. Expected wait {wait}. "
              "Send fewer trucks and stagger departures.",
    },
    "normal": {
        "vi": "[{advice}] {gate} ({direction}): có thể gửi hàng bình thường ({backlog} xe "
              "đang chờ, chờ dự kiến {wait}).",
        "en": "[{advice}] {gate} ({direction}): shipments can go as planned ({backlog} "
              "vehicles waiting, expected wait {wait}).",
    },
}


#: the Alertmanager severity of an advice (``normal`` resolves the alert)
SEVERITY: Final = {"slow_down": "warning", "hold_shipments": "critical"}


def as_alert_record(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """A ``gate.advisories`` record in the shape of a ``gate.alerts`` record, for
    ``gatewatch notify`` (kind ``shipment_advisory``, id ``advisory:<gate>:<direction>``,
    ``normal`` = resolved); None if it is not an advisory record."""
    try:
        advice, previous = str(doc["advice"]), str(doc.get("previous", "normal"))
        resolved = advice == "normal"
        figures = doc.get("figures") or {}
        return {
            "alert_id": f"advisory:{doc['advisory_id']}", "gate_id": str(doc["gate_id"]),
            "gate_name": doc.get("gate_name", ""), "kind": "shipment_advisory",
            "state": "resolved" if resolved else "firing",
            "severity": SEVERITY.get(previous if resolved else advice, "warning"),
            "direction": doc.get("direction"), "advice": advice,
            "started_at": doc["since"], "updated_at": doc.get("updated_at", doc["since"]),
            "resolved_at": doc["since"] if resolved else None,
            "waiting": figures.get("backlog"),
            "estimated_wait_seconds": figures.get("expected_wait_seconds"),
            "message": doc.get("message") or {}, "runbook_url": "",
        }
    except (KeyError, TypeError):
        return None


def render_advisory(adv: Advisory, gate: GateConfig) -> dict[str, str]:
    """The advisory's text in both languages."""
    f = adv.figures
    out: dict[str, str] = {}
    for lang in ("vi", "en"):
        never = "không giải toả được" if lang == "vi" else "never at this rate"
        out[lang] = TEMPLATES[adv.advice][lang].format(
            advice=ADVICE_TEXT[lang][adv.advice],
            gate=gate.name if lang == "vi" else gate.name_en,
            direction=_DIRECTION[lang].get(adv.direction, adv.direction),
            backlog=f.backlog, clear=round(f.clearances_per_day),
            arrive=round(f.arrivals_per_day),
            drain=never if f.days_to_drain is None
            else format_duration(f.days_to_drain * 86_400, lang),
            wait=format_duration(f.expected_wait_seconds, lang),
            keeps=format_duration(f.keeps_seconds, lang))
    return out


def advisory_doc(adv: Advisory, gate: GateConfig) -> dict[str, Any]:
    """An advisory as the API and the records show it."""
    f = adv.figures
    return {
        "advisory_id": adv.advisory_id, "gate_id": adv.gate_id, "gate_name": gate.name,
        "gate_name_en": gate.name_en, "direction": adv.direction, "advice": adv.advice,
        "since": format_ms(adv.since_ms), "updated_at": format_ms(adv.updated_ms),
        "started_at": format_ms(adv.started_ms),
        "figures": {
            "backlog": f.backlog, "clearances_per_day": f.clearances_per_day,
            "arrivals_per_day": f.arrivals_per_day, "days_to_drain": f.days_to_drain,
            "expected_wait_seconds": f.expected_wait_seconds,
            "keeps_seconds": f.keeps_seconds, "perishable": f.perishable,
            "exceeds_keep_time": f.exceeds_keep_time,
            "yard_full_chance": f.yard_full_chance, "source": f.source},
        "message": render_advisory(adv, gate),
    }


def encode_advisory(change: AdvisoryChange, gate: GateConfig) -> bytes:
    """The ``gate.advisories`` record of one advisory change."""
    return orjson.dumps(advisory_doc(change.advisory, gate)
                        | {"previous": change.previous, "change": change.change})


#: advice (or resolved) → CAP (urgency, severity, certainty, responseType)
CAP_ADVICE: Final = {"slow_down": ("Expected", "Moderate", "Likely", "Prepare"),
                     "hold_shipments": ("Immediate", "Severe", "Likely", "Avoid"),
                     "resolved": ("Past", "Minor", "Observed", "AllClear")}
_EVENT: Final = {"vi": "Khuyến cáo gửi hàng", "en": "Shipment advisory"}


def advisory_order(doc: Mapping[str, Any]) -> tuple[str, str]:
    """Where a ``gate.advisories`` record stands among its advisory's records: by
    ``since``, then ``updated_at``."""
    return str(doc.get("since", "")), str(doc.get("updated_at", ""))


def latest_advisories(records: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The latest ``gate.advisories`` record per advisory id (:func:`advisory_order`; on
    a tie the later one read): what several workers' records and a restart's read-back
    merge into. Records without an advisory id are skipped."""
    return latest_by(records, id_field="advisory_id", order=advisory_order)


def _number(value: Any, default: float | None) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else default


def advisory_states(records: Iterable[Mapping[str, Any]]) -> list[Advisory]:
    """The advisories in force according to published records (the latest per advisory
    id, :func:`latest_advisories`; cleared ones and malformed records are left out),
    for a worker to take back after a restart
    (:meth:`gatewatch.core.processor.Processor.restore_advisories`)."""
    out = []
    for aid, r in sorted(latest_advisories(records).items()):
        advice, gate_id, direction = r.get("advice"), r.get("gate_id"), r.get("direction")
        since = parse_timestamp_ms(str(r.get("since")))
        if advice not in ADVICE or advice == "normal" or not isinstance(gate_id, str) \
                or direction not in ("export", "import") or since is None:
            continue
        f = r.get("figures")
        f = f if isinstance(f, Mapping) else {}
        figures = AdvisoryFigures(
            int(_number(f.get("backlog"), 0) or 0),
            _number(f.get("clearances_per_day"), 0.0) or 0.0,
            _number(f.get("arrivals_per_day"), 0.0) or 0.0,
            _number(f.get("days_to_drain"), None),
            _number(f.get("expected_wait_seconds"), None),
            _number(f.get("keeps_seconds"), 0.0) or 0.0,
            bool(f.get("perishable", False)),
            _number(f.get("yard_full_chance"), 0.0) or 0.0,
            str(f.get("source", "forecast")))
        updated = parse_timestamp_ms(str(r.get("updated_at"))) or since
        started = parse_timestamp_ms(str(r.get("started_at"))) or since
        out.append(Advisory(aid, gate_id, str(direction), advice, figures, since, updated,
                            started))
    return out


def advisory_notices(records: Iterable[Mapping[str, Any]], gates: GateSet, now_ms: int, *,
                     every: bool = False) -> list[Notice]:
    """The CAP notices of the latest ``gate.advisories`` record per advisory (for
    :func:`gatewatch.alerts.cap.cap_entries`): raised from normal → Alert, raised or
    lowered → Update, cleared → Cancel (kept 24 h); malformed records are skipped.
    ``every``: one per record, not only the latest (the messages the feed has replaced,
    for :func:`gatewatch.alerts.cap.find_message`)."""
    out = []
    chosen = [(r["advisory_id"], r) for r in records if isinstance(r.get("advisory_id"), str)
              ] if every else sorted(latest_advisories(records).items())
    for aid, r in chosen:
        gate = gates.get(str(r.get("gate_id")))
        started = parse_timestamp_ms(str(r.get("started_at")))
        sent = parse_timestamp_ms(str(r.get("since")))
        advice, change = r.get("advice"), r.get("change")
        if gate is None or started is None or sent is None or advice not in ADVICE_TEXT["en"]:
            continue
        if change == "cleared":
            kind = "resolved"
            if now_ms - sent > KEEP_RESOLVED_MS:
                continue
        elif change == "raised":
            kind = "fired" if r.get("previous") == "normal" else "escalated"
        elif change == "lowered":
            kind = "deescalated"
        else:
            continue
        names = {"vi": gate.name, "en": gate.name_en}
        shown = str(r.get("previous")) if kind == "resolved" else str(advice)
        msg = r.get("message") or {}
        out.append(Notice(
            key=aid.replace(":", ":advisory:", 1), gate_id=gate.gate_id, change=kind,
            started_ms=started, sent_ms=started if kind == "fired" else sent,
            event=_EVENT, description={lang: str(msg.get(lang, "")) for lang in ("vi", "en")},
            headline={lang: f"{ADVICE_TEXT[lang].get(shown, shown)}: {names[lang]} "
                            f"({_DIRECTION[lang].get(str(r.get('direction')), '')})"
                      + (" — " + ("đã hết" if lang == "vi" else "cleared")
                         if kind == "resolved" else "") for lang in ("vi", "en")},
            area=names, cap=CAP_ADVICE["resolved" if kind == "resolved" else str(advice)],
            parameters=(("gatewatch:kind", "shipment_advisory"),
                        ("gatewatch:advice", str(advice)),
                        ("gatewatch:direction", str(r.get("direction")))),
            expires_ms=sent + KEEP_RESOLVED_MS if kind == "resolved" else None,
            lat=gate.lat, lon=gate.lon))
    return out
