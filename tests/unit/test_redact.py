"""Secret redaction reaches every part of a log record a handler prints: the message and
its arguments, an exception's message, arguments and chained causes in the traceback, and
the stack. Run in a child process through the logging set-up the worker uses (mode's
``setup_logging``, which ``faust.Worker`` calls), so the test session's own logging is
left alone."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.support import ROOT

PASSWORD, API_TOKEN, GRAFANA_TOKEN = "sasl-pw-7f3a91", "api-tok-52c0de", "graf-tok-9b1e44"

SCRIPT = textwrap.dedent("""
    import logging, sys
    from mode.utils.logging import setup_logging
    from gatewatch.settings import Settings

    Settings.from_env({"GATEWATCH_KAFKA_SASL_<PW>": "PASSWORD",
                       "GATEWATCH_API_<TOK>": "API_TOKEN",
                       "GATEWATCH_GRAFANA_<TOK>": "GRAFANA_TOKEN"})
    setup_logging(loglevel=sys.argv[1], logfile=sys.argv[2])
    log = logging.getLogger("kafka.conn")
    level = logging.getLevelName(sys.argv[1].upper())

    class AuthFailed(Exception):
        pass

    def connect(password, token):
        raise AuthFailed(f"login refused for password {password}", token,
                         {"grafana": "GRAFANA_TOKEN"})

    try:
        try:
            connect("PASSWORD", "API_TOKEN")
        except AuthFailed as inner:
            raise RuntimeError("broker said: " + repr(inner.args)) from inner
    except RuntimeError:
        log.log(level, "connect with %s failed", {"sasl_plain_password": "PASSWORD"}, exc_info=True)
        log.log(level, "tokens %s, %s", "API_TOKEN", "GRAFANA_TOKEN", stack_info=True)  # API_TOKEN
        log.log(level, "the same traceback again", exc_info=True)
    try:
        raise KeyError("API_TOKEN")
    except KeyError as exc:
        log.log(level, "lookup failed", exc_info=exc)
        log.log(level, AuthFailed("as message", "GRAFANA_TOKEN"))
    logging.getLogger("faust").log(level, "a plain line %s", 42)
""").replace("PASSWORD", PASSWORD).replace("API_TOKEN", API_TOKEN) \
    .replace("GRAFANA_TOKEN", GRAFANA_TOKEN).replace("<PW>", "PASSWORD").replace("<TOK>", "TOKEN")


@pytest.mark.parametrize("level", ["info", "debug"])
def test_secrets_are_redacted_from_messages_args_tracebacks_and_stacks(tmp_path, level):
    script, logfile = tmp_path / "log_secrets.py", tmp_path / "worker.log"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), level, str(logfile)], cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    text = logfile.read_text()
    for secret in (PASSWORD, API_TOKEN, GRAFANA_TOKEN):
        assert secret not in text, f"{secret} leaked:\n{text}"
        assert secret not in done.stdout + done.stderr
    # what was logged is still there, with *** in the secrets' places
    assert "connect with {'sasl_plain_password': '***'} failed" in text
    assert "AuthFailed: ('login refused for password ***', '***', {'grafana': '***'})" in text
    assert "The above exception was the direct cause" in text  # the chained cause too
    assert "RuntimeError: broker said:" in text and "raise AuthFailed" in text
    assert "tokens ***, ***" in text and "Stack (most recent call last)" in text
    assert "KeyError: '***'" in text and "as message" in text
    assert text.count("The above exception was the direct cause") == 2
    assert "a plain line 42" in text
