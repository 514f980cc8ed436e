"""The architecture holds: the core is pure and the Faust app factory is wiring only.

``gatewatch/core`` imports no I/O library (Kafka, HTTP, Prometheus, Faust, sockets,
processes, files) and reads no clock; it may use the standard library's pure modules,
``gatewatch.streams`` (records and codecs), the gate configuration and the settings.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import gatewatch
from gatewatch.agents import app

PACKAGE = Path(gatewatch.__file__).parent
CORE = PACKAGE / "core"

FORBIDDEN = ("faust", "aiokafka", "kafka", "aiohttp", "prometheus_client", "mode", "asyncio",
             "socket", "subprocess", "urllib", "http", "requests", "time", "os", "pathlib",
             "logging", "threading", "gatewatch.agents", "gatewatch.web", "gatewatch.alerts",
             "gatewatch.tools", "gatewatch.kafka", "gatewatch.cli")
ALLOWED_GATEWATCH = ("gatewatch.core", "gatewatch.streams", "gatewatch.gates",
                     "gatewatch.settings", "gatewatch.errors")


def imports_of(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_core_imports_no_io_library_and_reads_no_clock():
    bad = []
    for path in sorted(CORE.glob("*.py")):
        for name in imports_of(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                bad.append(f"{path.name}: {name}")
            elif name.startswith("gatewatch") and not name.startswith(ALLOWED_GATEWATCH):
                bad.append(f"{path.name}: {name}")
        text = path.read_text(encoding="utf-8")
        for clock in ("datetime.now", "time.time", "time.monotonic", ".utcnow("):
            if clock in text:
                bad.append(f"{path.name}: reads the clock ({clock})")
    assert not bad, "core must stay pure:\n" + "\n".join(bad)


def test_the_import_check_would_catch_an_io_import():
    assert any(n == "faust" for n in imports_of(PACKAGE / "agents" / "app.py"))


def test_create_app_is_wiring_only():
    source = inspect.getsource(app.create_app)
    lines = [ln for ln in source.splitlines() if ln.strip()]
    assert len(lines) <= 130, f"create_app has {len(lines)} lines: move logic to the core"
    tree = ast.parse(source)
    nested = [n.name for n in ast.walk(tree)
              if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)][1:]
    assert len(nested) <= 8, f"create_app defines {nested}: keep behaviour out of the wiring"
