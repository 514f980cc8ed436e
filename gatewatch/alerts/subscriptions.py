"""Subscriptions: who gets which gate alerts, how, in which language, and when not.

``deploy/subscribers.yaml`` lists the coordinators (and systems) that subscribe; ``gatewatch
alertmanager-config`` turns it into an Alertmanager configuration: one receiver and one
route per subscriber, matching on the labels ``gatewatch notify`` pushes
(:func:`gatewatch.alerts.notify.to_alertmanager`):

========== =================================================================================
label      values
========== =================================================================================
gate       the gate id
severity   ``warning`` | ``critical``
kind       ``congestion`` | ``perishable_wait`` | ``no_data`` (and, later, advisories)
cargo      ``perishable`` for perishable-cargo alerts, ``all`` for alerts about every cargo
direction  ``export`` | ``import`` for one direction, ``all`` for the whole gate
========== =================================================================================

So a subscriber to ``cargo: [general]`` gets a gate's congestion (``cargo="all"``), not the
perishable-wait alerts; one to ``directions: [export]`` gets whole-gate alerts and the
export ones. Every subscriber route has ``continue: true``: several subscribers can get the
same alert; the root route's receiver gets nothing.

Secrets only by file reference: ``bot_token_file`` (Telegram), ``url_file`` (a webhook URL
that carries a token), ``smtp.auth_password_file``. An inline secret (``bot_token``,
``password``...) or a URL with a user or password in it is a configuration error. Alertmanager
reads ``bot_token_file`` and ``url_file`` from 0.26 on; with ``--alertmanager-version 0.25``
(Debian 12's) such a subscriber is refused rather than written with its secret inline.

Quiet hours (``"22:00-06:00"``, local time in the file's ``timezone``) become an Alertmanager
``time_intervals`` entry (split at midnight) muting the subscriber's route. Language:
each receiver's message template uses the Vietnamese (``summary_vi``) or English
(``summary``) annotation; a webhook gets the JSON payload with both.

Problems raise :class:`~gatewatch.errors.ConfigError` naming the file, the key path (e.g.
``subscribers[2].channel.bot_token``) and the reason; unknown keys are errors too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from gatewatch.errors import ConfigError
from gatewatch.gates import GateSet

__all__ = ["FILE_SECRETS_SINCE", "Channel", "Subscriber", "Subscriptions",
           "alertmanager_config", "load_subscriptions", "parse_subscriptions", "render_yaml"]

CARGO: Final = ("perishable", "general", "empty")
DIRECTIONS: Final = ("export", "import")
#: the first Alertmanager version that reads ``bot_token_file`` and webhook ``url_file``
FILE_SECRETS_SINCE: Final = (0, 26)
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_TOP_KEYS = {"version", "timezone", "smtp", "subscribers"}
_SMTP_KEYS = {"smarthost", "from", "auth_username", "auth_password_file", "require_tls"}
_SUB_KEYS = {"name", "channel", "gates", "cargo", "directions", "min_severity", "language",
             "quiet_hours"}
_CHANNEL_KEYS = {"email": {"type", "to"},
                 "telegram": {"type", "chat_id", "bot_token_file"},
                 "webhook": {"type", "url", "url_file"}}
#: keys that would hold a secret inline, and the file reference to use instead
_INLINE_SECRETS = {"bot_token": "bot_token_file", "password": "a *_file reference",
                   "auth_password": "auth_password_file", "token": "a *_file reference",
                   "secret": "a *_file reference", "api_key": "a *_file reference",
                   "auth_secret": "a *_file reference"}
_SUMMARY = {"vi": "summary_vi", "en": "summary"}


@dataclass(frozen=True, slots=True)
class Channel:
    kind: str
    """``email`` | ``telegram`` | ``webhook``"""
    to: str = ""
    chat_id: int = 0
    bot_token_file: str = ""
    url: str = ""
    url_file: str = ""


@dataclass(frozen=True, slots=True)
class Subscriber:
    name: str
    channel: Channel
    gates: tuple[str, ...] | None
    """None: every gate"""
    cargo: tuple[str, ...] | None
    directions: tuple[str, ...] | None
    min_severity: str
    language: str
    quiet_hours: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Subscriptions:
    source: str
    timezone: str
    smtp: Mapping[str, Any]
    subscribers: tuple[Subscriber, ...]


def _require(cond: bool, source: str, key: str, reason: str) -> None:
    if not cond:
        raise ConfigError(source, key, reason)


def _keys(raw: Any, allowed: set[str], source: str, key: str) -> None:
    _require(isinstance(raw, Mapping), source, key, "must be a mapping")
    for name in raw:
        if name in _INLINE_SECRETS:
            raise ConfigError(source, f"{key}.{name}", "secrets are never written inline: "
                              f"put it in a file and use {_INLINE_SECRETS[name]}")
    unknown = sorted(set(raw) - allowed)
    _require(not unknown, source, f"{key}.{unknown[0] if unknown else ''}", "unknown key")


def _text(raw: Any, source: str, key: str) -> str:
    _require(isinstance(raw, str) and bool(raw.strip()) and raw.strip() == raw
             and "\n" not in raw, source, key, "must be a non-empty string on one line")
    return str(raw)


def _choices(raw: Any, options: tuple[str, ...], source: str, key: str
             ) -> tuple[str, ...] | None:
    """A list of ``options`` or ``all`` (also the default)."""
    if raw is None or raw == "all":
        return None
    _require(isinstance(raw, list) and len(raw) > 0, source, key,
             f"must be 'all' or a non-empty list of {', '.join(options)}")
    for i, item in enumerate(raw):
        _require(item in options, source, f"{key}[{i}]",
                 f"{item!r} must be one of {', '.join(options)}")
    return tuple(dict.fromkeys(raw))


def _url(raw: Any, source: str, key: str) -> str:
    url = _text(raw, source, key)
    parts = urlsplit(url)
    _require(parts.scheme in ("http", "https") and bool(parts.hostname), source, key,
             f"{url[:60]!r} must be an http(s) URL")
    _require(parts.username is None and parts.password is None, source, key,
             "a URL with a user or password carries a secret: put it in a file and use "
             "url_file")
    return url


def _channel(raw: Any, source: str, key: str) -> Channel:
    _require(isinstance(raw, Mapping) and raw.get("type") in _CHANNEL_KEYS, source,
             f"{key}.type", "must be email, telegram or webhook")
    kind = str(raw["type"])
    _keys(raw, _CHANNEL_KEYS[kind], source, key)
    if kind == "email":
        to = _text(raw.get("to"), source, f"{key}.to")
        _require(bool(re.fullmatch(r"[^@\s,]+@[^@\s,]+", to)), source, f"{key}.to",
                 f"{to!r} must be one e-mail address")
        return Channel(kind, to=to)
    if kind == "telegram":
        chat = raw.get("chat_id")
        _require(isinstance(chat, int) and not isinstance(chat, bool) and chat != 0, source,
                 f"{key}.chat_id", "must be a Telegram chat id (a non-zero integer)")
        return Channel(kind, chat_id=int(chat),
                       bot_token_file=_text(raw.get("bot_token_file"), source,
                                            f"{key}.bot_token_file"))
    _require(("url" in raw) != ("url_file" in raw), source, f"{key}.url",
             "give url or url_file (a file holding a URL that carries a token), not both")
    if "url" in raw:
        return Channel(kind, url=_url(raw["url"], source, f"{key}.url"))
    return Channel(kind, url_file=_text(raw["url_file"], source, f"{key}.url_file"))


def _quiet(raw: Any, source: str, key: str) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    _require(isinstance(raw, list), source, key, 'must be a list of "HH:MM-HH:MM" ranges')
    out = []
    for i, item in enumerate(raw):
        parts = item.split("-") if isinstance(item, str) else []
        ok = len(parts) == 2 and all(_HHMM.fullmatch(p.strip()) for p in parts)
        _require(ok and parts[0].strip() != parts[1].strip(), source, f"{key}[{i}]",
                 f'{item!r} must be a local time range "HH:MM-HH:MM" (e.g. "22:00-06:00")')
        out.append((parts[0].strip(), parts[1].strip()))
    return tuple(out)


def _subscriber(raw: Any, gates: GateSet | None, source: str, key: str) -> Subscriber:
    _keys(raw, _SUB_KEYS, source, key)
    for required in ("name", "channel"):
        _require(required in raw, source, f"{key}.{required}", "is required")
    name = raw["name"]
    _require(isinstance(name, str) and bool(_NAME.fullmatch(name)), source, f"{key}.name",
             f"{name!r} must be a slug: lowercase letters, digits and '-'")
    gate_ids = tuple(sorted(gates.ids())) if gates is not None else None
    raw_gates = raw.get("gates", "all")
    if raw_gates == "all":
        chosen = None
    else:
        _require(isinstance(raw_gates, list) and len(raw_gates) > 0, source, f"{key}.gates",
                 "must be 'all' or a non-empty list of gate ids")
        for i, g in enumerate(raw_gates):
            _require(isinstance(g, str) and (gate_ids is None or g in gate_ids), source,
                     f"{key}.gates[{i}]", f"{g!r} is not a configured gate"
                     + (f" ({', '.join(gate_ids)})" if gate_ids else ""))
        chosen = tuple(dict.fromkeys(raw_gates))
    severity = raw.get("min_severity", "warning")
    _require(severity in ("warning", "critical"), source, f"{key}.min_severity",
             f"{severity!r} must be warning or critical")
    language = raw.get("language", "vi")
    _require(language in ("vi", "en"), source, f"{key}.language",
             f"{language!r} must be vi or en")
    return Subscriber(
        name=name, channel=_channel(raw["channel"], source, f"{key}.channel"), gates=chosen,
        cargo=_choices(raw.get("cargo"), CARGO, source, f"{key}.cargo"),
        directions=_choices(raw.get("directions"), DIRECTIONS, source, f"{key}.directions"),
        min_severity=severity, language=language,
        quiet_hours=_quiet(raw.get("quiet_hours"), source, f"{key}.quiet_hours"))


def parse_subscriptions(text: str, source: str, gates: GateSet | None = None
                        ) -> Subscriptions:
    """Parse and validate a subscribers file; ``gates`` (if given) checks the gate ids."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(document)"
        raise ConfigError(source, where, f"not valid YAML: {getattr(exc, 'problem', exc)}"
                          ) from None
    _keys(doc, _TOP_KEYS, source, "(document)")
    _require(doc.get("version", 1) == 1, source, "version",
             f"unsupported version {doc.get('version')!r}; this gatewatch reads version 1")
    tz = doc.get("timezone", "Asia/Ho_Chi_Minh")
    try:
        ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(source, "timezone", f"{tz!r} is not an IANA time zone "
                          "(e.g. Asia/Ho_Chi_Minh)") from None
    raw_subs = doc.get("subscribers")
    _require(isinstance(raw_subs, list) and len(raw_subs) > 0, source, "subscribers",
             "must be a non-empty list")
    subs = tuple(_subscriber(r, gates, source, f"subscribers[{i}]")
                 for i, r in enumerate(raw_subs))
    seen: set[str] = set()
    for i, s in enumerate(subs):
        _require(s.name not in seen, source, f"subscribers[{i}].name",
                 f"duplicate subscriber {s.name!r}")
        seen.add(s.name)
    smtp = doc.get("smtp")
    if any(s.channel.kind == "email" for s in subs):
        _keys(smtp, _SMTP_KEYS, source, "smtp")
        for required in ("smarthost", "from"):
            _text(smtp.get(required), source, f"smtp.{required}")
    elif smtp is not None:
        _keys(smtp, _SMTP_KEYS, source, "smtp")
    return Subscriptions(source, str(tz), dict(smtp or {}), subs)


def load_subscriptions(path: Path, gates: GateSet | None = None) -> Subscriptions:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "(file)", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "(file)", f"cannot read: {exc}") from None
    return parse_subscriptions(text, str(path), gates)


def _any(values: tuple[str, ...]) -> str:
    """A regex alternative of validated slugs (no regex metacharacters but ``-``)."""
    return "|".join(values)


def _matchers(s: Subscriber) -> list[str]:
    out = ['source="gatewatch"']
    if s.gates is not None:
        out.append(f'gate=~"{_any(s.gates)}"')
    out.append('severity="critical"' if s.min_severity == "critical"
               else 'severity=~"warning|critical"')
    if s.cargo is not None:
        out.append(f'cargo=~"{_any((*s.cargo, "all"))}"')
    if s.directions is not None:
        out.append(f'direction=~"{_any((*s.directions, "all"))}"')
    return out


def _message(lang: str, sep: str) -> str:
    """A notification text: each alert's summary in ``lang``."""
    return "{{ range .Alerts }}{{ .Annotations." + _SUMMARY[lang] + " }}" + sep + "{{ end }}"


def _receiver(s: Subscriber, source: str, key: str, version: tuple[int, int]
              ) -> dict[str, Any]:
    c = s.channel
    rx: dict[str, Any] = {"name": f"sub-{s.name}"}
    if c.kind in ("telegram", "webhook") and (c.bot_token_file or c.url_file) \
            and version < FILE_SECRETS_SINCE:
        field_name = "bot_token_file" if c.bot_token_file else "url_file"
        raise ConfigError(source, f"{key}.channel.{field_name}",
                          f"Alertmanager {version[0]}.{version[1]} cannot read "
                          f"{field_name} (0.26 and later can), and secrets are never "
                          "written inline: use a newer Alertmanager")
    if c.kind == "email":
        rx["email_configs"] = [{
            "to": c.to, "send_resolved": True,
            "headers": {"Subject": "[gatewatch] {{ .CommonLabels.severity }} "
                                   "{{ .CommonLabels.gate }}: {{ (index .Alerts 0)"
                                   f".Annotations.{_SUMMARY[s.language]} }}}}"},
            "text": _message(s.language, "\n")}]
    elif c.kind == "telegram":
        rx["telegram_configs"] = [{"bot_token_file": c.bot_token_file, "chat_id": c.chat_id,
                                   "parse_mode": "", "send_resolved": True,
                                   "message": _message(s.language, "\n")}]
    else:
        hook: dict[str, Any] = {"url": c.url} if c.url else {"url_file": c.url_file}
        rx["webhook_configs"] = [hook | {"send_resolved": True}]
    return rx


def _intervals(s: Subscriber, tz: str) -> list[dict[str, Any]]:
    times = []
    for start, end in s.quiet_hours:
        if start < end:
            times.append({"start_time": start, "end_time": end})
        else:  # over midnight
            times.append({"start_time": start, "end_time": "24:00"})
            if end != "00:00":
                times.append({"start_time": "00:00", "end_time": end})
    return [{"times": times, "location": tz}]


def alertmanager_config(subs: Subscriptions, version: tuple[int, int] = (0, 27)
                        ) -> dict[str, Any]:
    """The Alertmanager configuration (as a mapping) for ``subs``."""
    routes, receivers, intervals = [], [{"name": "gatewatch-unrouted"}], []
    for i, s in enumerate(subs.subscribers):
        receivers.append(_receiver(s, subs.source, f"subscribers[{i}]", version))
        route: dict[str, Any] = {"receiver": f"sub-{s.name}", "matchers": _matchers(s),
                                 "continue": True}
        if s.quiet_hours:
            intervals.append({"name": f"quiet-{s.name}",
                              "time_intervals": _intervals(s, subs.timezone)})
            route["mute_time_intervals"] = [f"quiet-{s.name}"]
        routes.append(route)
    config: dict[str, Any] = {}
    smtp = subs.smtp
    if smtp:
        config["global"] = {"smtp_smarthost": smtp["smarthost"], "smtp_from": smtp["from"]}
        if "auth_username" in smtp:
            config["global"]["smtp_auth_username"] = smtp["auth_username"]
        if "auth_password_file" in smtp:
            config["global"]["smtp_auth_password_file"] = smtp["auth_password_file"]
        if "require_tls" in smtp:
            config["global"]["smtp_require_tls"] = bool(smtp["require_tls"])
    config["route"] = {"receiver": "gatewatch-unrouted",
                       "group_by": ["alertname", "gate", "kind", "direction"],
                       "group_wait": "10s", "group_interval": "1m", "repeat_interval": "4h",
                       "routes": routes}
    # an escalated alert's critical notification mutes its warning for the same incident
    config["inhibit_rules"] = [{"source_matchers": ['severity="critical"'],
                                "target_matchers": ['severity="warning"'],
                                "equal": ["gate", "kind", "direction"]}]
    if intervals:
        config["time_intervals"] = intervals
    config["receivers"] = receivers
    return config


def render_yaml(config: Mapping[str, Any], source: str) -> str:
    head = (f"# Generated by `gatewatch alertmanager-config` from {source}: edit that file,\n"
            "# not this one. Secrets are file references only.\n")
    return head + yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True, width=100)
