"""Everything served over HTTP by a worker: the JSON API and its OpenAPI document,
Prometheus metrics and their exposition, the wall page, health and readiness."""
