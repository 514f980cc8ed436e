"""The built-in wall page in a real headless browser (Debian's chromium via Playwright):
tiles show what the API says, "no data" is not zero, a gate turning critical turns red
without a reload, its shipment advisory shows as a badge, and the Vietnamese/English toggle
works. Saves a screenshot."""

from __future__ import annotations

import time
import urllib.request

import orjson
import pytest

from tests.support import (
    CHROMIUM_ARGS,
    OUTPUT,
    chromium,
    ev,
    gates_yaml,
    message,
    poll,
    produce,
)

pytestmark = pytest.mark.integration

GATES = gates_yaml({"huu-nghi": "{warning: 5, critical: 10}",
                    "tan-thanh": "{warning: 50, critical: 80}"})


def queued(first: int, end: int, since_ms: int) -> list[tuple[bytes, bytes]]:
    """Vehicles ``first`` to ``end - 1`` queued at Hữu Nghị, one a second from ``since_ms``."""
    return [message(ev(f"29C-{i:05d}", "queued", since_ms + i * 1000, event_id=f"w{i}",
                       cargo="perishable")) for i in range(first, end)]


def test_wall_page_live_in_a_real_browser(bootstrap, worker_factory, test_id, tmp_path):
    exe = chromium()
    from playwright.sync_api import sync_playwright

    gates = tmp_path / "gates.yaml"
    gates.write_text(GATES)
    # cargo keeps 10 s here: 14 trucks queued a second apart and nothing cleared → the
    # export advisory holds shipments
    w = worker_factory(GATEWATCH_GATES=str(gates), GATEWATCH_ALERT_RAISE_HOLD_SECONDS="0",
                       GATEWATCH_ADVISORY_RAISE_HOLD_SECONDS="0",
                       GATEWATCH_PERISHABLE_MAX_WAIT_SECONDS="10")
    w.wait_ready()
    topic = f"{test_id}-gate.events"
    now = int(time.time() * 1000) - 600_000
    produce(bootstrap, topic, queued(0, 3, now))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(f"{w.url}/wall?refresh_ms=300")
            page.wait_for_selector('#gate-huu-nghi .waiting[data-waiting="3"]', timeout=30000)
            page.evaluate("window.__noReload = 1")
            # every tile shows what the API returns
            with urllib.request.urlopen(f"{w.url}/api/v1/gates", timeout=5) as r:
                api = {g["gate_id"]: g for g in orjson.loads(r.read())["gates"]}
            for gid, g in api.items():
                tile = page.locator(f"#gate-{gid}")
                assert tile.get_attribute("data-congestion") == g["congestion"]
                shown = tile.locator(".waiting").get_attribute("data-waiting")
                assert shown == ("" if g["waiting"] is None else str(g["waiting"]["total"]))
            # no data is visibly different from zero
            nodata = page.locator("#gate-tan-thanh")
            assert "no_data" in (nodata.get_attribute("class") or "")
            assert "KHÔNG CÓ DỮ LIỆU" in nodata.inner_text()
            assert "0" not in nodata.locator(".waiting").inner_text()
            # the gate turns critical: the tile turns red without a reload
            produce(bootstrap, topic, queued(3, 14, now))
            page.wait_for_selector("#gate-huu-nghi.critical", timeout=30000)
            assert page.evaluate("window.__noReload") == 1
            red = page.locator("#gate-huu-nghi").evaluate(
                "e => getComputedStyle(e).backgroundColor")
            assert red == "rgb(218, 54, 51)"
            poll(lambda: "ùn tắc" in page.locator("#alert-list").inner_text(), 30,
                 "the congestion alert listed")
            # the oldest of 14 trucks has waited 13 s, nothing cleared: the advisory badge
            badge = '#gate-huu-nghi .advice[data-advice="hold_shipments"]'
            page.wait_for_selector(badge, timeout=30000)
            assert page.locator(badge).inner_text() == "TẠM DỪNG GỬI HÀNG · XK"
            assert page.locator("#gate-tan-thanh .advice").count() == 0
            OUTPUT.mkdir(exist_ok=True)
            page.screenshot(path=str(OUTPUT / "wall.png"))
            # Vietnamese / English toggle
            page.click("#lang")
            assert "Huu Nghi International Border Gate" in page.locator(
                "#gate-huu-nghi").inner_text()
            assert page.locator("#title").inner_text().startswith("Lạng Sơn border gates")
            assert "NO DATA" in page.locator("#gate-tan-thanh").inner_text()
            assert page.locator(badge).inner_text() == "HOLD SHIPMENTS · export"
        finally:
            browser.close()


def test_the_wall_shows_unconfirmed_vehicles_and_a_camera_missing_reads(
        bootstrap, worker_factory, test_id, tmp_path):
    """Tân Thanh: one truck overtaken by 14 others since it was read (its crossing was
    missed) is set aside as unconfirmed, shown as "+1" beside the backlog; 7 crossings
    with no queued read make the export gate-line camera's unmatched share 7/21, flagged
    on the tile."""
    exe = chromium()
    from playwright.sync_api import sync_playwright

    gates = tmp_path / "gates.yaml"
    gates.write_text(GATES)
    w = worker_factory(GATEWATCH_GATES=str(gates), GATEWATCH_UNCONFIRMED_MIN_OVERTAKES="5")
    w.wait_ready()
    t0 = int(time.time() * 1000) - 30 * 60_000

    def tt(vehicle: str, etype: str, t: int, eid: str) -> tuple[bytes, bytes]:
        return message(ev(vehicle, etype, t, "tan-thanh", event_id=eid))

    msgs = [tt("51D-99999", "queued", t0, "missed")]
    for i in range(14):
        msgs += [tt(f"20C-2{i:04d}", "queued", t0 + 60_000 + i * 1000, f"q{i}"),
                 tt(f"20C-2{i:04d}", "crossed", t0 + 5 * 60_000 + i * 1000, f"c{i}")]
    msgs += [tt(f"88A-{i}{i}{i}77", "crossed", t0 + 10 * 60_000 + i * 1000, f"u{i}")
             for i in range(7)]
    produce(bootstrap, f"{test_id}-gate.events", msgs)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(f"{w.url}/wall?refresh_ms=300")
            tile = "#gate-tan-thanh"
            page.wait_for_selector(f'{tile} .unconfirmed[data-unconfirmed="1"]', timeout=30000)
            page.wait_for_selector(f'{tile} .dq[data-cameras~="export-gate"]', timeout=30000)
            assert page.locator(f"{tile} .waiting").get_attribute("data-waiting") == "0"
            assert "+1 chưa xác nhận" in page.locator(tile).inner_text()
            assert "export-gate 33 %" in page.locator(f"{tile} .dq").inner_text()
            # Hữu Nghị has no data: no marker, no unconfirmed line
            assert page.locator("#gate-huu-nghi .dq, #gate-huu-nghi .unconfirmed").count() == 0
            OUTPUT.mkdir(exist_ok=True)
            page.screenshot(path=str(OUTPUT / "wall-data-quality.png"))
            page.click("#lang")
            assert "+1 unconfirmed" in page.locator(tile).inner_text()
            assert "Camera data" in page.locator(f"{tile} .dq").inner_text()
        finally:
            browser.close()
