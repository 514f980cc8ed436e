"""The 30-day drill (issue 11): a weeks-long border collapse played in accelerated event
time through the real broker, a real `gatewatch worker` (SIGKILLed once, restarted with
the same settings) and a real `gatewatch notify` posting to a webhook, compared at every
checkpoint with a reference model written here.

The drill and every process it starts share one simulated clock
(``GATEWATCH_CLOCK_SPEED/ORIGIN/ANCHOR_MS``, :mod:`gatewatch.clock`): events are sent when
the simulated clock reaches their time, so the worker sees them arrive as a live feed,
and its wall-clock rules (no-data silence, idle watermarks, alert hold times, how far
ahead an event may be stamped) run at the drill's speed.

Timeline (days from 2022-01-13 00:00 +07:00, three gates):

- every gate: arrivals and crossings all month (Poisson, a few per hour);
- Hữu Nghị: the collapse: clearance falls below arrivals from day 2 to 12 and the yard
  fills to ~700 trucks (congestion warning, then critical), then drains by day ~22; six
  trucks held for 2-17 days are re-read by the cameras every simulated minute while they
  wait (~86,000 re-reads);
- Cốc Nam: on day 5, 10:00-11:00, the entry camera's clock is 7 h ahead (its ``queued``
  events are stamped +7 h; the reference treats them as dead-lettered, issue item 2);
- Tân Thanh: Tết, closed from day 18 06:00 to day 21 06:00: no event at all; trucks
  already in the yard wait through it;
- while Tân Thanh is dead (once its ``no_data`` alert fired) the worker is SIGKILLed and a
  new one started with the same settings;
- the webhook answers 400 from day 17 12:00 to day 19 00:00, then 200 again;
- after day 24, right after the worker's expiry sweep ran, the events of 26-29 h earlier
  are produced again (a redelivered day-old batch).

Why these settings: at 10,800x one real second is three simulated hours, the worker's 1 s
timer ticks every three simulated hours, and 30 days take 240 s. A worker restart is real
time (~15-18 s on the embedded broker: JoinGroup holds, the dead member's session, the
changelog recovery), i.e. ~2-2.5 simulated days, and it must fit in the 3-day closure
together with the no-data alert firing before it and firing again after it (the flip this
drill looks for); that is what bounds the speed. The drill's own pauses (a checkpoint stops
the feed while it compares, ~0.1-0.8 s = ~0.3-2.5 h) must stay below every no-data silence:
Tân Thanh's is 6 h, the other gates' 8 h. Tân Thanh's cannot be longer: its alert must fire
(6-9 h into the closure), the worker be restarted (~2 days), and, on a worker that revives
dead feeds at a restart, the alert resolve at the first tick and fire again 6-9 h later,
all before the feed returns (72 h); and the first tick after the restart must come within
6 h (2 real seconds) of it for that resolve to show.
Windows are 1 h, the idle watermark 6 h (longer than a pause), the alert holds 1 h / 2 h
(a tick resolves them). Waits stay under the 30-day max wait; finished trips expire
after the default 24 h retention.

Checks (each failure is collected with its figures; the drill goes on where it can):
counts equal the reference at every checkpoint (and "no data" for the closed gate); the
largest changelog value stays under 4 KiB (when it does not, the re-reads are stopped
so that the rest can run); no partition stalls (each checkpoint catches up: consumer
lag 0 and every sent message processed or dead-lettered); every incident on
``gate.alerts`` ends resolved; Tân Thanh's ``no_data`` fires once and resolves once, when
the feed returns (no flip across the restart); no ``no_data`` for a live gate except
while the restarted worker catches up; a 400 is tried at most 3 times, then parked, every
other alert record reaches the webhook, and none waits behind a parked one.
"""

from __future__ import annotations

import random
import sys
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from gatewatch.alerts.retry import RetryPolicy
from gatewatch.clock import simulated
from gatewatch.streams.changelog import split_key
from gatewatch.streams.codec import format_ms, parse_timestamp_ms
from tests.support import (
    OUTPUT,
    Producer,
    Service,
    TopicTail,
    WebhookReceiver,
    WorkerProc,
    committed_total,
    ev,
    message,
    poll,
    read_topic,
    report_figure,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
#: `gatewatch notify`'s bound on posting a record its receiver rejects (a 4xx), its default
REJECTED_ATTEMPTS = RetryPolicy().rejected_attempts
#: 2022-01-13T00:00:00+07:00, day 0 of the drill (days below are local days)
DAY0 = 1_642_006_800_000
DAYS = 30
#: simulated seconds per real second: 30 days in 240 s
SPEED = 10_800
#: no-data silence of the live gates, and of Tân Thanh (closed for Tết)
NO_DATA_SECONDS = 8 * 3600
CLOSED_NO_DATA_SECONDS = 6 * 3600
CLOSURE = (DAY0 + 18 * DAY + 6 * HOUR, DAY0 + 21 * DAY + 6 * HOUR)
CAMERA = (DAY0 + 5 * DAY + 10 * HOUR, DAY0 + 5 * DAY + 11 * HOUR)
CAMERA_AHEAD = 7 * HOUR
WEBHOOK_400 = (DAY0 + 17 * DAY + 12 * HOUR, DAY0 + 19 * DAY)
REDELIVER_AFTER = DAY0 + 24 * DAY
#: the largest changelog value that counts as "small" (a bounded per-vehicle state)
STATE_LIMIT = 4096
#: real seconds a checkpoint may wait for the worker to catch up before it is a stall
CATCH_UP_SECONDS = 30.0

GATES_YAML = f"""
version: 1
gates:
  - id: huu-nghi
    name: "Cửa khẩu Quốc tế Hữu Nghị"
    name_en: "Huu Nghi International Border Gate"
    yard_capacity: 1500
    thresholds: {{warning: 100, critical: 300, warning_clear: 80, critical_clear: 250}}
    no_data_seconds: {NO_DATA_SECONDS}
  - id: tan-thanh
    name: "Cửa khẩu Tân Thanh"
    name_en: "Tan Thanh Border Gate"
    yard_capacity: 600
    thresholds: {{warning: 100, critical: 300}}
    no_data_seconds: {CLOSED_NO_DATA_SECONDS}
  - id: coc-nam
    name: "Cửa khẩu Cốc Nam"
    name_en: "Coc Nam Border Gate"
    yard_capacity: 300
    thresholds: {{warning: 60, critical: 120}}
    no_data_seconds: {NO_DATA_SECONDS}
"""
GATE_IDS = ("huu-nghi", "tan-thanh", "coc-nam")

# The reference model here is the exact ledger of the events sent (perfect cameras): the
# drill checks exactness through a month, a crash and a dead feed, so reconciliation (which
# sets aside vehicles the evidence says are gone: here, trucks overtaken in a queue served
# in random order) is off; it is checked against its own truth by bench/accuracy.py,
# tests/unit/test_reconcile.py and tests/integration/test_data_quality.py.
WORKER_ENV = {
    "GATEWATCH_RECONCILE": "0",
    "GATEWATCH_WINDOW_SECONDS": "3600", "GATEWATCH_GRACE_SECONDS": "1800",
    "GATEWATCH_IDLE_SECONDS": str(6 * 3600), "GATEWATCH_NO_DATA_SECONDS": str(NO_DATA_SECONDS),
    "GATEWATCH_ALERT_RAISE_HOLD_SECONDS": "3600", "GATEWATCH_ALERT_CLEAR_HOLD_SECONDS": "7200",
}


def day(ms: int) -> str:
    """A simulated time as ``day 18 14:00`` (local days of the drill)."""
    d, rest = divmod(ms - DAY0, DAY)
    return f"day {d} {rest // HOUR:02d}:{rest % HOUR // MINUTE:02d}"


# --- the scenario and its reference model ------------------------------------------------

@dataclass
class Trip:
    """One truck's visit to a gate, as the scenario means it."""

    gate: str
    vehicle: str
    direction: str
    queued_ms: int
    end_ms: int
    end_type: str = "crossed"
    #: False when its queued event was stamped 7 h ahead (dead-lettered: it never waited)
    queued_valid: bool = True
    rereads: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Msg:
    emit_ms: int  # when the drill sends it (simulated time)
    key: bytes
    value: bytes
    kind: str     # queued, crossed, withdrawn, reread


class Scenario:
    """The 30 days, generated once from a seed; the reference model is :meth:`waiting`."""

    def __init__(self, seed: int = 11) -> None:
        rng = random.Random(seed)
        self.trips: list[Trip] = []
        self._plates = 0
        end = DAY0 + DAYS * DAY
        for gate in ("tan-thanh", "coc-nam"):
            t = DAY0
            while True:
                t += int(rng.expovariate(8 / HOUR))
                if t >= end:
                    break
                if gate == "tan-thanh" and CLOSURE[0] <= t < CLOSURE[1]:
                    continue  # closed for Tết: nobody arrives, no camera reads
                done = t + rng.randint(20 * MINUTE, 3 * HOUR)
                if gate == "tan-thanh" and t < CLOSURE[0] <= done:
                    done = CLOSURE[1] + rng.randint(10 * MINUTE, 12 * HOUR)  # waits out Tết
                trip = self._trip(rng, gate, t, done)
                trip.queued_valid = not (gate == "coc-nam" and CAMERA[0] <= t < CAMERA[1])
        self._collapse(rng, end)
        for i, (start, wait) in enumerate(((2, 17), (4, 15), (6, 12), (8, 9), (12, 5),
                                           (20, 2))):
            q = DAY0 + start * DAY + 7 * HOUR + i * 11 * MINUTE
            trip = self._trip(rng, "huu-nghi", q, q + wait * DAY, vehicle=f"12H-HELD{i}")
            trip.rereads = list(range(q + MINUTE, trip.end_ms, MINUTE))
        self.messages = self._messages()

    def _trip(self, rng: random.Random, gate: str, queued: int, done: int,
              vehicle: str | None = None, end_type: str = "crossed") -> Trip:
        self._plates += 1
        trip = Trip(gate, vehicle or f"{rng.choice('12345789')}{rng.choice('ABCDH')}-"
                    f"{self._plates:05d}", "export" if rng.random() < 0.7 else "import",
                    queued, done, end_type)
        self.trips.append(trip)
        return trip

    def _collapse(self, rng: random.Random, end: int) -> None:
        """Hữu Nghị: 12 arrivals an hour; clearance 14/h, 9/h from day 2 to 12 (the
        collapse), 15/h from day 12 to 22 (the yard drains); first in, first out; one
        truck in twenty gives up after 1-2 days and turns back (withdrawn)."""
        queue: deque[tuple[int, int | None]] = deque()  # (queued_ms, gives up at)
        t = DAY0 + int(rng.expovariate(12 / HOUR))
        for hour in range(DAYS * 24):
            h0 = DAY0 + hour * HOUR
            while t < h0 + HOUR:
                queue.append((t, t + rng.randint(DAY, 2 * DAY) if rng.random() < 0.05
                              else None))
                t += int(rng.expovariate(12 / HOUR))
            stay: deque[tuple[int, int | None]] = deque()
            for q, gives_up in queue:
                if gives_up is not None and gives_up < h0 + HOUR:
                    self._trip(rng, "huu-nghi", q, gives_up, end_type="withdrawn")
                else:
                    stay.append((q, gives_up))
            queue = stay
            d = hour / 24
            rate = 9 if 2 <= d < 12 else 15 if 12 <= d < 22 else 14
            for slot in range(rate):
                s = h0 + slot * HOUR // rate + rng.randint(0, HOUR // rate - 1)
                if queue and queue[0][0] <= s - 10 * MINUTE:
                    self._trip(rng, "huu-nghi", queue.popleft()[0], s)
        for q, _gives_up in queue:  # still waiting when the drill ends: never sent
            self._trip(rng, "huu-nghi", q, end + DAY)

    def _messages(self) -> list[Msg]:
        out: list[Msg] = []
        for trip in self.trips:
            v, g, d = trip.vehicle, trip.gate, trip.direction
            stamp = trip.queued_ms if trip.queued_valid else trip.queued_ms + CAMERA_AHEAD
            k, val = message(ev(v, "queued", stamp, g, d, event_id=f"{v}-q"))
            out.append(Msg(trip.queued_ms, k, val, "queued"))
            for i, r in enumerate(trip.rereads):
                k, val = message(ev(v, "queued", r, g, d, event_id=f"{v}-r{i}"))
                out.append(Msg(r, k, val, "reread"))
            k, val = message(ev(v, trip.end_type, trip.end_ms, g, d, event_id=f"{v}-e"))
            out.append(Msg(trip.end_ms, k, val, trip.end_type))
        out.sort(key=lambda m: m.emit_ms)
        return [m for m in out if m.emit_ms < DAY0 + DAYS * DAY]

    def waiting(self, cut_ms: int) -> dict[str, int]:
        """The reference model: trucks waiting per gate once every message sent before
        ``cut_ms`` is counted: a valid queued sent, its crossing or withdrawal not yet.
        Re-reads and redelivered copies change nothing; a queued stamped 7 h ahead is
        dead-lettered, so its truck never waits."""
        out = dict.fromkeys(GATE_IDS, 0)
        for trip in self.trips:
            if trip.queued_valid and trip.queued_ms < cut_ms <= trip.end_ms:
                out[trip.gate] += 1
        return out


def expected_api(scenario: Scenario, cut_ms: int, now_ms: int) -> dict[str, int | None]:
    """What /api/v1/gates must say at ``now_ms`` with messages sent up to ``cut_ms``:
    the reference counts, and no data (None) for the closed gate once it was silent for
    its no-data time; a gate near that edge is left out."""
    counts: dict[str, int | None] = dict(scenario.waiting(cut_ms))
    silent_from = CLOSURE[0] + CLOSED_NO_DATA_SECONDS * 1000
    if CLOSURE[0] <= cut_ms < CLOSURE[1]:
        if now_ms >= silent_from + 2 * HOUR:
            counts["tan-thanh"] = None
        else:
            del counts["tan-thanh"]
    return counts


# --- what the drill watches -----------------------------------------------------------------

@dataclass
class StateSizes:
    """Changelog values seen (on the tail's thread)."""

    records: int = 0
    largest: int = 0
    largest_key: bytes = b""

    def __call__(self, rec: Any) -> None:
        self.records += 1
        size = len(rec.value) if rec.value is not None else 0
        if size > self.largest:
            self.largest, self.largest_key = size, rec.key


def metric_sum(m: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str) -> float:
    return sum(v for (n, _labels), v in m.items() if n == name)


def lags(m: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> dict[str, float]:
    return {dict(labels).get("partition", "?"): v for (n, labels), v in m.items()
            if n == "gatewatch_consumer_lag_messages"}


def api_waiting(w: WorkerProc) -> dict[str, int | None] | None:
    status, body = w.get("/api/v1/gates", timeout=5)
    if status != 200:
        return None
    return {g["gate_id"]: g["waiting"]["total"] if g["waiting"] else None
            for g in orjson.loads(body)["gates"]}


class Drill:
    """The running drill: feed, worker, clock, and every failure found, with figures."""

    def __init__(self, scenario: Scenario, bootstrap: str, test_id: str,
                 worker_factory: Any, env: dict[str, str], clock: Any) -> None:
        self.sc, self.bootstrap, self.test_id = scenario, bootstrap, test_id
        self.worker_factory, self.env, self.now = worker_factory, env, clock
        self.failures: list[str] = []
        self.worker: WorkerProc | None = None
        self.live = False          # the current worker is ready
        self.base = 0              # messages the current worker does not re-read
        self.kill_ms: int | None = None
        self.restart: dict[str, float] = {}
        self.rereads_stopped_at: int | None = None
        self.checkpoints: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = []
        self.skipped: list[str] = []
        self.sent_kinds: dict[str, int] = defaultdict(int)
        self.redelivered = 0
        #: real seconds each checkpoint held the feed, and which
        self.pauses: list[tuple[float, str]] = []

    def fail(self, text: str) -> None:
        print(f"  FAIL {text}", flush=True)
        self.failures.append(text)

    def processed(self) -> tuple[float, dict[str, float]]:
        assert self.worker is not None
        m = self.worker.metrics()
        done = metric_sum(m, "gatewatch_events_processed_total") + \
            metric_sum(m, "gatewatch_events_rejected_total")
        return done, lags(m)

    def catch_up(self, sent: int, where: str) -> bool:
        """Wait until the worker processed (or dead-lettered) every message sent and its
        lag is 0; a stall otherwise."""
        assert self.worker is not None
        want = sent - self.base

        def done() -> bool:
            n, lag = self.processed()
            return n >= want and bool(lag) and not any(lag.values())
        try:
            poll(done, CATCH_UP_SECONDS, f"{where}: worker caught up", interval=0.05,
                 alive=self.worker.check_alive)
            return True
        except AssertionError as exc:
            n, lag = self.processed()
            self.fail(f"partition stall at {where}: processed {n:.0f} of {want} messages "
                      f"in {CATCH_UP_SECONDS:.0f} s, lag per partition {lag} ({exc})")
            return False

    def checkpoint(self, cut: int, sent: int, label: str = "") -> bool:
        """Compare the API with the reference once every message sent (all those before
        ``cut``) is processed; the feed waits meanwhile. False on a stall."""
        where = day(cut) + label
        if not self.live:
            self.skipped.append(where)
            return True
        paused = time.monotonic()
        if not self.catch_up(sent, where):
            return False
        assert self.worker is not None
        got = api_waiting(self.worker)
        want = expected_api(self.sc, cut, self.now())
        self.pauses.append((time.monotonic() - paused, where))
        seen = {g: (got or {}).get(g, "?") for g in want}
        ok = got is not None and seen == want
        self.checkpoints.append((where, seen, want, ok))
        if not ok:
            print(f"  {where}: API {seen} != reference {want}", flush=True)
        return True


# --- the test -------------------------------------------------------------------------------

def test_thirty_day_collapse_drill(bootstrap, worker_factory, test_id, tmp_path):
    started = time.monotonic()
    sc = Scenario()
    gates_file = tmp_path / "drill-gates.yaml"
    gates_file.write_text(GATES_YAML, encoding="utf-8")
    origin = DAY0 - 18 * HOUR  # the worker starts meanwhile (~5 s = ~15 simulated hours)
    anchor = time.time_ns() // 1_000_000
    clock = simulated(SPEED, origin, anchor)
    env = dict(WORKER_ENV, GATEWATCH_GATES=str(gates_file),
               GATEWATCH_CLOCK_SPEED=str(SPEED), GATEWATCH_CLOCK_ORIGIN=format_ms(origin),
               GATEWATCH_CLOCK_ANCHOR_MS=str(anchor))
    drill = Drill(sc, bootstrap, test_id, worker_factory, env, clock)
    events_topic = f"{test_id}-gate.events"
    sizes = StateSizes()
    alert_docs: list[dict[str, Any]] = []

    with WebhookReceiver() as hook:
        w = drill.worker = worker_factory(**env)
        notify = Service([sys.executable, "-m", "gatewatch", "notify", "--webhook-url",
                          hook.url], OUTPUT / f"{test_id}-notify.log", env=w.env)
        try:
            w.wait_ready(timeout=90)
            drill.live = True
            with Producer(bootstrap, events_topic) as feed, \
                    TopicTail(bootstrap, f"{test_id}-app-vehicle-state-changelog",
                              sizes) as changelog, \
                    TopicTail(bootstrap, f"{test_id}-gate.alerts",
                              lambda r: alert_docs.append(orjson.loads(r.value))):
                run_timeline(drill, feed, hook, sizes, alert_docs)
                finish(drill, feed, changelog, sizes)
        finally:
            notify.stop()
            if drill.worker is not None:
                drill.worker.stop()
    wall = time.monotonic() - started
    judge(drill, sizes, hook, wall)


def run_timeline(drill: Drill, feed: Producer, hook: WebhookReceiver, sizes: StateSizes,
                 alert_docs: list[dict[str, Any]]) -> None:
    """Send every message when the simulated clock reaches it; act at the checkpoints."""
    sc, now = drill.sc, drill.now
    msgs = sc.messages
    cuts = sorted({DAY0 + d * DAY for d in range(1, DAYS + 1)} | {CAMERA[0]})
    end = DAY0 + DAYS * DAY
    i = 0
    expired_at_arm: float | None = None
    redelivered = False
    next_probe = 0.0
    webhook_state = 200
    while cuts:
        t = now()
        cut = min(t, cuts[0])
        batch: list[tuple[bytes, bytes]] = []
        while i < len(msgs) and msgs[i].emit_ms < cut:
            m = msgs[i]
            i += 1
            if m.kind == "reread" and drill.rereads_stopped_at is not None:
                continue
            drill.sent_kinds[m.kind] += 1
            batch.append((m.key, m.value))
        feed.send(batch)
        sent_until = cut
        # the largest changelog value, watched continuously: past the limit the re-reads
        # stop, so that a state that grows with them cannot sink the rest of the drill
        if sizes.largest > STATE_LIMIT and drill.rereads_stopped_at is None:
            drill.rereads_stopped_at = t
            gate, vehicle = split_key(sizes.largest_key)
            drill.fail(f"state size: a changelog value of {sizes.largest:,} bytes "
                       f"({gate}/{vehicle}) at {day(t)} > {STATE_LIMIT:,}: a waiting "
                       "truck's state grows with every re-read (item 1); re-reads stopped "
                       "from here so the rest of the drill can run")
        # the webhook's bad spell
        want_status = 400 if WEBHOOK_400[0] <= t < WEBHOOK_400[1] else 200
        if want_status != webhook_state:
            hook.status = webhook_state = want_status
            drill.restart[f"webhook_{want_status}_real"] = time.time()
            print(f"  {day(t)}: webhook answers {want_status}", flush=True)
        # SIGKILL while Tân Thanh is dead, once its no_data alert fired
        if drill.kill_ms is None and t >= CLOSURE[0]:
            fired = any(d["alert_id"] == "tan-thanh:no_data" and d["change"] == "fired"
                        for d in list(alert_docs))
            if fired or t >= CLOSURE[0] + 30 * HOUR:
                if not fired:
                    drill.fail(f"tan-thanh:no_data had not fired by {day(t)} "
                               f"({(t - CLOSURE[0]) / HOUR:.0f} h into the closure)")
                kill_and_restart(drill, feed, t)
        if not drill.live and drill.worker is not None:
            drill.worker.check_alive()
            if drill.worker.ready():
                drill.live = True
                drill.restart["ready_real"] = time.monotonic()
                drill.restart["ready_sim"] = now()
                print(f"  {day(now())}: restarted worker ready "
                      f"{drill.restart['ready_real'] - drill.restart['killed_real']:.1f} s "
                      "after the kill", flush=True)
                # what the restarted worker shows first (the closed gate: no data)
                if not drill.checkpoint(sent_until, feed.sent, " (after the restart)"):
                    return
        # the redelivered day-old batch, right after an expiry sweep ran
        if not redelivered and drill.live and t >= REDELIVER_AFTER \
                and time.monotonic() >= next_probe:
            next_probe = time.monotonic() + 0.25
            m = drill.worker.metrics() if drill.worker else {}
            expired = metric_sum(m, "gatewatch_vehicles_expired_total")
            if expired_at_arm is None:
                expired_at_arm = expired
            elif expired > expired_at_arm or t >= end - 2 * DAY:
                lo, hi = t - 29 * HOUR, t - 26 * HOUR
                again = [(m_.key, m_.value) for m_ in msgs[:i] if lo <= m_.emit_ms < hi]
                feed.send(again)
                drill.redelivered = len(again)
                drill.restart["redelivered_sim"] = t
                redelivered = True
                print(f"  {day(t)}: redelivered {len(again)} messages of "
                      f"{day(lo)}-{day(hi)} (sweep seen: {expired > expired_at_arm})",
                      flush=True)
        if t >= cuts[0]:
            cut = cuts.pop(0)
            if not drill.checkpoint(cut, feed.sent):
                return  # a stall: the rest would only repeat it
            continue
        time.sleep(0.02)  # pacing: the loop follows the simulated clock


def kill_and_restart(drill: Drill, feed: Producer, t: int) -> None:
    assert drill.worker is not None
    drill.worker.kill()
    drill.kill_ms = t
    drill.live = False
    drill.restart["killed_real"] = time.monotonic()
    topic = f"{drill.test_id}-gate.events"
    drill.base = committed_total(drill.bootstrap, f"{drill.test_id}-app", topic)
    print(f"  {day(t)}: SIGKILL the worker (Tân Thanh dead since {day(CLOSURE[0])}); "
          f"{drill.base} of {feed.sent} messages committed", flush=True)
    drill.worker = drill.worker_factory(**drill.env)


def finish(drill: Drill, feed: Producer, changelog: TopicTail, sizes: StateSizes) -> None:
    """After the last day: the worker and the changelog tail caught up."""
    if drill.worker is None or not drill.live:
        drill.fail("the restarted worker never became ready")
        return
    if not drill.catch_up(feed.sent, "the end"):
        return
    try:
        poll(lambda: changelog.behind == 0, 30, "the changelog read to its end",
             progress=lambda: f"{changelog.records} records read, error {changelog.error!r}")
    except AssertionError as exc:
        drill.fail(f"could not read the state changelog to its end: {exc}")
    if sizes.largest > STATE_LIMIT and drill.rereads_stopped_at is None:
        gate, vehicle = split_key(sizes.largest_key)
        drill.fail(f"state size: a changelog value of {sizes.largest:,} bytes ({gate}/"
                   f"{vehicle}) > {STATE_LIMIT:,}")


def judge(drill: Drill, sizes: StateSizes, hook: WebhookReceiver, wall: float) -> None:
    """Read gate.alerts back, check the alert story and the webhook, print the figures,
    fail with every finding."""
    docs = [orjson.loads(r.value) for r in read_topic(drill.bootstrap,
                                                      f"{drill.test_id}-gate.alerts")]
    by_alert: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in docs:
        by_alert[d["alert_id"]].append(d)

    def when(d: dict[str, Any]) -> str:
        return day(parse_timestamp_ms(d["updated_at"]) or 0)

    def story(aid: str) -> str:
        return ", ".join(f"{d['change']} {when(d)}" for d in by_alert[aid])

    # every incident ends resolved
    open_ = [aid for aid, ds in by_alert.items() if ds[-1]["state"] != "resolved"]
    if open_:
        drill.fail("incidents still firing at the end (nothing legitimately fires on day "
                   "30: the collapse cleared by day ~22): "
                   + "; ".join(f"{aid}: {story(aid)}" for aid in open_))
    # congestion: one incident per gate (no flapping)
    for aid, ds in by_alert.items():
        if aid.endswith(":congestion") and sum(d["change"] == "fired" for d in ds) > 1:
            drill.fail(f"{aid} flapped: {story(aid)}")
    # Tân Thanh's no_data: fired during the closure, resolved once when the feed returned
    nd = by_alert.get("tan-thanh:no_data", [])
    changes = [(d["change"], parse_timestamp_ms(d["updated_at"]) or 0) for d in nd]
    ok_story = (len(changes) == 2 and changes[0][0] == "fired"
                and CLOSURE[0] <= changes[0][1] < CLOSURE[1]
                and changes[1][0] == "resolved" and changes[1][1] >= CLOSURE[1])
    if not ok_story:
        early = [day(t) for c, t in changes if c == "resolved" and t < CLOSURE[1]]
        drill.fail(f"tan-thanh:no_data must fire once in the closure and resolve once when "
                   f"the feed returns ({day(CLOSURE[1])}); it went: {story('tan-thanh:no_data')}"
                   + (f" (resolved while the feed was still dead at {', '.join(early)}; "
                      f"worker killed {day(drill.kill_ms or 0)}, restarted worker ready "
                      f"{day(int(drill.restart.get('ready_sim', 0)))})" if early else ""))
    # no no_data for a live gate, except while the restarted worker caught up
    window = (drill.kill_ms or 0, int(drill.restart.get("ready_sim", 0)) + 12 * HOUR)
    artifacts = []
    for gate in ("huu-nghi", "coc-nam"):
        for d in by_alert.get(f"{gate}:no_data", []):
            t = parse_timestamp_ms(d["updated_at"]) or 0
            if window[0] <= t <= window[1]:
                artifacts.append(f"{gate} {d['change']} {day(t)}")
            else:
                drill.fail(f"{gate}:no_data {d['change']} at {day(t)}: a live gate went "
                           "silent (a stall, or the drill's own pacing)")

    # the webhook: a 400 is a rejection: tried at most REJECTED_ATTEMPTS times, then parked
    # (unless the receiver answers 2xx meanwhile); everything else arrives
    def ident(d: Any) -> tuple[str, str, str]:
        return (d.get("alert_id"), d.get("change"), d.get("updated_at")) \
            if isinstance(d, dict) else ("?", "?", "?")
    answered: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for _ts, status, body in hook.log:
        answered[ident(body)].append(status)
    refused = {k for k, st in answered.items() if 400 in st}
    parked = {k for k in refused if not any(200 <= x < 300 for x in answered[k])}
    retried = {k: st for k, st in answered.items()
               if sum(s == 400 for s in st) > REJECTED_ATTEMPTS}
    if retried:
        drill.fail("webhook: a 400 is permanent but was retried past the bound: " + "; ".join(
            f"{k[0]} {k[1]}: {len(st)} POSTs ({', '.join(map(str, st))})"
            for k, st in retried.items()))
    want = [ident(d) for d in docs]

    def delivered() -> list[tuple[str, str, str]]:
        got = {ident(b) for b in list(hook.bodies)}
        return [k for k in want if k not in got and k not in refused]
    try:
        poll(lambda: not delivered(), 45, "every alert record not parked at the webhook")
    except AssertionError:
        drill.fail(f"webhook: {len(delivered())} alert record(s) never delivered: "
                   f"{delivered()[:5]}")
    # nothing waits behind a parked record once the receiver is back
    back = drill.restart.get("webhook_200_real")
    first_ok = {}
    for ts, status, body in hook.log:
        if 200 <= status < 300:
            first_ok.setdefault(ident(body), ts)
    slow = []
    if back is not None:
        records = read_topic(drill.bootstrap, f"{drill.test_id}-gate.alerts")
        for rec in records:
            k = ident(orjson.loads(rec.value))
            if rec.timestamp / 1000 >= back + 1 and k in first_ok \
                    and first_ok[k] - rec.timestamp / 1000 > 10:
                slow.append(f"{k[0]} {k[1]}: {first_ok[k] - rec.timestamp / 1000:.1f} s")
    if slow:
        drill.fail("webhook: alert records published after the receiver recovered waited "
                   "behind a retried one: " + "; ".join(slow))

    # figures
    exact = sum(1 for *_x, ok in drill.checkpoints if ok)
    bad = [f"{w}: " + ", ".join(f"{g} {seen.get(g)} (reference {ref[g]})"
                                 for g in ref if seen.get(g) != ref[g])
           for w, seen, ref, ok in drill.checkpoints if not ok]
    if bad:
        drill.fail(f"counts: {len(bad)} of {len(drill.checkpoints)} checkpoints differ from "
                   "the reference model (API waiting, None = no data): " + "; ".join(bad))
    kinds = drill.sent_kinds
    fired = sum(d["change"] == "fired" for d in docs)
    resolved = sum(d["change"] == "resolved" for d in docs)
    restart = ""
    if "ready_real" in drill.restart:
        restart = (f"; restart: SIGKILL {day(drill.kill_ms or 0)}, ready "
                   f"{drill.restart['ready_real'] - drill.restart['killed_real']:.1f} s later "
                   f"({day(int(drill.restart['ready_sim']))})")
    stopped = drill.rereads_stopped_at
    longest = max(drill.pauses, default=(0.0, "-"))
    report_figure(
        f"30-day drill (x{SPEED:,}, {wall:.0f} s): {sum(kinds.values()):,} events "
        f"({kinds['reread']:,} re-reads"
        + (f", stopped {day(stopped)}" if stopped is not None else "")
        + f", {drill.redelivered} redelivered, "
        f"{sum(1 for t in drill.sc.trips if not t.queued_valid)} stamped +7 h)"
        f"; checkpoints exact {exact}/{len(drill.checkpoints)}"
        + (f" ({len(drill.skipped)} skipped while restarting)" if drill.skipped else "")
        + f"; longest checkpoint pause {longest[0]:.2f} s = "
        f"{longest[0] * SPEED / 3600:.1f} simulated h ({longest[1]})"
        + f"; max changelog value {sizes.largest:,} B over {sizes.records:,} records"
        f"; alerts fired {fired}, resolved {resolved} ({len(docs)} records)"
        f"; webhook: {len(hook.bodies)} delivered, {len(parked)} parked, "
        f"{sum(st == 400 for _t, st, _b in hook.log)} of {len(hook.log)} POSTs answered 400"
        + restart + (f"; no_data while catching up: {', '.join(artifacts)}" if artifacts
                     else ""))
    for aid in sorted(by_alert):
        print(f"  {aid}: {story(aid)}")
    assert not drill.failures, f"{len(drill.failures)} finding(s):\n- " + \
        "\n- ".join(drill.failures)
