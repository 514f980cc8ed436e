"""gatewatch: a streaming congestion monitor for land border gates.

Package map (the folders follow the data; the README has the full module map):

- ``gatewatch.streams``: what flows: records, codecs and validation, topics, vocabulary.
- ``gatewatch.core``: the pure logic: trips, windows, ledger, congestion, signals, processor.
- ``gatewatch.agents``: the Faust worker that drives the core.
- ``gatewatch.alerts``: alert evaluation, texts (VI/EN) and delivery.
- ``gatewatch.web``: every HTTP route: API, metrics, wall, health.
- ``gatewatch.tools``: simulator, scenarios, replay, embedded broker, dashboards.
- ``gatewatch.kafka`` / ``settings`` / ``gates`` / ``errors`` / ``cli``: shared plumbing.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
