"""The README is the door: short, with the two commands, a module map that matches the
package, and links that lead somewhere.

The module map lists every ``*.py`` file under ``gatewatch/`` except the package markers
``__init__.py`` (each holds its folder's docstring, the folder has its own line in the
README's layout text) and ``__main__.py`` (``python -m gatewatch``, a two-line alias of
``cli.py``). Names in the map are relative to ``gatewatch/``, in backticks, in the first
column of the table between the ``module-map`` markers.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PACKAGE = ROOT / "gatewatch"
MAX_LINES = 400
NOT_IN_MAP = {"__init__.py", "__main__.py"}

_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _readme() -> str:
    return README.read_text(encoding="utf-8")


def _between(text: str, name: str) -> str:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    assert text.count(begin) == 1 and text.count(end) == 1, f"one pair of {name} markers"
    start, stop = text.index(begin), text.index(end)
    assert start < stop, f"{name}: begin marker after end marker"
    return text[start + len(begin):stop]


def map_entries(text: str) -> list[str]:
    """Module paths (relative to gatewatch/) named in the map's first column."""
    names: list[str] = []
    for line in _between(text, "module-map").splitlines():
        cells = line.split("|")
        if len(cells) < 3:
            continue
        names += re.findall(r"`([\w/]+\.py)`", cells[1])
    return names


def package_modules(package: Path = PACKAGE) -> set[str]:
    return {p.relative_to(package).as_posix() for p in package.rglob("*.py")
            if p.name not in NOT_IN_MAP and "__pycache__" not in p.parts}


def map_difference(text: str, package: Path = PACKAGE) -> tuple[list[str], list[str]]:
    """(modules missing from the map, names in the map that are no module)."""
    mapped, actual = set(map_entries(text)), package_modules(package)
    return sorted(actual - mapped), sorted(mapped - actual)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to -."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    seen: dict[str, int] = {}
    out: set[str] = set()
    for heading in _HEADING.findall(_FENCE.sub("", markdown)):
        slug = github_slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def relative_links(markdown: str) -> list[str]:
    prose = _CODE_SPAN.sub("", _FENCE.sub("", markdown))
    return [t for t in _LINK.findall(prose)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I)]  # http:, https:, mailto:


def broken_links(doc: Path) -> list[str]:
    """Relative links of ``doc`` whose file, or whose #anchor in a Markdown file, is missing."""
    broken = []
    for target in relative_links(doc.read_text(encoding="utf-8")):
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(
                dest.read_text(encoding="utf-8")):
            broken.append(f"{target}: no heading with that anchor in {dest.name}")
    return broken


# -- the module map ------------------------------------------------------------------------

def test_module_map_names_every_module():
    missing, _extra = map_difference(_readme())
    assert not missing, f"modules missing from the README's module map: {missing}"


def test_module_map_names_no_module_that_does_not_exist():
    _missing, extra = map_difference(_readme())
    assert not extra, f"the README's module map names modules that do not exist: {extra}"


def test_module_map_names_each_module_once():
    names = map_entries(_readme())
    assert names, "the module map is empty"
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})


def test_map_difference_reports_exact_names(tmp_path):
    pkg = tmp_path / "gatewatch"
    (pkg / "core").mkdir(parents=True)
    for name in ("__init__.py", "__main__.py", "cli.py", "core/__init__.py", "core/ledger.py",
                 "core/trips.py"):
        (pkg / name).write_text("")
    text = ("<!-- module-map:begin -->\n| module | what |\n|---|---|\n"
            "| `cli.py` | the command |\n| `core/ledger.py` | ledger |\n"
            "| `core/signals.py` | not there |\n<!-- module-map:end -->\n")
    assert map_difference(text, pkg) == (["core/trips.py"], ["core/signals.py"])


# -- size, commands, markers -----------------------------------------------------------------

def test_readme_is_read_in_ten_minutes():
    lines = len(_readme().splitlines())
    assert lines <= MAX_LINES, f"README has {lines} lines, at most {MAX_LINES}"


def test_readme_shows_the_two_commands():
    blocks = re.findall(r"^```sh\n(.*?)^```", _readme(), re.S | re.M)
    commands = {line.split("#")[0].strip() for block in blocks for line in block.splitlines()}
    assert {"make run", "make test"} <= commands, commands


def test_settings_table_markers_hold_a_table():
    """The table lives in docs/configuration.md; the README links to it."""
    assert "docs/configuration.md" in _readme()
    table = _between((ROOT / "docs" / "configuration.md").read_text(encoding="utf-8"),
                     "settings-table")
    assert "| variable | default | accepts | meaning |" in table
    assert "`GATEWATCH_KAFKA_BOOTSTRAP`" in table


# -- links -----------------------------------------------------------------------------------

DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", DOCS, ids=[d.relative_to(ROOT).as_posix() for d in DOCS])
def test_every_relative_link_leads_somewhere(doc):
    assert broken_links(doc) == []


def test_readme_links_to_the_docs_and_the_wall_picture():
    targets = {t.partition("#")[0] for t in relative_links(_readme())}
    assert {"docs/wall.png", "docs/benchmarks.md", "docs/reliability.md",
            "docs/operations.md"} <= targets, targets


def test_link_checker_catches_a_missing_file_and_a_missing_anchor(tmp_path):
    (tmp_path / "other.md").write_text("# Title\n\n## Two words\n")
    doc = tmp_path / "doc.md"
    doc.write_text("[a](other.md#two-words) [b](gone.md) [c](other.md#nope) "
                   "[d](https://example.org/x) `[e](inline.md)`\n\n```\n[f](fenced.md)\n```\n")
    assert broken_links(doc) == ["gone.md: no such file",
                                 "other.md#nope: no heading with that anchor in other.md"]


def test_github_slug():
    assert github_slug("Soak: 10 minutes at 50 % of saturation") == \
        "soak-10-minutes-at-50--of-saturation"
    assert github_slug("Deployment files (`deploy/`)") == "deployment-files-deploy"
    assert github_slug("Gates: 5 → 1,000") == "gates-5--1000"
