"""Number-plate readers for the simulator: cameras that miss and misread plates.

Each gate has four cameras (:data:`gatewatch.core.signals.CAMERAS`): per direction one at
the *queue end* (reads ``queued``, and re-reads waiting trucks) and one on the *gate line*
(reads ``crossed`` and ``withdrawn``). A camera (:class:`CameraSpec`) reads a passing
plate with probability ``capture``; a read comes out wrong with probability ``misread``:
one character swapped for another of its OCR confusion class
(:data:`gatewatch.streams.plates.CONFUSIONS`: 0/O/D/Q, 8/B, 1/I/L/7, 5/S, 2/Z, 6/G, 4/A)
or, for a share ``dropped_share`` of misreads, one character dropped. At night (19:00-06:00
local time) the missed and misread shares are multiplied by ``night_factor``. Every read,
right or wrong, is written the way readers and people write plates (``12C-045.67``,
``12c 04567``, ``12C04567``), so the codec's normalisation is exercised.

The simulator keeps the truth beside the feed: the plates really waiting (in
:class:`~gatewatch.tools.simulate.TrafficModel`), and here, per camera, how many reads
were attempted, missed and misread (:class:`ReadLog`).

Plates (:func:`vietnamese_plate`) have the shape of Vietnamese truck plates: a province
code 11-99, a series (``C``, ``H``, ``LD``, ...), then 5 digits (written ``045.67``) or 4.

A scenario's ``cameras:`` section (:func:`parse_cameras`)::

    cameras:
      default: {capture: 0.97, misread: 0.01, night_factor: 1.5}
      gates:                      # optional: per gate, or per camera (gate/camera)
        chi-ma: {capture: 0.9}
        huu-nghi/export-gate: {misread: 0.03}
      reread_minutes: 30          # optional: the queue camera re-reads waiting trucks
    counts: {every_minutes: 15, noise_vehicles: 2}   # optional yard sensor (gate.counts)

Everything is deterministic under a seed; the readers draw from their own random stream,
so the traffic (who arrives and crosses when) is the same whatever the cameras do.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final

from gatewatch.errors import ConfigError
from gatewatch.streams.plates import CONFUSIONS

__all__ = ["CAMERA_OF_TYPE", "CameraSet", "CameraSpec", "CountSensor", "ReadLog",
           "ReaderModel", "parse_cameras", "parse_counts", "spell_plate", "vietnamese_plate"]

#: which camera reads which event type: the queue end or the gate line
CAMERA_OF_TYPE: Final = {"queued": "queue", "crossed": "gate", "withdrawn": "gate"}
_NIGHT_HOURS: Final = frozenset((19, 20, 21, 22, 23, 0, 1, 2, 3, 4, 5))
_VN_OFFSET_MS: Final = 7 * 3_600_000
_CLASS_OF: Final = {ch: group for group in CONFUSIONS for ch in group}
#: truck series, weighted: C (trucks) most, H (tractor units), LD (joint ventures), others
_SERIES: Final = ("C",) * 14 + ("H",) * 3 + ("LD",) * 2 + ("D", "E", "F", "K")
_CAMERA_NAMES: Final = ("export-queue", "export-gate", "import-queue", "import-gate")


@dataclass(frozen=True, slots=True)
class CameraSpec:
    """One camera's reading quality (shares in [0, 1])."""

    #: share of passing plates read at all (the rest are missed: no event)
    capture: float = 1.0
    #: share of reads that come out wrong (one OCR confusion or a dropped character)
    misread: float = 0.0
    #: the missed and misread shares are multiplied by this at night (19:00-06:00)
    night_factor: float = 1.0
    #: share of misreads that drop a character (the rest swap one within its class)
    dropped_share: float = 0.25

    def shares(self, night: bool) -> tuple[float, float]:
        """(missed, misread) shares at this time of day."""
        f = self.night_factor if night else 1.0
        return min(1.0, (1.0 - self.capture) * f), min(1.0, self.misread * f)


@dataclass(frozen=True)
class CameraSet:
    """The cameras of every gate: a default, overrides per gate (``"chi-ma"``) or per
    camera (``"chi-ma/export-gate"``), and the queue cameras' re-read interval."""

    default: CameraSpec = CameraSpec()
    overrides: Mapping[str, CameraSpec] = field(default_factory=dict)
    #: the queue camera re-reads every waiting truck every so many minutes (0: never)
    reread_minutes: float = 0.0

    def spec(self, gate_id: str, direction: str, position: str) -> CameraSpec:
        return (self.overrides.get(f"{gate_id}/{direction}-{position}")
                or self.overrides.get(gate_id) or self.default)

    def gates_named(self) -> set[str]:
        return {key.split("/", 1)[0] for key in self.overrides}


@dataclass(frozen=True, slots=True)
class CountSensor:
    """A yard sensor's head count per direction (``gate.counts``): the true number
    waiting plus Gaussian noise (standard deviation ``noise_vehicles``, rounded, never
    below 0), every ``every_minutes``."""

    every_minutes: float = 15.0
    noise_vehicles: float = 2.0
    source: str = "yard_sensor"


@dataclass
class ReadLog:
    """The readers' truth: per (gate, camera) the reads attempted, missed and misread,
    and the first ``keep`` misreads as (gate, camera, true plate, read plate)."""

    attempts: dict[tuple[str, str], int] = field(default_factory=dict)
    missed: dict[tuple[str, str], int] = field(default_factory=dict)
    misread: dict[tuple[str, str], int] = field(default_factory=dict)
    misreads: list[tuple[str, str, str, str]] = field(default_factory=list)
    keep: int = 10_000

    def totals(self) -> dict[str, int]:
        return {"attempts": sum(self.attempts.values()), "missed": sum(self.missed.values()),
                "misread": sum(self.misread.values())}


def vietnamese_plate(rng: random.Random) -> str:
    """A normalised Vietnamese truck plate, e.g. ``12C04567``, ``29LD1234``."""
    digits = 5 if rng.random() < 0.85 else 4
    return (f"{rng.randint(11, 99)}{rng.choice(_SERIES)}"
            f"{rng.randrange(10 ** digits):0{digits}d}")


def _prefix_len(plate: str) -> int:
    """Length of the province code + series of a normalised plate (digits, letters)."""
    i = 2
    while i < len(plate) and not plate[i].isdigit():
        i += 1
    return i if i < len(plate) else 3


def spell_plate(read: str, rng: random.Random, prefix_len: int | None = None) -> str:
    """``read`` (normalised) written as a reader or a person might: ``12C-045.67``,
    ``12C 045.67``, ``12c-04567``, ``12C04567``; normalising it gives ``read`` back."""
    n = _prefix_len(read) if prefix_len is None else prefix_len
    head, tail = read[:n], read[n:]
    if len(tail) == 5 and rng.random() < 0.6:
        tail = f"{tail[:3]}.{tail[3:]}"
    style = rng.random()
    if style < 0.5:
        text = f"{head}-{tail}"
    elif style < 0.7:
        text = f"{head} {tail}"
    elif style < 0.9:
        text = read
    else:
        text = f"{head}-{tail}".lower()
    return text


class ReaderModel:
    """The cameras of a simulation: ``read`` one passing plate (or miss it), with its
    own random stream (seeded), logging the truth in :attr:`log`."""

    def __init__(self, cameras: CameraSet | None = None, seed: int = 7) -> None:
        self.cameras = cameras or CameraSet()
        self.rng = random.Random(f"cameras:{seed}")
        self.log = ReadLog()

    def read(self, gate_id: str, direction: str, position: str, plate: str,
             t_ms: int) -> str | None:
        """The normalised plate the camera reads, or ``None`` when it misses it."""
        spec = self.cameras.spec(gate_id, direction, position)
        camera = (gate_id, f"{direction}-{position}")
        log = self.log
        log.attempts[camera] = log.attempts.get(camera, 0) + 1
        if spec.capture >= 1.0 and spec.misread <= 0.0:
            return plate
        hour = ((t_ms + _VN_OFFSET_MS) // 3_600_000) % 24
        missed, misread = spec.shares(hour in _NIGHT_HOURS)
        rng = self.rng
        if rng.random() < missed:
            log.missed[camera] = log.missed.get(camera, 0) + 1
            return None
        if rng.random() >= misread:
            return plate
        wrong = self.misread(plate, spec.dropped_share)
        log.misread[camera] = log.misread.get(camera, 0) + 1
        if len(log.misreads) < log.keep:
            log.misreads.append((gate_id, camera[1], plate, wrong))
        return wrong

    def misread(self, plate: str, dropped_share: float = 0.25) -> str:
        """``plate`` misread once: one character swapped within its confusion class, or
        one dropped (also when no character of the plate has a confusion class)."""
        rng = self.rng
        swappable = [i for i, ch in enumerate(plate) if ch in _CLASS_OF]
        if swappable and rng.random() >= dropped_share:
            i = rng.choice(swappable)
            group = _CLASS_OF[plate[i]]
            other = rng.choice([ch for ch in group if ch != plate[i]])
            return plate[:i] + other + plate[i + 1:]
        i = rng.randrange(len(plate))
        return plate[:i] + plate[i + 1:]

    def spell(self, read: str, true_plate: str) -> str:
        """How the read is written on the wire (the separators follow the true plate's
        layout, as the reader segments the plate it sees)."""
        n = _prefix_len(true_plate)
        if len(read) != len(true_plate):
            n = min(n, len(read) - 1)
        return spell_plate(read, self.rng, n)


# -- scenario sections ----------------------------------------------------------------

_SPEC_KEYS: Final = tuple(f.name for f in fields(CameraSpec))


def _share(value: Any, source: str, key: str, upper: float | None = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(source, key, f"must be a number, got {value!r}")
    if value < 0 or (upper is not None and value > upper):
        bound = f"[0, {upper:g}]" if upper is not None else ">= 0"
        raise ConfigError(source, key, f"must be in {bound}, got {value!r}")
    return float(value)


def _spec(raw: Any, base: CameraSpec, source: str, key: str) -> CameraSpec:
    if not isinstance(raw, Mapping):
        raise ConfigError(source, key, "must be a mapping of " + ", ".join(_SPEC_KEYS))
    for name in raw:
        if name not in _SPEC_KEYS:
            raise ConfigError(source, f"{key}.{name}", "unknown key; expected one of "
                              + ", ".join(_SPEC_KEYS))
    values = {name: _share(raw[name], source, f"{key}.{name}",
                           None if name == "night_factor" else 1.0) for name in raw}
    return replace(base, **values)


def parse_cameras(raw: Any, source: str) -> CameraSet | None:
    """The ``cameras:`` section of a scenario (``None`` if absent); errors name the
    file, the key and the reason. Gate ids are checked against the gates when the
    scenario runs (:meth:`CameraSet.gates_named`)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError(source, "cameras", "must be a mapping with default, gates, "
                          "reread_minutes")
    for name in raw:
        if name not in ("default", "gates", "reread_minutes"):
            raise ConfigError(source, f"cameras.{name}", "unknown key; expected default, "
                              "gates, reread_minutes")
    default = _spec(raw.get("default") or {}, CameraSpec(), source, "cameras.default")
    overrides: dict[str, CameraSpec] = {}
    gates = raw.get("gates") or {}
    if not isinstance(gates, Mapping):
        raise ConfigError(source, "cameras.gates", "must map gate ids (or gate/camera) to "
                          "camera settings")
    # gate-wide settings first: they are the base of that gate's cameras' settings
    for name in sorted(gates, key=lambda n: "/" in str(n)):
        key = f"cameras.gates.{name}"
        gate_id, _, camera = str(name).partition("/")
        if camera and camera not in _CAMERA_NAMES:
            raise ConfigError(source, key, f"unknown camera {camera!r}; expected one of "
                              + ", ".join(_CAMERA_NAMES))
        overrides[str(name)] = _spec(gates[name], overrides.get(gate_id, default), source,
                                     key)
    reread = _share(raw.get("reread_minutes", 0), source, "cameras.reread_minutes", None)
    return CameraSet(default, overrides, reread)


def parse_counts(raw: Any, source: str) -> CountSensor | None:
    """The ``counts:`` section of a scenario (``None`` if absent)."""
    if raw is None:
        return None
    allowed = ("every_minutes", "noise_vehicles")
    if not isinstance(raw, Mapping):
        raise ConfigError(source, "counts", "must be a mapping with " + ", ".join(allowed))
    for name in raw:
        if name not in allowed:
            raise ConfigError(source, f"counts.{name}", "unknown key; expected "
                              + ", ".join(allowed))
    every = _share(raw.get("every_minutes", 15), source, "counts.every_minutes", None)
    if every <= 0:
        raise ConfigError(source, "counts.every_minutes", "must be > 0")
    noise = _share(raw.get("noise_vehicles", 2), source, "counts.noise_vehicles", None)
    return CountSensor(every, noise)
