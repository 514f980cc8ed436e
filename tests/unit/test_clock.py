"""The simulated clock for drills and demos (GATEWATCH_CLOCK_*): one timeline shared by
every process given the same three values; the real clock otherwise."""

from __future__ import annotations

import pytest

from gatewatch.cli import main
from gatewatch.clock import clock_for, real_ms, simulated
from gatewatch.errors import ConfigError
from gatewatch.settings import Settings

ORIGIN = "2022-01-13T00:00:00+07:00"
ORIGIN_MS = 1_642_006_800_000
ANCHOR_MS = 1_700_000_000_000


class FakeReal:
    """A real clock the test moves by hand."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_simulated_time_is_origin_plus_scaled_real_time_since_the_anchor():
    real = FakeReal(ANCHOR_MS)
    now = simulated(14_400, ORIGIN_MS, ANCHOR_MS, real)
    assert now() == ORIGIN_MS
    real.ms += 1_000  # one real second is four simulated hours
    assert now() == ORIGIN_MS + 4 * 3_600_000
    real.ms = ANCHOR_MS - 250  # before the anchor: before the origin
    assert now() == ORIGIN_MS - 3_600_000


def test_processes_started_at_different_times_share_one_timeline():
    real = FakeReal(ANCHOR_MS + 5_000)
    env = {"GATEWATCH_CLOCK_SPEED": "20000", "GATEWATCH_CLOCK_ORIGIN": ORIGIN,
           "GATEWATCH_CLOCK_ANCHOR_MS": str(ANCHOR_MS)}
    first = clock_for(Settings.from_env(env), real)
    real.ms += 7_000  # a restarted worker reads the same environment later
    second = clock_for(Settings.from_env(env), real)
    assert first() == second() == ORIGIN_MS + 12_000 * 20_000


def test_speed_one_with_an_origin_is_a_shifted_real_clock():
    real = FakeReal(ANCHOR_MS + 60_000)
    now = clock_for(Settings.from_env({"GATEWATCH_CLOCK_ORIGIN": ORIGIN,
                                       "GATEWATCH_CLOCK_ANCHOR_MS": str(ANCHOR_MS)}), real)
    assert now() == ORIGIN_MS + 60_000


def test_without_clock_settings_the_real_clock_is_used():
    s = Settings.from_env({})
    assert (s.clock_speed, s.clock_origin_ms, s.clock_anchor_ms) == (1.0, None, None)
    assert clock_for(s) is real_ms
    real = FakeReal(123)
    assert clock_for(s, real)() == 123


@pytest.mark.parametrize("env, key", [
    ({"GATEWATCH_CLOCK_SPEED": "100"}, "GATEWATCH_CLOCK_ORIGIN"),
    ({"GATEWATCH_CLOCK_SPEED": "100", "GATEWATCH_CLOCK_ORIGIN": ORIGIN},
     "GATEWATCH_CLOCK_ANCHOR_MS"),
    ({"GATEWATCH_CLOCK_ANCHOR_MS": str(ANCHOR_MS)}, "GATEWATCH_CLOCK_ORIGIN"),
    ({"GATEWATCH_CLOCK_SPEED": "0"}, "GATEWATCH_CLOCK_SPEED"),
    ({"GATEWATCH_CLOCK_SPEED": "-3"}, "GATEWATCH_CLOCK_SPEED"),
    ({"GATEWATCH_CLOCK_SPEED": "fast"}, "GATEWATCH_CLOCK_SPEED"),
    ({"GATEWATCH_CLOCK_ORIGIN": "2022-01-13 00:00", "GATEWATCH_CLOCK_ANCHOR_MS": "1"},
     "GATEWATCH_CLOCK_ORIGIN"),
    ({"GATEWATCH_CLOCK_ORIGIN": ORIGIN, "GATEWATCH_CLOCK_ANCHOR_MS": "now"},
     "GATEWATCH_CLOCK_ANCHOR_MS"),
])
def test_clock_settings_are_all_or_none_and_checked(env, key):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert info.value.key == key


def test_a_non_positive_speed_is_refused_by_the_clock_itself():
    with pytest.raises(ValueError, match="> 0"):
        simulated(0, ORIGIN_MS, ANCHOR_MS)


def test_the_worker_command_runs_on_the_configured_clock(monkeypatch):
    """`gatewatch worker` hands the simulated clock to the app (no broker needed: the
    app factory is replaced by one that records its clock and stops)."""
    import gatewatch.agents.app
    import gatewatch.kafka

    seen: dict[str, int] = {}

    class Stop(Exception):
        pass

    def fake_create_app(settings, gates, *, wall_ms, partitions, **_more):  # type: ignore[no-untyped-def]
        seen["now"] = wall_ms()
        raise Stop

    monkeypatch.setattr(gatewatch.kafka, "ensure_topics", lambda *a, **k: 4)
    monkeypatch.setattr(gatewatch.agents.app, "create_app", fake_create_app)
    anchor = real_ms()
    monkeypatch.setenv("GATEWATCH_CLOCK_SPEED", "1000")
    monkeypatch.setenv("GATEWATCH_CLOCK_ORIGIN", ORIGIN)
    monkeypatch.setenv("GATEWATCH_CLOCK_ANCHOR_MS", str(anchor))
    with pytest.raises(Stop):
        main(["worker"])
    elapsed_real = real_ms() - anchor
    assert ORIGIN_MS <= seen["now"] <= ORIGIN_MS + (elapsed_real + 1) * 1000
