"""Alerts: the evaluator that turns gate signals into alert records, their Vietnamese and
English texts, and ``gatewatch notify`` (delivery to Alertmanager and webhooks)."""
