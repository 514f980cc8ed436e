"""The gate configuration: which gates exist, their names, yard capacity and thresholds.

Loaded from YAML (the bundled ``data/langson-gates.yaml`` unless ``GATEWATCH_GATES``
names another file) and validated strictly at start-up: every problem raises
:class:`~gatewatch.errors.ConfigError` naming the file, the key path (e.g.
``gates[2].thresholds.critical``) and the reason. Unknown keys are errors too, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from gatewatch.errors import ConfigError

__all__ = ["DEFAULT_GATES_FILE", "GateConfig", "GateSet", "SimulationProfile", "load_gates"]

DEFAULT_GATES_FILE = "langson-gates.yaml"
_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")  # fullmatch: "$" would let "id\n" pass
_GATE_KEYS = {"id", "name", "name_en", "kind", "yard_capacity", "thresholds",
              "no_data_seconds", "perishable_max_wait_seconds", "simulation", "lat", "lon",
              "accepts", "lanes", "open_hours"}
_ACCEPT_KEYS = {"cargo", "directions"}
_CARGOS = ("perishable", "general", "empty")
_DIRECTIONS = ("export", "import")
_THRESHOLD_KEYS = {"warning", "critical", "warning_clear", "critical_clear"}
_SIM_KEYS = {"arrivals_per_hour", "clearance_per_hour", "export_share", "perishable_share",
             "open_hours", "perishable_share_by_month"}


@dataclass(frozen=True, slots=True)
class SimulationProfile:
    """Rates the simulator uses for one gate (vehicles per hour, shares in [0, 1])."""

    arrivals_per_hour: float = 30.0
    clearance_per_hour: float = 30.0
    export_share: float = 0.7
    perishable_share: float = 0.4
    #: local hours [from, to) when the gate clears vehicles (arrivals continue at night)
    open_hours: tuple[int, int] = (0, 24)
    #: perishable share by month (1-12), e.g. dragon-fruit season; others use the default
    perishable_share_by_month: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True, slots=True)
class GateConfig:
    """One border gate."""

    gate_id: str
    name: str
    name_en: str
    kind: str
    yard_capacity: int
    warning_threshold: int
    critical_threshold: int
    no_data_seconds: int | None
    simulation: SimulationProfile
    #: backlog below which a level clears (hysteresis); default 90 % of the raise level
    warning_clear: int = 0
    critical_clear: int = 0
    perishable_max_wait_seconds: int | None = None
    #: WGS 84 position (decimal degrees) for the CAP feed's ``area``; both or neither
    lat: float | None = None
    lon: float | None = None
    #: cargo (perishable, general, empty) and directions (export, import) the gate handles
    accepts_cargo: tuple[str, ...] = _CARGOS
    accepts_directions: tuple[str, ...] = _DIRECTIONS
    #: lanes open for trucks (informational: the public feed), None if not configured
    lanes: int | None = None
    #: local hours [from, to) when the gate clears vehicles (the public feed, forecasts)
    open_hours: tuple[int, int] = (0, 24)

    def accepts(self, cargo: str | None, direction: str | None) -> bool:
        """Whether the gate handles ``cargo`` going ``direction`` (None: any)."""
        return (cargo is None or cargo in self.accepts_cargo) and \
            (direction is None or direction in self.accepts_directions)


@dataclass(frozen=True, slots=True)
class GateSet:
    """All configured gates, in file order, with the file they came from."""

    source: str
    gates: tuple[GateConfig, ...]

    def ids(self) -> frozenset[str]:
        return frozenset(g.gate_id for g in self.gates)

    def get(self, gate_id: str) -> GateConfig | None:
        for gate in self.gates:
            if gate.gate_id == gate_id:
                return gate
        return None


def _require(cond: bool, source: str, key: str, reason: str) -> None:
    if not cond:
        raise ConfigError(source, key, reason)


def _int(value: Any, source: str, key: str, minimum: int = 1) -> int:
    _require(isinstance(value, int) and not isinstance(value, bool), source, key,
             f"must be an integer, got {value!r}")
    _require(value >= minimum, source, key, f"must be >= {minimum}, got {value}")
    return int(value)


def _number(value: Any, source: str, key: str, lo: float, hi: float | None) -> float:
    _require(isinstance(value, int | float) and not isinstance(value, bool), source, key,
             f"must be a number, got {value!r}")
    _require(value >= lo and (hi is None or value <= hi), source, key,
             f"must be in [{lo}, {hi if hi is not None else 'inf'}], got {value}")
    return float(value)


def _text(value: Any, source: str, key: str) -> str:
    _require(isinstance(value, str) and bool(value.strip()), source, key,
             "must be a non-empty string")
    return str(value).strip()


def _hours(raw: Any, source: str, key: str) -> tuple[int, int]:
    _require(isinstance(raw, list) and len(raw) == 2 and all(
        isinstance(h, int) and not isinstance(h, bool) and 0 <= h <= 24 for h in raw)
        and raw[0] < raw[1], source, key,
        f"must be [from, to] local hours with from < to, got {raw!r}")
    return int(raw[0]), int(raw[1])


def _choices(raw: Any, options: tuple[str, ...], source: str, key: str) -> tuple[str, ...]:
    _require(isinstance(raw, list) and len(raw) > 0, source, key,
             f"must be a non-empty list of {', '.join(options)}")
    for i, item in enumerate(raw):
        _require(item in options, source, f"{key}[{i}]",
                 f"{item!r} must be one of {', '.join(options)}")
    _require(len(set(raw)) == len(raw), source, key, "lists a value twice")
    return tuple(o for o in options if o in raw)


def _accepts(raw: Any, source: str, key: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if raw is None:
        return _CARGOS, _DIRECTIONS
    _require(isinstance(raw, Mapping), source, key, "must be a mapping with cargo, directions")
    unknown = sorted(set(raw) - _ACCEPT_KEYS)
    _require(not unknown, source, f"{key}.{unknown[0] if unknown else ''}", "unknown key")
    return (_choices(raw.get("cargo", list(_CARGOS)), _CARGOS, source, f"{key}.cargo"),
            _choices(raw.get("directions", list(_DIRECTIONS)), _DIRECTIONS, source,
                     f"{key}.directions"))


def _simulation(raw: Any, source: str, key: str) -> SimulationProfile:
    if raw is None:
        return SimulationProfile()
    _require(isinstance(raw, Mapping), source, key, "must be a mapping")
    unknown = sorted(set(raw) - _SIM_KEYS)
    _require(not unknown, source, f"{key}.{unknown[0] if unknown else ''}", "unknown key")
    d = SimulationProfile()
    hours = _hours(raw.get("open_hours", [0, 24]), source, f"{key}.open_hours")
    months = raw.get("perishable_share_by_month", {}) or {}
    _require(isinstance(months, Mapping), source, f"{key}.perishable_share_by_month",
             "must map month numbers (1-12) to shares")
    by_month = []
    for m, share in months.items():
        _require(isinstance(m, int) and 1 <= m <= 12, source,
                 f"{key}.perishable_share_by_month", f"month {m!r} must be 1-12")
        by_month.append((int(m), _number(share, source,
                                         f"{key}.perishable_share_by_month.{m}", 0, 1)))
    return SimulationProfile(
        open_hours=hours,
        perishable_share_by_month=tuple(sorted(by_month)),
        arrivals_per_hour=_number(raw.get("arrivals_per_hour", d.arrivals_per_hour), source,
                                  f"{key}.arrivals_per_hour", 0, None),
        clearance_per_hour=_number(raw.get("clearance_per_hour", d.clearance_per_hour), source,
                                   f"{key}.clearance_per_hour", 0, None),
        export_share=_number(raw.get("export_share", d.export_share), source,
                             f"{key}.export_share", 0, 1),
        perishable_share=_number(raw.get("perishable_share", d.perishable_share), source,
                                 f"{key}.perishable_share", 0, 1),
    )


def _gate(raw: Any, source: str, key: str) -> GateConfig:
    _require(isinstance(raw, Mapping), source, key, "must be a mapping")
    unknown = sorted(set(raw) - _GATE_KEYS)
    _require(not unknown, source, f"{key}.{unknown[0] if unknown else ''}", "unknown key")
    for required in ("id", "name", "yard_capacity", "thresholds"):
        _require(required in raw, source, f"{key}.{required}", "is required")
    gate_id = raw["id"]
    _require(isinstance(gate_id, str) and bool(_ID.fullmatch(gate_id)), source, f"{key}.id",
             f"{gate_id!r} must be a slug: lowercase letters, digits and '-', at most 63 chars")
    kind = raw.get("kind", "road")
    _require(kind in ("road", "rail"), source, f"{key}.kind", f"{kind!r} must be road or rail")
    capacity = _int(raw["yard_capacity"], source, f"{key}.yard_capacity")
    thresholds = raw["thresholds"]
    _require(isinstance(thresholds, Mapping), source, f"{key}.thresholds",
             "must be a mapping with warning and critical")
    unknown = sorted(set(thresholds) - _THRESHOLD_KEYS)
    _require(not unknown, source, f"{key}.thresholds.{unknown[0] if unknown else ''}",
             "unknown key")
    for level in ("warning", "critical"):
        _require(level in thresholds, source, f"{key}.thresholds.{level}", "is required")
    warning = _int(thresholds["warning"], source, f"{key}.thresholds.warning")
    critical = _int(thresholds["critical"], source, f"{key}.thresholds.critical")
    _require(critical > warning, source, f"{key}.thresholds.critical",
             f"must be greater than warning ({warning}), got {critical}")
    warning_clear = _int(thresholds.get("warning_clear", warning * 9 // 10), source,
                         f"{key}.thresholds.warning_clear", minimum=0)
    critical_clear = _int(thresholds.get("critical_clear", critical * 9 // 10), source,
                          f"{key}.thresholds.critical_clear", minimum=0)
    _require(warning_clear <= warning, source, f"{key}.thresholds.warning_clear",
             f"must be at most warning ({warning}), got {warning_clear}")
    _require(warning_clear < critical_clear <= critical, source,
             f"{key}.thresholds.critical_clear",
             f"must be above warning_clear ({warning_clear}) and at most critical ({critical}),"
             f" got {critical_clear}")
    no_data = raw.get("no_data_seconds")
    perishable = raw.get("perishable_max_wait_seconds")
    _require(("lat" in raw) == ("lon" in raw), source, f"{key}.{'lon' if 'lat' in raw else 'lat'}",
             "is required with lat/lon (give both or neither)")
    lat = _number(raw["lat"], source, f"{key}.lat", -90, 90) if "lat" in raw else None
    lon = _number(raw["lon"], source, f"{key}.lon", -180, 180) if "lon" in raw else None
    cargo, directions = _accepts(raw.get("accepts"), source, f"{key}.accepts")
    lanes = raw.get("lanes")
    return GateConfig(
        gate_id=gate_id,
        name=_text(raw["name"], source, f"{key}.name"),
        name_en=_text(raw.get("name_en", raw["name"]), source, f"{key}.name_en"),
        kind=kind,
        yard_capacity=capacity,
        warning_threshold=warning,
        critical_threshold=critical,
        no_data_seconds=None if no_data is None else _int(no_data, source,
                                                          f"{key}.no_data_seconds"),
        simulation=_simulation(raw.get("simulation"), source, f"{key}.simulation"),
        warning_clear=warning_clear,
        critical_clear=critical_clear,
        perishable_max_wait_seconds=None if perishable is None else _int(
            perishable, source, f"{key}.perishable_max_wait_seconds"),
        lat=lat, lon=lon,
        accepts_cargo=cargo, accepts_directions=directions,
        lanes=None if lanes is None else _int(lanes, source, f"{key}.lanes"),
        open_hours=_hours(raw.get("open_hours", [0, 24]), source, f"{key}.open_hours"),
    )


def parse_gates(text: str, source: str) -> GateSet:
    """Parse and validate gate configuration text; ``source`` names it in errors."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(document)"
        problem = getattr(exc, "problem", exc)
        raise ConfigError(source, where, f"not valid YAML: {problem}") from None
    _require(isinstance(doc, Mapping), source, "(document)", "must be a mapping with 'gates'")
    unknown = sorted(set(doc) - {"version", "gates"})
    _require(not unknown, source, unknown[0] if unknown else "", "unknown key")
    _require(doc.get("version", 1) == 1, source, "version",
             f"unsupported version {doc.get('version')!r}; this gatewatch reads version 1")
    raw_gates = doc.get("gates")
    _require(isinstance(raw_gates, list) and len(raw_gates) > 0, source, "gates",
             "must be a non-empty list")
    gates = tuple(_gate(raw, source, f"gates[{i}]") for i, raw in enumerate(raw_gates))
    seen: set[str] = set()
    for i, gate in enumerate(gates):
        _require(gate.gate_id not in seen, source, f"gates[{i}].id",
                 f"duplicate gate id {gate.gate_id!r}")
        seen.add(gate.gate_id)
    return GateSet(source=source, gates=gates)


def load_gates(path: Path | None = None) -> GateSet:
    """Load the gate file at ``path``, or the bundled Lạng Sơn default when ``None``."""
    if path is None:
        ref = resources.files("gatewatch").joinpath("data", DEFAULT_GATES_FILE)
        return parse_gates(ref.read_text(encoding="utf-8"), f"(bundled) {DEFAULT_GATES_FILE}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "(file)", "file not found") from None
    except OSError as exc:
        raise ConfigError(str(path), "(file)", f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "(file)", "not UTF-8 text") from None
    return parse_gates(text, str(path))
