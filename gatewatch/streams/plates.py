"""Number plates: one spelling per plate, and the misreads a plate reader makes.

**Normalisation** (at the edge, in the codec): a camera, a manual log and a transponder
gateway write the same plate differently (``12C-045.67``, ``12c 04567``, ``12C04567``).
:func:`normalise_plate` gives the one form gatewatch keys a vehicle's state by:
Unicode NFKC, upper case, ``Đ`` → ``D``, and the separators people and readers put in
plates (spaces, ``.``, ``-``, ``_``, ``·``, ``/``) removed. The raw value stays in the
input message on ``gate.events`` (kept 7 days) and in reconciliation records, for audit.

**Confusions**: number-plate readers confuse characters of similar shape. The classes
gatewatch knows (:data:`CONFUSIONS`) are 0/O/D/Q, 8/B, 1/I/L/7, 5/S, 2/Z, 6/G, 4/A.
Two normalised plates are *one OCR-confusion edit* apart (:func:`confusion_edit`) when
they differ in exactly one position by characters of one class, or when one is the other
with one character dropped (a reader losing a character on a dirty plate). Arbitrary
substitutions (``3`` for ``M``) are not confusions: pairing them would join trucks that
merely have similar plates.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

__all__ = ["CONFUSIONS", "canonical", "confusion_edit", "deletions", "normalise_plate"]

#: Characters number-plate readers confuse with each other, by class.
CONFUSIONS: Final = ("0ODQ", "8B", "1IL7", "5S", "2Z", "6G", "4A")

_CLASS: Final = {ch: group[0] for group in CONFUSIONS for ch in group}
_SEPARATORS: Final = re.compile(r"[\s.\-_·/]+")


def normalise_plate(raw: str) -> str:
    """The one spelling of a plate (see the module docstring); may be empty if ``raw``
    holds only separators (the codec rejects that)."""
    text = unicodedata.normalize("NFKC", raw).upper().replace("Đ", "D")
    return _SEPARATORS.sub("", text)


_CANON: Final = str.maketrans(_CLASS)


def canonical(plate: str) -> str:
    """``plate`` with each character replaced by its confusion class's first member:
    plates one confusion substitution apart have the same canonical form."""
    return plate.translate(_CANON)


def deletions(plate: str) -> set[str]:
    """Every string made by dropping one character of ``plate``."""
    return {plate[:i] + plate[i + 1:] for i in range(len(plate))}


def confusion_edit(a: str, b: str) -> str | None:
    """Why ``a`` and ``b`` (normalised, different) may be one plate misread once, or
    ``None``: ``"confusion X/Y"`` for one substitution within a confusion class,
    ``"dropped Y"`` when ``a`` is ``b`` with one character dropped (or the reverse:
    ``"dropped X"``)."""
    if a == b:
        return None
    if len(a) == len(b):
        diff = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
        if len(diff) == 1:
            x, y = diff[0]
            if _CLASS.get(x, x) == _CLASS.get(y, y):
                return f"confusion {x}/{y}"
        return None
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    if len(long_) - len(short) != 1 or len(short) < 4:
        return None
    for i in range(len(long_)):
        if long_[:i] + long_[i + 1:] == short:
            return f"dropped {long_[i]}"
    return None
