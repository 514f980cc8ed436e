"""Commands around the worker: simulated traffic, scenarios, log replay, the embedded
broker and the Grafana dashboards."""
