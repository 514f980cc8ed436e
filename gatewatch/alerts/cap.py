"""Alerts as Common Alerting Protocol 1.2 messages, and the Atom index feed that lists them.

``GET /api/v1/cap.atom`` is an *index* feed, as public CAP feeds publish them (the US
National Weather Service, MeteoAlarm, the OASIS "CAP feeds" note): one Atom entry per
message, whose ``link rel="alternate" type="application/cap+xml"`` points to the full CAP
message at ``/api/v1/cap/{identifier}.xml``. Each message carries two ``info`` blocks,
``vi-VN`` and ``en-US``, with the texts of :mod:`gatewatch.alerts.texts`.

Every message is built from the *latest* ``gate.alerts`` record of an alert (the topic
keeps one per alert id), so it needs no other history:

- ``fired`` → ``msgType`` ``Alert``, identifier ``gatewatch.<gate>.<kind>.<started>``,
  ``sent`` = the alert's start;
- ``escalated`` / ``deescalated`` → ``Update``, identifier ``<original>.<change>.<updated>``;
- ``resolved`` → ``Cancel``, kept in the feed for :data:`KEEP_RESOLVED_MS` (24 h).

The feed lists each incident's latest message; the messages it replaced stay fetchable
while their incident is listed (:func:`find_message`, from the records
:func:`incident_records` keeps), so a reader that read the feed just before a change
still gets the message the feed linked to.

``Update`` and ``Cancel`` name the original ``Alert`` in ``references``
(``sender,identifier,sent``), which they can always rebuild: its identifier and ``sent``
come from the alert id and start time every record carries. An identifier is stable for
one change of one alert, so a reader that polls the feed sees each message once.

Levels → CAP (``urgency`` / ``severity`` / ``certainty``):

======================== =========== ======== ========= ==============
gatewatch                urgency     severity certainty responseType
======================== =========== ======== ========= ==============
congestion warning       Expected    Moderate Observed  Monitor
congestion critical      Immediate   Severe   Observed  Avoid
perishable_wait          Immediate   Moderate Observed  Prepare
resolved (Cancel)        Past        Minor    Observed  AllClear
======================== =========== ======== ========= ==============

``no_data`` alerts (a gate's sensors or feed are silent) are for the operators, not the
public, and stay out of the feed. Advisories join the feed through the ``advisories``
argument of :func:`cap_entries`: :class:`Notice` objects built from their records.

Times are written as CAP wants them: seconds, with the offset, UTC as ``-00:00``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from typing import Any, Final
from xml.etree import ElementTree as ET  # noqa: S405 - building XML, never parsing it

import orjson

from gatewatch.alerts.texts import EVENT_NAMES, HEADLINE
from gatewatch.gates import GateSet
from gatewatch.streams.codec import format_ms, parse_timestamp_ms

__all__ = ["ATOM_NS", "CAP_MAPPING", "CAP_NS", "CAP_TYPE", "KEEP_RESOLVED_MS",
           "KEEP_SUPERSEDED", "Notice", "alert_notice", "alert_order", "atom_feed",
           "cap_entries", "cap_message", "cap_time", "etag", "find_message",
           "incident_records", "latest_by", "latest_records"]

CAP_NS: Final = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS: Final = "http://www.w3.org/2005/Atom"
CAP_TYPE: Final = "application/cap+xml"
#: a resolved alert's Cancel message stays in the feed this long after resolving
KEEP_RESOLVED_MS: Final = 24 * 3600 * 1000
#: the replaced messages of one incident kept fetchable (a flapping alert's oldest go first)
KEEP_SUPERSEDED: Final = 50
#: (kind, severity or "resolved") → (urgency, severity, certainty, responseType)
CAP_MAPPING: Final[dict[tuple[str, str], tuple[str, str, str, str]]] = {
    ("congestion", "warning"): ("Expected", "Moderate", "Observed", "Monitor"),
    ("congestion", "critical"): ("Immediate", "Severe", "Observed", "Avoid"),
    ("perishable_wait", "warning"): ("Immediate", "Moderate", "Observed", "Prepare"),
    ("perishable_wait", "critical"): ("Immediate", "Severe", "Observed", "Prepare"),
}
_CANCEL: Final = ("Past", "Minor", "Observed", "AllClear")
_MSG_TYPE: Final = {"fired": "Alert", "escalated": "Update", "deescalated": "Update",
                    "resolved": "Cancel"}
_LANGS: Final = (("vi", "vi-VN"), ("en", "en-US"))
#: radius (km) of the CAP circle around a gate: its yard and the queue on the road to it
AREA_RADIUS_KM: Final = 3.0


@dataclass(frozen=True, slots=True)
class Notice:
    """What one CAP message says, whatever record it came from (an alert or, later, an
    advisory). ``key`` names the incident (``<gate>:<kind>``); texts map ``vi``/``en``."""

    key: str
    gate_id: str
    change: str
    """``fired`` (→ Alert), ``escalated``/``deescalated`` (→ Update), ``resolved`` (→ Cancel)"""
    started_ms: int
    sent_ms: int
    event: Mapping[str, str]
    headline: Mapping[str, str]
    description: Mapping[str, str]
    area: Mapping[str, str]
    """the area's description per language (the gate's name)"""
    cap: tuple[str, str, str, str]
    """(urgency, severity, certainty, responseType)"""
    web: str = ""
    parameters: tuple[tuple[str, str], ...] = ()
    expires_ms: int | None = None
    lat: float | None = None
    lon: float | None = None

    @property
    def msg_type(self) -> str:
        return _MSG_TYPE[self.change]

    @property
    def original_identifier(self) -> str:
        return "gatewatch." + self.key.replace(":", ".") + "." + _stamp(self.started_ms)

    @property
    def identifier(self) -> str:
        if self.change == "fired":
            return self.original_identifier
        return f"{self.original_identifier}.{self.change}.{_stamp(self.sent_ms)}"


def _stamp(ms: int) -> str:
    """``20211220T080000123Z``: a time in an identifier (no ``:``, to the millisecond)."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y%m%dT%H%M%S") + f"{ms % 1000:03d}Z"


def cap_time(ms: int) -> str:
    """CAP ``dateTime``: whole seconds, an offset, UTC written ``-00:00``."""
    return datetime.fromtimestamp(ms // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S-00:00")


def alert_order(doc: Mapping[str, Any]) -> tuple[int, bool]:
    """Where a ``gate.alerts`` record stands among its alert's records: by ``updated_at``,
    on a tie the resolved one last."""
    return parse_timestamp_ms(str(doc.get("updated_at"))) or 0, doc.get("state") == "resolved"


def latest_by(records: Iterable[Mapping[str, Any]], *, id_field: str,
              order: Callable[[Mapping[str, Any]], Any]) -> dict[str, Mapping[str, Any]]:
    """The latest record per string ``id_field`` by ``order`` (on a tie the later one
    read); records without one are skipped."""
    latest: dict[str, tuple[Any, Mapping[str, Any]]] = {}
    for doc in records:
        rid = doc.get(id_field)
        if not isinstance(rid, str):
            continue
        rank = order(doc)
        if rid not in latest or rank >= latest[rid][0]:
            latest[rid] = (rank, doc)
    return {rid: doc for rid, (_rank, doc) in latest.items()}


def latest_records(records: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The latest record per alert id (:func:`alert_order`; on a tie the later one read),
    by alert id: what several workers' views of ``gate.alerts`` merge into."""
    return [doc for _aid, doc in sorted(latest_by(records, id_field="alert_id",
                                                  order=alert_order).items())]


def incident_records(records: Iterable[Mapping[str, Any]], *, id_field: str,
                     order: Callable[[Mapping[str, Any]], Any]) -> dict[str, list[dict[str, Any]]]:
    """Each id's records of its latest incident (those with the ``started_at`` of its
    latest record by ``order``), oldest first, each once, at most the latest and
    :data:`KEEP_SUPERSEDED` before it: what a worker keeps of ``gate.alerts`` (or
    ``gate.advisories``) so that the CAP messages the feed has replaced stay fetchable.
    Records without a string ``id_field`` are skipped."""
    by_id: dict[str, dict[bytes, dict[str, Any]]] = {}
    for doc in records:
        rid = doc.get(id_field)
        if isinstance(rid, str):
            by_id.setdefault(rid, {})[orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)] = dict(doc)
    out = {}
    for rid, docs in sorted(by_id.items()):
        ordered = sorted(docs.values(), key=order)  # stable: on a tie, the later read last
        started = ordered[-1].get("started_at")
        out[rid] = [d for d in ordered if d.get("started_at") == started][-KEEP_SUPERSEDED - 1:]
    return out


def alert_notice(record: Mapping[str, Any], gates: GateSet) -> Notice | None:
    """The notice of one ``gate.alerts`` record; None for a record the public feed does
    not carry (``no_data``) or one that is not a complete alert record."""
    kind, severity = record.get("kind"), record.get("severity")
    change = record.get("change")
    started = parse_timestamp_ms(str(record.get("started_at")))
    updated = parse_timestamp_ms(str(record.get("updated_at")))
    cap = _CANCEL if change == "resolved" else CAP_MAPPING.get((str(kind), str(severity)))
    if cap is None or change not in _MSG_TYPE or started is None or updated is None:
        return None
    gate = gates.get(str(record.get("gate_id")))
    if gate is None:
        return None
    msg = record.get("message") or {}
    names = {"vi": gate.name, "en": gate.name_en}
    state = "resolved" if change == "resolved" else str(severity)
    params = [("gatewatch:kind", str(kind)), ("gatewatch:severity", str(severity)),
              ("gatewatch:change", str(change))]
    for name in ("waiting", "threshold", "value", "estimated_wait_seconds"):
        if isinstance(record.get(name), int | float):
            params.append((f"gatewatch:{name}", str(record[name])))
    return Notice(
        key=str(record.get("alert_id")), gate_id=gate.gate_id, change=str(change),
        started_ms=started, sent_ms=started if change == "fired" else updated,
        event={lang: EVENT_NAMES[str(kind)][lang] for lang in ("vi", "en")},
        headline={lang: HEADLINE[state][lang].format(
            event=EVENT_NAMES[str(kind)][lang], gate=names[lang]) for lang in ("vi", "en")},
        description={lang: str(msg.get(lang, "")) for lang in ("vi", "en")},
        area=names, cap=cap, web=str(record.get("runbook_url") or ""),
        parameters=tuple(params),
        expires_ms=updated + KEEP_RESOLVED_MS if change == "resolved" else None,
        lat=gate.lat, lon=gate.lon)


def _sub(parent: ET.Element, tag: str, text: str) -> ET.Element:
    el = ET.SubElement(parent, tag)
    el.text = text
    return el


def cap_message(n: Notice, sender: str) -> bytes:
    """One CAP 1.2 ``alert`` document (UTF-8, with the XML declaration)."""
    root = ET.Element("alert", xmlns=CAP_NS)
    for tag, text in (("identifier", n.identifier), ("sender", sender),
                      ("sent", cap_time(n.sent_ms)), ("status", "Actual"),
                      ("msgType", n.msg_type), ("scope", "Public")):
        _sub(root, tag, text)
    if n.change != "fired":
        _sub(root, "references",
             f"{sender},{n.original_identifier},{cap_time(n.started_ms)}")
    _sub(root, "incidents", n.original_identifier)
    urgency, severity, certainty, response = n.cap
    for lang, tag in _LANGS:
        info = ET.SubElement(root, "info")
        _sub(info, "language", tag)
        _sub(info, "category", "Transport")
        _sub(info, "event", n.event[lang])
        _sub(info, "responseType", response)
        for name, text in (("urgency", urgency), ("severity", severity),
                           ("certainty", certainty)):
            _sub(info, name, text)
        _sub(info, "effective", cap_time(n.sent_ms))
        if n.expires_ms is not None:
            _sub(info, "expires", cap_time(n.expires_ms))
        _sub(info, "senderName", "gatewatch")
        _sub(info, "headline", n.headline[lang])
        if n.description.get(lang):
            _sub(info, "description", n.description[lang])
        if n.web:
            _sub(info, "web", n.web)
        for name, value in n.parameters:
            param = ET.SubElement(info, "parameter")
            _sub(param, "valueName", name)
            _sub(param, "value", value)
        area = ET.SubElement(info, "area")
        _sub(area, "areaDesc", n.area[lang])
        if n.lat is not None and n.lon is not None:
            _sub(area, "circle", f"{n.lat:.4f},{n.lon:.4f} {AREA_RADIUS_KM}")
    out: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return out


def cap_entries(alerts: Iterable[Mapping[str, Any]], advisories: Iterable[Notice] = (), *,
                gates: GateSet, now_ms: int) -> list[Notice]:
    """The notices the feed lists now, newest first: each alert's latest change (firing,
    or resolved within :data:`KEEP_RESOLVED_MS`), then ``advisories`` as given."""
    out = []
    for record in latest_records(alerts):
        n = alert_notice(record, gates)
        if n is None or (n.change == "resolved" and now_ms - n.sent_ms > KEEP_RESOLVED_MS):
            continue
        out.append(n)
    out.extend(advisories)
    return sorted(out, key=lambda n: (-n.sent_ms, n.identifier))


def find_message(identifier: str, listed: Iterable[Notice],
                 every: Iterable[Notice | None] = ()) -> Notice | None:
    """The message ``identifier``: one the feed lists (``listed``), or one of ``every``
    (the notices of all the records kept, :func:`incident_records`) whose incident the
    feed lists, such as the ``Alert`` an ``Update`` replaced. None: neither."""
    listed = list(listed)
    incidents = {n.original_identifier for n in listed}
    for n in chain(listed, every):  # ``every`` is built only if the feed lacks it
        if n is not None and n.identifier == identifier and n.original_identifier in incidents:
            return n
    return None


def atom_feed(notices: Iterable[Notice], *, base_url: str, sender: str, now_ms: int) -> bytes:
    """The Atom index feed: one entry per notice, linking to its CAP message."""
    base = base_url.rstrip("/")
    notices = list(notices)
    feed = ET.Element("feed", xmlns=ATOM_NS)
    _sub(feed, "id", f"{base}/api/v1/cap.atom")
    _sub(feed, "title", "gatewatch: cảnh báo cửa khẩu / border gate alerts (CAP 1.2)")
    updated = max((n.sent_ms for n in notices), default=now_ms)
    _sub(feed, "updated", format_ms(updated))
    author = ET.SubElement(feed, "author")
    _sub(author, "name", sender)
    ET.SubElement(feed, "link", rel="self", type="application/atom+xml",
                  href=f"{base}/api/v1/cap.atom")
    _sub(feed, "generator", "gatewatch")
    for n in notices:
        entry = ET.SubElement(feed, "entry")
        href = f"{base}/api/v1/cap/{n.identifier}.xml"
        _sub(entry, "id", href)
        _sub(entry, "title", f"{n.headline['vi']} / {n.headline['en']}")
        _sub(entry, "updated", format_ms(n.sent_ms))
        _sub(entry, "published", format_ms(n.sent_ms))
        ET.SubElement(entry, "link", rel="alternate", type=CAP_TYPE, href=href)
        ET.SubElement(entry, "category", term=n.msg_type)
        _sub(entry, "summary", n.description.get("en") or n.headline["en"])
    out: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return out


def etag(body: bytes) -> str:
    """A strong ETag for a feed or message body."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
