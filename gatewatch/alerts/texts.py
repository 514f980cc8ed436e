"""Alert texts in Vietnamese and English, from templates.

Templates use :meth:`str.format` fields: ``gate`` (name in the message's language),
``waiting``, ``threshold``, ``level``, ``wait`` (estimated wait, or "unknown"),
``trend``, ``value`` (minutes or vehicles, by kind) and ``runbook``.
"""

from __future__ import annotations

from typing import Final

from gatewatch.core.congestion import AlertChange
from gatewatch.gates import GateConfig

__all__ = ["EVENT_NAMES", "HEADLINE", "TEMPLATES", "format_duration", "render"]

_LEVEL: Final = {
    "vi": {"warning": "CẢNH BÁO", "critical": "NGHIÊM TRỌNG"},
    "en": {"warning": "WARNING", "critical": "CRITICAL"},
}
_TREND: Final = {
    "vi": {"up": "đang tăng", "down": "đang giảm", "flat": "ổn định"},
    "en": {"up": "rising", "down": "falling", "flat": "steady"},
}

#: alert kind -> language -> event name (the CAP feed's ``event``)
EVENT_NAMES: Final[dict[str, dict[str, str]]] = {
    "congestion": {"vi": "Ùn tắc tại cửa khẩu", "en": "Border gate congestion"},
    "perishable_wait": {"vi": "Xe hàng dễ hư hỏng chờ quá lâu",
                        "en": "Perishable cargo waiting too long"},
    "no_data": {"vi": "Mất dữ liệu cửa khẩu", "en": "Border gate data missing"},
}
#: severity or "resolved" -> language -> short headline with ``event`` and ``gate``
HEADLINE: Final[dict[str, dict[str, str]]] = {
    "warning": {"vi": "[CẢNH BÁO] {event}: {gate}", "en": "[WARNING] {event}: {gate}"},
    "critical": {"vi": "[NGHIÊM TRỌNG] {event}: {gate}", "en": "[CRITICAL] {event}: {gate}"},
    "resolved": {"vi": "[ĐÃ HẾT] {event}: {gate}", "en": "[RESOLVED] {event}: {gate}"},
}

#: (kind, change) -> language -> template
TEMPLATES: Final[dict[tuple[str, str], dict[str, str]]] = {
    ("congestion", "firing"): {
        "vi": "[{level}] {gate}: {waiting} xe đang chờ (ngưỡng {threshold}), xu hướng {trend}. "
              "Thời gian chờ ước tính: {wait}. Hướng dẫn: {runbook}",
        "en": "[{level}] {gate}: {waiting} vehicles waiting (threshold {threshold}), {trend}. "
              "Estimated wait: {wait}. Runbook: {runbook}",
    },
    ("congestion", "resolved"): {
        "vi": "[ĐÃ HẾT] {gate}: ùn tắc đã giải toả, còn {waiting} xe đang chờ. "
              "Thời gian chờ ước tính: {wait}.",
        "en": "[RESOLVED] {gate}: congestion cleared, {waiting} vehicles waiting. "
              "Estimated wait: {wait}.",
    },
    ("perishable_wait", "firing"): {
        "vi": "[{level}] {gate}: xe chở hàng dễ hư hỏng đã chờ {value} (giới hạn {threshold}). "
              "Hướng dẫn: {runbook}",
        "en": "[{level}] {gate}: a perishable-cargo vehicle has waited {value} "
              "(limit {threshold}). Runbook: {runbook}",
    },
    ("perishable_wait", "resolved"): {
        "vi": "[ĐÃ HẾT] {gate}: thời gian chờ lâu nhất của xe hàng dễ hư hỏng đã xuống rõ "
              "dưới giới hạn ({value}, giới hạn {threshold}).",
        "en": "[RESOLVED] {gate}: the longest perishable-cargo wait is back well under the "
              "limit ({value}, limit {threshold}).",
    },
    ("no_data", "firing"): {
        "vi": "[{level}] {gate}: không nhận được dữ liệu trong {value} (cảm biến hoặc nguồn "
              "dữ liệu có thể bị hỏng). Hướng dẫn: {runbook}",
        "en": "[{level}] {gate}: no data for {value} (sensor or feed may be down). "
              "Runbook: {runbook}",
    },
    ("data_quality", "firing"): {
        "vi": "[{level}] {gate}: chất lượng dữ liệu giảm: tỷ lệ biển số không khớp của một "
              "camera tăng vọt, hoặc số xe đếm được lệch so với sổ theo dõi ({value}, ngưỡng "
              "{threshold}). Số xe chờ có thể kém chính xác. Hướng dẫn: {runbook}",
        "en": "[{level}] {gate}: data quality dropped: a camera's share of unmatched plates "
              "jumped, or a head count differs from the ledger ({value}, threshold "
              "{threshold}). The backlog may be less accurate. Runbook: {runbook}",
    },
    ("data_quality", "resolved"): {
        "vi": "[ĐÃ HẾT] {gate}: chất lượng dữ liệu đã trở lại bình thường.",
        "en": "[RESOLVED] {gate}: data quality is back to normal.",
    },
    ("no_data", "resolved"): {
        "vi": "[ĐÃ HẾT] {gate}: đã nhận lại dữ liệu.",
        "en": "[RESOLVED] {gate}: data is flowing again.",
    },
}


def format_duration(seconds: float | None, lang: str) -> str:
    """``2 h 05 min`` / ``2 giờ 05 phút``; ``unknown`` / ``chưa xác định`` for None."""
    if seconds is None:
        return "chưa xác định" if lang == "vi" else "unknown"
    minutes = int(round(seconds / 60))
    days, rem = divmod(minutes, 1440)
    hours, mins = divmod(rem, 60)
    units = ("ngày", "giờ", "phút") if lang == "vi" else ("d", "h", "min")
    if days:
        return f"{days} {units[0]} {hours} {units[1]}"
    if hours:
        return f"{hours} {units[1]} {mins:02d} {units[2]}"
    return f"{mins} {units[2]}"


def render(change: AlertChange, gate: GateConfig, runbook_url: str) -> dict[str, str]:
    """The alert's text in both languages."""
    a = change.alert
    state = "resolved" if a.state == "resolved" else "firing"
    out: dict[str, str] = {}
    for lang in ("vi", "en"):
        if a.kind == "congestion":
            value, threshold = str(int(a.value)), str(int(a.threshold))
        elif a.kind == "data_quality":
            value, threshold = (f"{a.value:.0%}", f"{a.threshold:.0%}") if a.threshold < 1 \
                else (f"{a.value:+.0f}", f"±{a.threshold:.0f}")
        else:
            value = format_duration(a.value, lang)
            threshold = format_duration(a.threshold, lang)
        out[lang] = TEMPLATES[(a.kind, state)][lang].format(
            level=_LEVEL[lang][a.severity],
            gate=gate.name if lang == "vi" else gate.name_en,
            waiting=change.signals.backlog,
            threshold=threshold,
            value=value,
            wait=format_duration(change.estimated_wait_seconds, lang)
            + (" (ước tính)" if lang == "vi" and change.estimated_wait_seconds else "")
            + (" (estimate)" if lang == "en" and change.estimated_wait_seconds else ""),
            trend=_TREND[lang][change.signals.trend],
            runbook=f"{runbook_url.rstrip('/')}#{a.kind}",
        )
    return out
