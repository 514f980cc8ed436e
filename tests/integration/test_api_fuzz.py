"""An OpenAPI-driven fuzzer (schemathesis) against a real worker finds nothing: no 5xx,
every status, content type, header and body as /openapi.json documents them, 405 with
``Allow`` for other methods, the token enforced. With and without the token.

schemathesis lives in its own virtualenv, ``.venv-fuzz`` (``make fuzz-venv``; ``make
test`` makes it), never in the project's. Without it this test skips, and fails under
GATEWATCH_REQUIRE_ALL=1 (CI). ``make fuzz-api`` runs this test alone.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.support import MIN, ROOT, ev, message, produce

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCHEMATHESIS = ROOT / ".venv-fuzz" / "bin" / "schemathesis"
TOKEN = "fuzz-token"
#: fixed: the same cases on every run (a failure reproduces with `st replay` or this seed)
SEED = "20211220"
EXAMPLES = "40"

#: One failure is accepted, and only that one: a schema-valid /windows request whose
#: ``from`` is after its ``to`` is answered 400 ``bad_range``. The rule spans two
#: parameters and OpenAPI 3.0 cannot express it; the 400 and its code are documented.
#: Any other refusal of schema-valid input (a valid timestamp answered ``bad_timestamp``)
#: still fails the run.
HOOKS = '''
import json
import schemathesis


@schemathesis.hook
def filter_failure(context, failure, case, response):
    if getattr(failure, "code", None) != "ST202" or response.status_code != 400:
        return True
    try:
        return json.loads(response.content)["error"]["code"] != "bad_range"
    except (ValueError, KeyError, TypeError):
        return True
'''


def fuzz(url: str, hooks: Path, *extra: str) -> str:
    """Run schemathesis with every check; its output, asserting it found nothing."""
    env = dict(os.environ, SCHEMATHESIS_HOOKS=str(hooks), NO_COLOR="1")
    cmd = [str(SCHEMATHESIS), "run", f"{url}/openapi.json", "--checks", "all",
           "--max-examples", EXAMPLES, "--seed", SEED, "--generation-database", "none",
           "--request-timeout", "10", "--no-color", *extra]
    done = subprocess.run(cmd, env=env, cwd=hooks.parent, capture_output=True, text=True,
                          timeout=300, check=False)
    out = done.stdout + done.stderr
    summary = [ln for ln in out.splitlines() if "generated" in ln or "=====" in ln]
    print(" ".join(cmd[:3]), "...:", *summary[-2:], sep="\n  ")
    found = out.find("= FAILURES =")
    assert done.returncode == 0, out[found:] if found >= 0 else out[-6000:]
    assert "No issues found" in out or " passed" in out, out[-3000:]
    return out


def test_schemathesis_finds_nothing_with_and_without_the_token(worker_factory, bootstrap,
                                                                test_id, tmp_path):
    if not SCHEMATHESIS.exists():
        pytest.skip(f"{SCHEMATHESIS} missing: run `make fuzz-venv`")
    # a real history store (SQLite), so the history paths answer from it, not 503
    from gatewatch.history.store import HistoryStore

    history = f"sqlite:///{tmp_path}/history.sqlite3"
    store = HistoryStore(history)
    store.migrate()
    w = worker_factory(GATEWATCH_API_TOKEN=TOKEN,
                       GATEWATCH_API_CORS_ORIGINS="https://ops.example.vn",
                       GATEWATCH_HISTORY_URL=history)
    w.wait_ready()
    now = int(time.time() * 1000)
    # every gate has data: trucks still waiting, crossings over 40 min (closed windows)
    timed = []
    for g, gate in enumerate(("huu-nghi", "tan-thanh", "chi-ma", "coc-nam", "dong-dang-rail")):
        for i in range(40):
            t = now - (40 - i) * MIN
            timed.append((*message(ev(f"{g}-{i}", "queued", t, gate)), t))
            if i % 3:
                timed.append((*message(ev(f"{g}-{i}", "crossed", t + MIN // 2, gate)),
                              t + MIN // 2))
    msgs = [(k, v) for k, v, _ in timed]
    produce(bootstrap, f"{test_id}-gate.events", msgs)
    # ... and the same traffic in the history store, imported offline in event time
    from gatewatch.gates import load_gates
    from gatewatch.history.offline import import_events
    from gatewatch.settings import Settings

    assert import_events(store, timed, load_gates(), Settings(), updated_ms=now).windows > 0
    hooks = tmp_path / "schemathesis_hooks.py"
    hooks.write_text(HOOKS, encoding="utf-8")
    start = time.monotonic()
    fuzz(w.url, hooks, "--header", f"Authorization: Bearer {TOKEN}")
    # without the token every GET is a documented 401 (with WWW-Authenticate)
    out = fuzz(w.url, hooks, "--warnings", "off")
    assert "401" in out or "passed" in out
    print(f"fuzzing took {time.monotonic() - start:.1f} s")
    w.check_alive()
