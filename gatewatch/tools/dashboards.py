"""Grafana dashboards as code (grafana-foundation-sdk), and pushing them to a Grafana.

Two dashboards, generated into ``dashboards/*.json`` (committed; a test regenerates them
and fails on any difference):

- ``gatewatch-wall``: the operations-center wall for a large TV (kiosk mode): congestion
  and vehicles waiting per gate as big coloured stat tiles, backlog trend, arrivals vs
  crossings, estimated wait, oldest perishable wait, active alerts;
- ``gatewatch-gate``: one gate in detail, chosen with the ``gate`` template variable.

Both gain forecast panels (``gate_forecast_*`` at +1 h/+6 h/+24 h beside the backlog, the
wait-estimate error); the gate dashboard also history panels that read the history store
through a PostgreSQL data source (``deploy/grafana/provisioning/datasources``). Both show
data quality (docs/accuracy.md): cameras' unmatched shares, vehicles set aside by
reconciliation, and on the gate dashboard the ledger against count observations.

Every panel's PromQL is run against a real Prometheus in the test suite, every panel's SQL
against a real PostgreSQL holding the history schema.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import barchart, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as bd
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as md
from grafana_foundation_sdk.models import prometheus as mp

from gatewatch.errors import GatewatchError

__all__ = ["DATASOURCE_UID", "HISTORY_DATASOURCE_UID", "SQL_MACROS", "build_all", "expand_sql",
           "panel_queries", "push", "sql_queries", "write_all"]

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


def _stat(title: str, expr: str, unit: str = "none", legend: str = "{{gate}}") -> stat.Panel:
    return (stat.Panel().title(title).datasource(_DS)
            .with_target(_q(expr, legend, instant=True))
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
         .with_panel(forecast_wall_panels()[0]).with_panel(forecast_wall_panels()[1])
         .with_panel(est).with_panel(perishable).with_panel(forecast_wall_panels()[2])
         .with_panel(alerts))
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
    for p in [*panels[:4], *forecast_gate_panels(sel), *panels[4:], *history_gate_panels()]:
        d = d.with_panel(p)
    return d


# -- forecast panels (Prometheus: gate_forecast_*, gate_wait_estimate_error_seconds) --------

def forecast_wall_panels() -> list[Any]:
    """The wall's forecast backlog and wait at +1 h/+6 h/+24 h (beside the backlog) and
    how far off the expected waits shown were over the last 24 h."""
    by_horizon = "{{gate}} +{{horizon}}"
    backlog = (_stat("Dự báo xe chờ / Forecast vehicles waiting (+1 h, +6 h, +24 h)",
                     "max by (gate, horizon) (gate_forecast_vehicles_waiting)",
                     legend=by_horizon)
               .thresholds(_thresholds((None, "green"), (300, "orange"), (800, "red")))
               .height(7).span(12))
    wait = (_stat("Dự báo thời gian chờ / Forecast wait (+1 h, +6 h, +24 h)",
                  "max by (gate, horizon) (gate_forecast_wait_seconds)", "s",
                  legend=by_horizon)
            .thresholds(_thresholds((None, "green"), (4 * 3600, "orange"), (12 * 3600, "red")))
            .height(7).span(12))
    error = (_stat("Sai số chờ ước tính, 24 giờ / Wait-estimate error, mean of 24 h "
                   "(> 0: too long)",
                   "sum by (gate) (increase(gate_wait_estimate_error_seconds_sum[24h])) / "
                   "sum by (gate) (increase(gate_wait_estimate_error_seconds_count[24h]))",
                   "s")
             .thresholds(_thresholds((None, "orange"), (-3600, "green"), (3600, "orange")))
             .height(6).span(24))
    return [backlog, wait, error]


def forecast_gate_panels(sel: str) -> list[Any]:
    """One gate's backlog and expected wait now beside their forecasts, and the error of
    the expected waits shown (mean and 10th/90th percentiles)."""
    err = "gate_wait_estimate_error_seconds"
    return [
        timeseries.Panel().title("Xe chờ và dự báo / Backlog now and forecast "
                                 "(+1 h, +6 h, +24 h)").datasource(_DS).height(8).span(12)
        .with_target(_q(f"sum(gate_vehicles_waiting{sel})", "now"))
        .with_target(_q(f"gate_forecast_vehicles_waiting{sel}", "+{{horizon}}").ref_id("B")),
        timeseries.Panel().title("Chờ dự kiến và dự báo / Expected wait now and forecast")
        .datasource(_DS).unit("s").height(8).span(12)
        .with_target(_q(f"gate_estimated_wait_seconds{sel}", "joining now"))
        .with_target(_q(f"gate_forecast_wait_seconds{sel}", "joining at +{{horizon}}")
                     .ref_id("B")),
        timeseries.Panel().title("Sai số chờ ước tính / Wait-estimate error (shown − "
                                 "measured)").datasource(_DS).unit("s").height(8).span(24)
        .with_target(_q(f"sum(rate({err}_sum{sel}[1h])) / sum(rate({err}_count{sel}[1h]))",
                        "mean"))
        .with_target(_q(f"histogram_quantile(0.1, sum by (le) (rate({err}_bucket{sel}[1h])))",
                        "p10").ref_id("B"))
        .with_target(_q(f"histogram_quantile(0.9, sum by (le) (rate({err}_bucket{sel}[1h])))",
                        "p90").ref_id("C")),
    ]


# -- history panels (PostgreSQL data source over the history store's tables) ---------------

HISTORY_DATASOURCE_UID = "gatewatch-history"
_PG = md.DataSourceRef(type_val="grafana-postgresql-datasource", uid=HISTORY_DATASOURCE_UID)
#: the Grafana macros and variables the SQL uses (and nothing else: tests expand exactly
#: these, then run the SQL on a real PostgreSQL with the history schema)
SQL_MACROS = ("$__unixEpochFrom()", "$__unixEpochTo()", "'$gate'")


class _Sql(cogvariants.Dataquery):
    def __init__(self, ref_id: str, sql: str, fmt: str) -> None:
        self.ref_id, self.sql, self.fmt = ref_id, sql, fmt

    def to_json(self) -> dict[str, Any]:
        return {"refId": self.ref_id, "datasource": _PG.to_json(), "editorMode": "code",
                "rawQuery": True, "rawSql": self.sql, "format": self.fmt}


class _SqlQuery(cogbuilder.Builder[cogvariants.Dataquery]):
    """A raw-SQL target of Grafana's PostgreSQL data source (the SDK has no builder)."""

    def __init__(self, sql: str, fmt: str = "time_series", ref_id: str = "A") -> None:
        self._q = _Sql(ref_id, " ".join(sql.split()), fmt)

    def build(self) -> cogvariants.Dataquery:
        return self._q


def history_gate_panels() -> list[Any]:
    """The gate's past from the history store: hourly backlog and flows (7 days), the
    hour-of-day pattern of the last 4 weeks, crossings per day (30 days), past alerts."""
    # times are ms since the epoch; local time (hour of day, days) is +07:00 = 25200000 ms
    hourly = _SqlQuery("""
        SELECT to_timestamp((end_ms / 3600000) * 3600) AS "time",
               max(waiting_export + waiting_import) AS "backlog (max)",
               sum(arrivals_export + arrivals_import) AS "arrivals",
               sum(crossings_export + crossings_import) AS "crossings"
        FROM windows WHERE gate_id = '$gate'
          AND end_ms >= $__unixEpochFrom()::bigint * 1000
          AND end_ms < $__unixEpochTo()::bigint * 1000
        GROUP BY 1 ORDER BY 1""")
    pattern = _SqlQuery("""
        SELECT lpad((((end_ms + 25200000) / 3600000) % 24)::text, 2, '0') || ':00'
                 AS "hour (+07:00)",
               round(avg(waiting_export + waiting_import)::numeric, 1) AS "mean backlog",
               round(percentile_cont(0.9) WITHIN GROUP
                     (ORDER BY waiting_export + waiting_import)::numeric, 1) AS "p90 backlog"
        FROM windows WHERE gate_id = '$gate' AND waiting_export IS NOT NULL
          AND end_ms >= ($__unixEpochTo()::bigint - 28 * 86400) * 1000
          AND end_ms < $__unixEpochTo()::bigint * 1000
        GROUP BY 1 ORDER BY 1""", fmt="table")
    daily = _SqlQuery("""
        SELECT to_timestamp(((end_ms + 25200000) / 86400000) * 86400 - 25200) AS "time",
               sum(arrivals_export + arrivals_import) AS "arrivals",
               sum(crossings_export + crossings_import) AS "crossings",
               round((sum(waits_sum_seconds) / NULLIF(sum(waits_count), 0) / 3600)::numeric,
                     2) AS "mean wait (h)"
        FROM windows WHERE gate_id = '$gate'
          AND end_ms >= $__unixEpochFrom()::bigint * 1000
          AND end_ms < $__unixEpochTo()::bigint * 1000
        GROUP BY 1 ORDER BY 1""")
    alerts = _SqlQuery("""
        SELECT to_timestamp(updated_ms / 1000.0) AS "time", kind, severity, change, state,
               waiting, message
        FROM alerts WHERE gate_id = '$gate'
          AND updated_ms >= $__unixEpochFrom()::bigint * 1000
          AND updated_ms < $__unixEpochTo()::bigint * 1000
        ORDER BY updated_ms DESC LIMIT 200""", fmt="table")
    return [
        timeseries.Panel().title("Lịch sử theo giờ, 7 ngày / Hourly history, 7 days "
                                 "(history store)").datasource(_PG).time_from("7d")
        .with_target(hourly).height(8).span(24),
        barchart.Panel().title("Xe chờ theo giờ trong ngày, 4 tuần / Backlog by hour of "
                               "day, 4 weeks (mean, p90)").datasource(_PG)
        .with_target(pattern).height(8).span(12),
        timeseries.Panel().title("Mỗi ngày, 30 ngày / Per day, 30 days (history store)")
        .datasource(_PG).time_from("30d").interval("1d").with_target(daily).height(8)
        .span(12),
        table.Panel().title("Cảnh báo đã qua, 7 ngày / Past alerts, 7 days (history store)")
        .datasource(_PG).time_from("7d").with_target(alerts).height(8).span(24),
    ]


def sql_queries(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, SQL) for every raw-SQL target of every panel."""
    return [(panel.get("title", ""), target["rawSql"])
            for panel in doc.get("panels", []) for target in panel.get("targets", [])
            if target.get("rawSql")]


def expand_sql(sql: str, gate: str, from_s: int, to_s: int) -> str:
    """``sql`` with :data:`SQL_MACROS` replaced as Grafana does (gate ids are
    ``[a-z0-9-]``, so quoting is plain)."""
    if not re.fullmatch(r"[a-z0-9-]+", gate):
        raise ValueError(f"not a gate id: {gate!r}")
    return (sql.replace("$__unixEpochFrom()", str(from_s))
            .replace("$__unixEpochTo()", str(to_s)).replace("'$gate'", f"'{gate}'"))


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
