"""Import and replay of real gate logs: CSV or JSON Lines → contract-v1 events.

Real logs name their columns in their own way (often in Vietnamese) and write local
times without an offset. A :class:`ColumnMap` says which column holds what, and which
of the file's values mean ``queued`` / ``crossed`` / ``withdrawn``; timestamps without
an offset get ``assume_offset`` (default +07:00, Vietnam). Every row is validated with
the same decoder the worker uses; a bad row is reported (row number, reason) and never
stops the good ones. ``event_id`` defaults to a hash of the row's content, so replaying
the same file twice changes no count.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from gatewatch.errors import ConfigError
from gatewatch.streams.codec import Decoder
from gatewatch.streams.records import CrossingEvent, Rejection

__all__ = ["FIELDS", "ColumnMap", "ReplayReport", "RowError", "parse_log", "read_rows"]

#: contract field → what it means in a log
FIELDS = ("gate_id", "vehicle_id", "occurred_at", "type", "direction", "cargo", "lane",
          "event_id")
_REQUIRED = ("gate_id", "vehicle_id", "occurred_at", "type")
_OFFSET = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")


@dataclass(frozen=True)
class ColumnMap:
    """Which log column holds each contract field, and value translations."""

    columns: Mapping[str, str] = field(default_factory=lambda: {f: f for f in FIELDS})
    types: Mapping[str, str] = field(default_factory=dict)  # log value → contract type
    directions: Mapping[str, str] = field(default_factory=dict)
    default_direction: str = "export"
    assume_offset: str = "+07:00"

    @classmethod
    def parse(cls, mapping: str = "", types: str = "", directions: str = "",
              default_direction: str = "export", assume_offset: str = "+07:00") -> ColumnMap:
        """From ``field=Column,...`` strings (the command-line form)."""
        def pairs(text: str, what: str) -> dict[str, str]:
            out: dict[str, str] = {}
            for part in filter(None, (p.strip() for p in text.split(","))):
                if "=" not in part:
                    raise ConfigError("command line", what, f"{part!r} is not key=value")
                k, v = (x.strip() for x in part.split("=", 1))
                out[k] = v
            return out
        cols = {f: f for f in FIELDS}
        given = pairs(mapping, "--map")
        unknown = sorted(set(given) - set(FIELDS))
        if unknown:
            raise ConfigError("command line", "--map", f"unknown field {unknown[0]!r}; "
                              f"fields are {', '.join(FIELDS)}")
        cols.update(given)
        type_map = {v: k for k, vs in pairs(types, "--types").items() for v in vs.split("|")}
        bad = sorted(set(type_map.values()) - {"queued", "crossed", "withdrawn"})
        if bad:
            raise ConfigError("command line", "--types", f"{bad[0]!r} is not queued, crossed "
                              "or withdrawn")
        dir_map = {v: k for k, vs in pairs(directions, "--directions").items()
                   for v in vs.split("|")}
        if not _OFFSET.fullmatch(assume_offset) and assume_offset != "":
            raise ConfigError("command line", "--assume-offset",
                              f"{assume_offset!r} must look like +07:00")
        return cls(cols, type_map, dir_map, default_direction, assume_offset)


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # 1-based data row (CSV: the header is row 0)
    reason: str
    detail: str


@dataclass
class ReplayReport:
    rows: int = 0
    good: int = 0
    errors: list[RowError] = field(default_factory=list)

    def by_reason(self) -> Counter[str]:
        return Counter(e.reason for e in self.errors)

    def summary(self) -> str:
        parts = ", ".join(f"{r} {n}" for r, n in sorted(self.by_reason().items()))
        return (f"{self.rows} rows: {self.good} good, {len(self.errors)} rejected"
                + (f" ({parts})" if parts else ""))


def read_rows(path: Path, fmt: str | None = None) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(row number, row dict) pairs; a row that cannot be parsed yields an error string."""
    kind = fmt or ("jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv")
    if kind == "csv":
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            for n, row in enumerate(reader, start=1):
                if None in row:
                    yield n, f"more fields than the header ({len(reader.fieldnames or [])})"
                else:
                    yield n, dict(row)
        return
    with path.open("rb") as fb:
        for n, line in enumerate(fb, start=1):
            if not line.strip():
                continue
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield n, f"not JSON: {str(exc)[:80]}"
                continue
            yield n, doc if isinstance(doc, dict) else "not a JSON object"


def to_event(row: Mapping[str, Any], cmap: ColumnMap) -> dict[str, str] | str:
    """A contract-v1 document for one log row, or the reason it cannot be one."""
    doc: dict[str, str] = {}
    for fld in FIELDS:
        col = cmap.columns.get(fld, fld)
        value = row.get(col)
        if value is None or (isinstance(value, str) and not value.strip()):
            if fld in _REQUIRED:
                return f"missing {fld} (column {col!r})"
            continue
        doc[fld] = str(value).strip()
    doc["type"] = cmap.types.get(doc["type"], doc["type"])
    doc["direction"] = cmap.directions.get(doc.get("direction", ""),
                                           doc.get("direction") or cmap.default_direction)
    ts = doc["occurred_at"]
    if "T" not in ts and len(ts) >= 16 and ts[10] == " ":
        ts = ts[:10] + "T" + ts[11:]
    if cmap.assume_offset and not _OFFSET.search(ts):
        ts += cmap.assume_offset
    doc["occurred_at"] = ts
    if "event_id" not in doc:
        digest = hashlib.sha1("|".join(doc[k] for k in ("gate_id", "vehicle_id", "type",
                                                         "occurred_at")).encode(),
                              usedforsecurity=False).hexdigest()
        doc["event_id"] = f"log-{digest[:24]}"
    return doc


def parse_log(path: Path, cmap: ColumnMap, decoder: Decoder, now_ms: int,
              fmt: str | None = None) -> tuple[list[tuple[bytes, bytes, int]], ReplayReport]:
    """Validate a whole log: ((key, value, occurred_at_ms) per good row, report)."""
    report = ReplayReport()
    good: list[tuple[bytes, bytes, int]] = []
    for n, row in read_rows(path, fmt):
        report.rows += 1
        if isinstance(row, str):
            report.errors.append(RowError(n, "unparseable", row))
            continue
        doc = to_event(row, cmap)
        if isinstance(doc, str):
            report.errors.append(RowError(n, "missing_field", doc))
            continue
        raw = orjson.dumps(doc)
        res = decoder.decode(raw, doc["gate_id"].encode(), now_ms)
        if isinstance(res, Rejection):
            report.errors.append(RowError(n, res.reason, res.detail))
            continue
        assert isinstance(res, CrossingEvent)
        good.append((res.gate_id.encode(), raw, res.occurred_at_ms))
        report.good += 1
    return good, report
