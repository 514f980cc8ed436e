"""Import and replay of real gate logs: CSV or JSON Lines → contract-v1 events.

Real logs name their columns in their own way (often in Vietnamese) and write local
times without an offset. A :class:`ColumnMap` says which column holds what, and which
of the file's values mean ``queued`` / ``crossed`` / ``withdrawn``; timestamps without
an offset get ``assume_offset`` (default +07:00, Vietnam). Every row is validated with
the same decoder the worker uses; a bad row is reported (row number, reason) and never
stops the good ones. ``event_id`` defaults to a hash of the row's content, so replaying
the same file twice changes no count.

Logs come from Windows PCs as often as not. The file's encoding is one of
:data:`ENCODINGS` (``--encoding``: UTF-8, the default, with or without a byte-order mark,
or Windows-1258, the Vietnamese code page, whose decomposed tone marks are composed to
NFC). A row holding a byte that is not valid in that encoding is reported as
``bad_encoding`` and skipped; a row with a field larger than a whole message
(``GATEWATCH_MAX_MESSAGE_BYTES``) as ``field_too_large``. Neither stops the file.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from gatewatch.errors import ConfigError
from gatewatch.streams.codec import Decoder
from gatewatch.streams.records import CrossingEvent, Rejection

__all__ = ["CSV_FIELD_LIMIT", "ENCODINGS", "FIELDS", "ColumnMap", "ReplayReport", "RowError",
           "check_encoding", "parse_log", "read_rows"]

#: the encodings a log may be in (``--encoding``); UTF-8 is the default
ENCODINGS = ("utf-8", "utf-8-sig", "cp1258")
#: the csv module's own limit on one field while reading a log, in characters (its
#: default, 128 KiB, raised ``_csv.Error`` for the whole file). Fields up to this size are
#: read whole and a row with one larger than ``max_field_bytes`` is ``field_too_large``;
#: past it the csv module gives up on the physical line, which is reported the same way.
CSV_FIELD_LIMIT = 16 * 1024 * 1024

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
    """What a parse found so far; filled row by row, so it is complete up to
    ``stopped`` when reading ends early."""

    rows: int = 0
    good: int = 0
    errors: list[RowError] = field(default_factory=list)
    stopped: str = ""  # why reading ended before the end of the file ("" = it did not)

    def by_reason(self) -> Counter[str]:
        return Counter(e.reason for e in self.errors)

    def summary(self) -> str:
        parts = ", ".join(f"{r} {n}" for r, n in sorted(self.by_reason().items()))
        return (f"{self.rows} rows: {self.good} good, {len(self.errors)} rejected"
                + (f" ({parts})" if parts else "")
                + (f"; INCOMPLETE, {self.stopped}" if self.stopped else ""))


def check_encoding(name: str) -> str:
    """The canonical name of a supported log encoding (``UTF8`` and ``windows-1258`` are
    accepted too), or a :class:`ConfigError` listing the supported ones."""
    try:
        canonical = codecs.lookup(name).name
    except LookupError:
        canonical = ""
    if canonical not in ENCODINGS:
        raise ConfigError("command line", "--encoding",
                          f"{name!r} is not supported; use utf-8 (the default), utf-8-sig "
                          "or cp1258 (Windows-1258)")
    return canonical


def _bad_byte(text: str) -> int | None:
    """The first undecodable byte kept by ``surrogateescape`` in ``text``, if any."""
    if text.isascii():
        return None
    for ch in text:
        if "\udc80" <= ch <= "\udcff":
            return ord(ch) - 0xDC00
    return None


def _row_problem(n: int, row: Mapping[Any, Any], encoding: str,
                 max_field_bytes: int) -> RowError | None:
    """``field_too_large`` or ``bad_encoding`` for one row's fields, or None."""
    for name, value in row.items():
        if not isinstance(value, str):
            continue
        if len(value) * 4 > max_field_bytes:  # cheap bound first: at most 4 bytes a char
            size = len(value.encode("utf-8", "surrogateescape"))
            if size > max_field_bytes:
                return RowError(n, "field_too_large", f"column {str(name)[:40]!r}: {size} "
                                f"bytes > {max_field_bytes} (GATEWATCH_MAX_MESSAGE_BYTES)")
        byte = _bad_byte(value)
        if byte is not None:
            hint = "; a Windows file? try --encoding cp1258" if encoding != "cp1258" else ""
            return RowError(n, "bad_encoding", f"column {str(name)[:40]!r}: byte 0x{byte:02x} "
                            f"is not valid {encoding}{hint}")
    return None


def _text(value: str, encoding: str) -> str:
    """Windows-1258 writes Vietnamese tone marks as combining characters: compose them
    (NFC), as UTF-8 files and command-line values are."""
    if encoding == "cp1258" and not value.isascii():
        return unicodedata.normalize("NFC", value)
    return value


def read_rows(path: Path, fmt: str | None = None, encoding: str = "utf-8",
              max_field_bytes: int = 65536) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """(row number, row dict) pairs; a row that cannot be used yields a
    :class:`RowError` instead (``unparseable``, ``bad_encoding``, ``field_too_large``)."""
    kind = fmt or ("jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv")
    if kind == "csv":
        yield from _csv_rows(path, encoding, max_field_bytes)
        return
    codec = "utf-8" if encoding == "utf-8-sig" else encoding
    with path.open("rb") as fb:
        for n, line in enumerate(fb, start=1):
            if n == 1 and codec == "utf-8" and line.startswith(codecs.BOM_UTF8):
                line = line[len(codecs.BOM_UTF8):]
            if not line.strip():
                continue
            try:
                text = line.decode(codec)
            except UnicodeDecodeError as exc:
                hint = "; a Windows file? try --encoding cp1258" if codec != "cp1258" else ""
                yield n, RowError(n, "bad_encoding", f"byte 0x{line[exc.start]:02x} at "
                                  f"offset {exc.start} is not valid {encoding}{hint}")
                continue
            try:
                doc = orjson.loads(_text(text, encoding))
            except orjson.JSONDecodeError as exc:
                yield n, RowError(n, "unparseable", f"not JSON: {str(exc)[:80]}")
                continue
            if not isinstance(doc, dict):
                yield n, RowError(n, "unparseable", "not a JSON object")
                continue
            yield n, _row_problem(n, doc, encoding, max_field_bytes) or doc


def _csv_rows(path: Path, encoding: str, max_field_bytes: int
              ) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    # UTF-8 skips a leading byte-order mark either way (Excel writes one); undecodable
    # bytes are kept as lone surrogates so that the csv module reads on, and the row
    # holding them is reported.
    codec = "utf-8-sig" if encoding in ("utf-8", "utf-8-sig") else encoding
    previous = csv.field_size_limit(CSV_FIELD_LIMIT)  # process-wide: restored below
    try:
        with path.open(newline="", encoding=codec, errors="surrogateescape") as f:
            reader = csv.reader(f)
            try:
                header = [_text(h, encoding) for h in next(reader, [])]
            except csv.Error as exc:
                raise ConfigError(str(path), "(header row)", f"unreadable: {exc}") from exc
            n = 0
            while True:
                try:
                    fields = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:  # past CSV_FIELD_LIMIT, or a malformed line
                    n += 1
                    too_large = "field larger than field limit" in str(exc)
                    yield n, RowError(n, "field_too_large" if too_large else "unparseable",
                                      f"line {reader.line_num}: {exc}")
                    continue
                if not fields:  # a blank line is no row (as csv.DictReader)
                    continue
                n += 1
                if len(fields) > len(header):
                    yield n, RowError(n, "unparseable",
                                      f"more fields than the header ({len(header)})")
                    continue
                row: dict[str, Any] = dict.fromkeys(header)  # missing trailing fields: None
                row.update(zip(header, (_text(v, encoding) for v in fields), strict=False))
                yield n, _row_problem(n, row, encoding, max_field_bytes) or row
    finally:
        csv.field_size_limit(previous)


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
              fmt: str | None = None, *, encoding: str = "utf-8",
              max_field_bytes: int = 65536, report: ReplayReport | None = None
              ) -> tuple[list[tuple[bytes, bytes, int]], ReplayReport]:
    """Validate a whole log: ((key, value, occurred_at_ms) per good row, report).

    Pass ``report`` to keep what was read when reading ends early (an I/O error, Ctrl-C):
    it is filled row by row and says where it stopped (``report.stopped``)."""
    report = report if report is not None else ReplayReport()
    good: list[tuple[bytes, bytes, int]] = []
    try:
        for n, row in read_rows(path, fmt, encoding, max_field_bytes):
            report.rows += 1
            if isinstance(row, RowError):
                report.errors.append(row)
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
    except BaseException as exc:  # noqa: BLE001 - noted, then re-raised
        what = "interrupted" if isinstance(exc, KeyboardInterrupt) else \
            f"{type(exc).__name__}: {exc}"
        report.stopped = f"stopped after {report.rows} rows: {what}"
        raise
    return good, report
