"""Grafana dashboards as code (grafana-foundation-sdk), and pushing them to a Grafana.

Two dashboards, generated into ``dashboards/*.json`` (committed; a test regenerates them
and fails on any difference):

- ``gatewatch-wall``: the operations-center wall for a large TV (kiosk mode): congestion
  and vehicles waiting per gate as big coloured stat tiles, backlog trend, arrivals vs
  crossings, estimated wait, oldest perishable wait, active alerts;
- ``gatewatch-gate``: one gate in detail, chosen with the ``gate`` template variable.

Both show data quality (docs/accuracy.md): cameras' unmatched shares, vehicles set aside
by reconciliation, and on the gate dashboard the ledger against count observations.

Every panel's PromQL is run against a real Prometheus in the test suite.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as bd
from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as md
from grafana_foundation_sdk.models import prometheus as mp

from gatewatch.errors import GatewatchError

__all__ = ["DATASOURCE_UID", "build_all", "panel_queries", "push", "write_all"]

DATASOURCE_UID = "gatewatch-prometheus"
_DS = md.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
_LEVELS = md.ValueMap(options={
    "0": md.ValueMappingResult(text="BÌNH THƯỜNG / normal", color="green", index=0),
    "1": md.ValueMappingResult(text="CẢNH BÁO / warning", color="orange", index=1),
    "2": md.ValueMappingResult(text="NGHIÊM TRỌNG / critical", color="red", index=2),
})


def _q(expr: str, legend: str = "{{gate}}", instant: bool = False) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).legend_format(legend).datasource(_DS)
    return q.instant() if instant else q


def _thresholds(*steps: tuple[float | None, str]) -> bd.ThresholdsConfig:
    return bd.ThresholdsConfig().mode(md.ThresholdsMode.ABSOLUTE).steps(
        [md.Threshold(value=v, color=c) for v, c in steps])


def _stat(title: str, expr: str, unit: str = "none") -> stat.Panel:
    return (stat.Panel().title(title).datasource(_DS).with_target(_q(expr, instant=True))
            .unit(unit).color_mode(common.BigValueColorMode.BACKGROUND)
            .graph_mode(common.BigValueGraphMode.NONE)
            .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
            .orientation(common.VizOrientation.HORIZONTAL))


def wall() -> bd.Dashboard:
    """The operations-center wall (kiosk: ``?kiosk`` in the URL)."""
    level = (_stat("Mức ùn tắc / Congestion level", "max by (gate) (gate_congestion_level)")
             .mappings([_LEVELS]).height(6).span(24))
    waiting = (_stat("Xe đang chờ / Vehicles waiting", "sum by (gate) (gate_vehicles_waiting)")
               .thresholds(_thresholds((None, "green"), (300, "orange"), (800, "red")))
               .height(7).span(24))
    trend = (timeseries.Panel().title("Xu hướng hàng chờ / Backlog trend").datasource(_DS)
             .with_target(_q("sum by (gate) (gate_vehicles_waiting)")).height(9).span(12))
    flow = (timeseries.Panel().title("Xe đến và qua (mỗi giờ) / Arrivals vs crossings per hour")
            .datasource(_DS).unit("none").height(9).span(12)
            .with_target(_q("sum by (gate) (rate(gate_arrivals_total[5m])) * 3600",
                            "{{gate}} arrivals"))
            .with_target(_q("sum by (gate) (rate(gate_crossings_total[5m])) * 3600",
                            "{{gate}} crossings").ref_id("B")))
    est = (_stat("Thời gian chờ ước tính / Estimated wait",
                 "max by (gate) (gate_estimated_wait_seconds)", "s")
           .thresholds(_thresholds((None, "green"), (4 * 3600, "orange"), (12 * 3600, "red")))
           .height(6).span(12))
    perishable = (_stat("Hàng dễ hư hỏng chờ lâu nhất / Oldest perishable wait",
                        "max by (gate) (gate_oldest_perishable_wait_seconds)", "s")
                  .thresholds(_thresholds((None, "green"), (3 * 3600, "orange"),
                                          (6 * 3600, "red")))
                  .height(6).span(12))
    alerts = (table.Panel().title("Cảnh báo đang hoạt động / Active alerts").datasource(_DS)
              .with_target(_q("max by (gate, kind, severity) (gate_alert_active) == 1",
                              "{{gate}} {{kind}} {{severity}}", instant=True)
                           .format(mp.PromQueryFormat.TABLE))
              .height(7).span(24))
    d = (bd.Dashboard("gatewatch · Cửa khẩu Lạng Sơn (wall)").uid("gatewatch-wall")
         .tags(["gatewatch", "wall"]).refresh("10s").time("now-6h", "now")
         .timezone("browser").readonly()
         .with_panel(level).with_panel(waiting).with_panel(trend).with_panel(flow)
         .with_panel(est).with_panel(perishable).with_panel(alerts))
    for p in _wall_quality():
        d = d.with_panel(p)
    return d


# -- data quality (reconciliation, cameras, count observations) ------------------------

def _wall_quality() -> list[stat.Panel]:
    """The wall's data-quality row: the worst camera's unmatched share over the last hour
    per gate, and the vehicles set aside as unconfirmed (not in the backlog)."""
    return [
        _stat("Camera không khớp (1 giờ, tệ nhất) / Worst camera unmatched share (1 h)",
              'max by (gate) (gate_camera_unmatched_ratio{window="1h"})', "percentunit")
        .thresholds(_thresholds((None, "green"), (0.1, "orange"), (0.25, "red")))
        .height(5).span(12),
        _stat("Xe chưa xác nhận / Unconfirmed vehicles (not in the backlog)",
              "sum by (gate) (gate_vehicles_unconfirmed)")
        .thresholds(_thresholds((None, "green"), (10, "orange"), (50, "red")))
        .height(5).span(12),
    ]


def _gate_quality(sel: str) -> list[Any]:
    """The gate dashboard's data-quality panels: unmatched share per camera, vehicles set
    aside, and the ledger against the latest count observation."""
    return [
        timeseries.Panel().title("Tỷ lệ đọc không khớp theo camera / Unmatched share per "
                                 "camera (1 h)").datasource(_DS).unit("percentunit")
        .with_target(_q('gate_camera_unmatched_ratio{gate="$gate",window="1h"}',
                        "{{camera}}")).height(8).span(8),
        timeseries.Panel().title("Xe chưa xác nhận / ghép cặp / Unconfirmed and paired "
                                 "vehicles").datasource(_DS).height(8).span(8)
        .with_target(_q(f"gate_vehicles_unconfirmed{sel}", "unconfirmed {{direction}}"))
        .with_target(_q(f"gate_vehicles_paired{sel}", "paired {{direction}}").ref_id("B")),
        timeseries.Panel().title("Lệch so với số đếm / Count discrepancy (ledger − observed)")
        .datasource(_DS).height(8).span(8)
        .with_target(_q(f"gate_count_discrepancy{sel}", "{{direction}}")),
    ]


def gate_detail() -> bd.Dashboard:
    """One gate in detail; pick it with the ``gate`` variable."""
    gate = (bd.QueryVariable("gate").label("Cửa khẩu / Gate").datasource(_DS)
            .query("label_values(gate_has_data, gate)")
            .refresh(md.VariableRefresh.ON_DASHBOARD_LOAD))
    sel = '{gate="$gate"}'
    panels = [
        timeseries.Panel().title("Xe đang chờ theo hướng / Waiting by direction")
        .datasource(_DS).with_target(_q(f"gate_vehicles_waiting{sel}", "{{direction}}"))
        .height(8).span(12),
        timeseries.Panel().title("Xe đến / qua / rời (mỗi giờ) / Arrivals, crossings, "
                                 "withdrawals per hour").datasource(_DS).height(8).span(12)
        .with_target(_q(f"sum(rate(gate_arrivals_total{sel}[5m])) * 3600", "arrivals"))
        .with_target(_q(f"sum(rate(gate_crossings_total{sel}[5m])) * 3600", "crossings")
                     .ref_id("B"))
        .with_target(_q(f"sum(rate(gate_withdrawals_total{sel}[5m])) * 3600", "withdrawals")
                     .ref_id("C")),
        timeseries.Panel().title("Thời gian chờ đo được (p50, p90) / Measured wait")
        .datasource(_DS).unit("s").height(8).span(12)
        .with_target(_q(f"histogram_quantile(0.5, sum by (le) (rate(gate_wait_seconds_bucket"
                        f"{sel}[1h])))", "p50"))
        .with_target(_q(f"histogram_quantile(0.9, sum by (le) (rate(gate_wait_seconds_bucket"
                        f"{sel}[1h])))", "p90").ref_id("B")),
        timeseries.Panel().title("Xe chờ lâu nhất / Oldest wait").datasource(_DS).unit("s")
        .with_target(_q(f"gate_oldest_wait_seconds{sel}", "{{direction}}"))
        .height(8).span(12),
        _stat("Chờ ước tính / Estimated wait", f"gate_estimated_wait_seconds{sel}", "s")
        .height(5).span(6),
        _stat("Bãi chờ / Yard occupancy", f"gate_yard_occupancy_ratio{sel}", "percentunit")
        .thresholds(_thresholds((None, "green"), (0.5, "orange"), (0.85, "red")))
        .height(5).span(6),
        _stat("Giây từ sự kiện cuối / Seconds since last event",
              f"gate_seconds_since_last_event{sel}", "s")
        .thresholds(_thresholds((None, "green"), (120, "orange"), (300, "red")))
        .height(5).span(6),
        _stat("Mức ùn tắc / Level", f"gate_congestion_level{sel}").mappings([_LEVELS])
        .height(5).span(6),
        timeseries.Panel().title("Độ trễ xử lý / Consumer lag (messages)").datasource(_DS)
        .with_target(_q("sum(gatewatch_consumer_lag_messages)", "lag")).height(7).span(12),
        timeseries.Panel().title("Sự kiện bị từ chối / Rejected events per second")
        .datasource(_DS).height(7).span(12)
        .with_target(_q("sum by (reason) (rate(gatewatch_events_rejected_total[5m]))",
                        "{{reason}}")),
        *_gate_quality(sel),
    ]
    d = (bd.Dashboard("gatewatch · Chi tiết cửa khẩu / Gate detail").uid("gatewatch-gate")
         .tags(["gatewatch"]).refresh("30s").time("now-24h", "now").timezone("browser")
         .readonly().with_variable(gate))
    for p in panels:
        d = d.with_panel(p)
    return d


def build_all() -> dict[str, dict[str, Any]]:
    """uid → dashboard JSON (plain dicts)."""
    enc = JSONEncoder(sort_keys=True, indent=2)
    out: dict[str, dict[str, Any]] = {}
    for builder in (wall(), gate_detail()):
        doc = json.loads(enc.encode(builder.build()))
        out[doc["uid"]] = doc
    return out


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for uid, doc in build_all().items():
        path = directory / f"{uid}.json"
        path.write_text(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                        encoding="utf-8")
        paths.append(path)
    return paths


def panel_queries(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel."""
    out = []
    for panel in doc.get("panels", []):
        for target in panel.get("targets", []):
            if target.get("expr"):
                out.append((panel.get("title", ""), target["expr"]))
    return out


def push(grafana_url: str, token: str, prometheus_url: str, directory: Path) -> list[str]:
    """Create/update the Prometheus datasource and upload every dashboard JSON.

    Needs the optional ``grafana`` extra (grafana-client); without it, raises a
    :class:`~gatewatch.errors.GatewatchError` that says how to install it."""
    try:
        from grafana_client import GrafanaApi  # type: ignore[attr-defined]
        from grafana_client.client import GrafanaClientError
    except ImportError as exc:
        raise GatewatchError(
            f"`dashboards push` needs grafana-client, an optional extra ({exc}); install it "
            "with: pip install 'gatewatch[grafana]'") from exc

    api = GrafanaApi.from_url(grafana_url, credential=token)
    ds = {"name": "gatewatch Prometheus", "type": "prometheus", "uid": DATASOURCE_UID,
          "url": prometheus_url, "access": "proxy", "isDefault": False}
    try:
        api.datasource.create_datasource(ds)
    except GrafanaClientError as exc:
        if getattr(exc, "status_code", None) != 409:  # 409: exists → update it
            raise
        api.datasource.update_datasource_by_uid(DATASOURCE_UID, ds)
    done = []
    for path in sorted(directory.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        api.dashboard.update_dashboard({"dashboard": doc, "overwrite": True,
                                        "message": "gatewatch dashboards push"})
        done.append(doc["uid"])
    return done
